package dashboard

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// TestRoutesRefuseWithoutSession walks every registered route: without a
// session, pages redirect to sign-in and forms answer 401, except the
// public ones (sign-in, setup, invitations, the static files).
func TestRoutesRefuseWithoutSession(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	pa.addSite(url.Values{"name": {"site-1"}}) // so that /sites/1 exists
	public := map[string]bool{}
	for _, rt := range h.srv.routes {
		path := strings.NewReplacer("{id}", "1", "{name}", "site-1", "{token}", "x", "{$}", "").Replace(rt.pattern)
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			c := h.client()
			var r response
			if rt.method == "GET" {
				r = c.get(path)
			} else {
				r = c.post(path, url.Values{"csrf": {"x"}})
			}
			switch {
			case rt.public:
				public[rt.pattern] = true
				if r.location == "/signin" || r.status == http.StatusUnauthorized {
					t.Fatalf("public route answered %d %s", r.status, r.location)
				}
			case rt.method == "GET":
				if r.status != http.StatusSeeOther || r.location != "/signin" {
					t.Fatalf("%d %q, want 303 to /signin", r.status, r.location)
				}
			default:
				r.want(t, http.StatusUnauthorized, "no session")
			}
		})
	}
	publicRoutes := []string{"/static/style.css", "/static/csr.js", "/signin", "/signin/oidc", oidcCallback, "/setup/{token}", "/invite/{token}"}
	for _, p := range publicRoutes {
		if !public[p] {
			t.Errorf("%s is not public", p)
		}
	}
	if len(public) != len(publicRoutes) {
		t.Errorf("public routes %v, want exactly sign-in (password and OIDC), setup, invitations, the style sheet and csr.js", public)
	}
	h.client().get("/no/such/page").want(t, http.StatusNotFound)
}

// TestAuthorize is the decision table.
func TestAuthorize(t *testing.T) {
	users := map[pki.Role]*User{}
	for _, r := range []pki.Role{pki.RoleProjectAdmin, pki.RoleOrgAdmin, pki.RoleLead, pki.RoleMember} {
		users[r] = &User{Email: string(r) + "@a.org", Org: "a", Role: r}
	}
	own, other := &Target{Org: "a"}, &Target{Org: "b"}
	cases := []struct {
		name   string
		action Action
		role   pki.Role
		target *Target
		allow  bool
	}{
		{"project admin approves", ActApprove, pki.RoleProjectAdmin, nil, true},
		{"org admin does not approve", ActApprove, pki.RoleOrgAdmin, nil, false},
		{"member does not approve", ActApprove, pki.RoleMember, nil, false},
		{"lead does not revoke", ActRevoke, pki.RoleLead, nil, false},
		{"org admin does not invite", ActInvite, pki.RoleOrgAdmin, nil, false},
		{"org admin does not read the audit", ActAudit, pki.RoleOrgAdmin, nil, false},
		{"project admin edits the project", ActEditProject, pki.RoleProjectAdmin, nil, true},
		{"org admin does not edit the project", ActEditProject, pki.RoleOrgAdmin, nil, false},
		{"lead does not edit the project", ActEditProject, pki.RoleLead, nil, false},
		{"project admin edits any org's site", ActEditSite, pki.RoleProjectAdmin, other, true},
		{"org admin edits its own org's site", ActEditSite, pki.RoleOrgAdmin, own, true},
		{"org admin does not edit another org's site", ActEditSite, pki.RoleOrgAdmin, other, false},
		{"org admin does not view another org's site", ActViewSite, pki.RoleOrgAdmin, other, false},
		{"org admin downloads its own org's kit", ActDownloadKit, pki.RoleOrgAdmin, own, true},
		{"org admin does not download another org's kit", ActDownloadKit, pki.RoleOrgAdmin, other, false},
		{"member views its own org's site", ActViewSite, pki.RoleMember, own, true},
		{"member does not edit its own org's site", ActEditSite, pki.RoleMember, own, false},
		{"member does not download its own org's kit", ActDownloadKit, pki.RoleMember, own, false},
		{"member requests its own certificate", ActOwnRequest, pki.RoleMember, nil, true},
		{"unknown action is denied", Action("nope"), pki.RoleOrgAdmin, own, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := authorize(c.action, users[c.role], c.target)
			if d.Allow != c.allow || d.Reason == "" {
				t.Fatalf("authorize(%s, %s, %+v) = %+v, want allow %t with a reason", c.action, c.role, c.target, d, c.allow)
			}
		})
	}
	if d := authorize(ActHome, nil, nil); d.Allow {
		t.Fatal("no user allowed")
	}
}

// TestOrgAdminStaysInItsOrg: bob, org admin of clinic-b, cannot see,
// change, upload for or download a site of clinic-a, nor add one there;
// for him it does not exist.
func TestOrgAdminStaysInItsOrg(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	bob := h.accept(pa.invite(bobEm, pki.RoleOrgAdmin, "clinic-b"), bobPw)
	site := alice.addSite(url.Values{"name": {"site-a"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-a", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site+"/csr", csr).want(t, http.StatusSeeOther)
	pa.approveAll()

	bob.get("/sites").want(t, 200, "No sites yet")
	bob.get(site).want(t, http.StatusNotFound, "site not found")
	bob.get(site+"/kit").want(t, http.StatusNotFound, "site not found")
	bob.post(site, url.Values{"gpus": {"8"}}).want(t, http.StatusNotFound)
	bob.upload(site+"/csr", csr).want(t, http.StatusNotFound)
	bob.post("/sites", url.Values{"name": {"site-b"}, "org": {"clinic-a"}}).want(t, http.StatusForbidden, "may not act on org clinic-a")
	// His own org's site he may add.
	bob.addSite(url.Values{"name": {"site-b"}})
	alice.get(site).want(t, 200, "site-a")
}

// TestMemberCannotApprove: a member reaches neither the requests page nor
// an approval; an org admin neither.
func TestMemberCannotApprove(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	carol := h.accept(pa.invite(memberEm, pki.RoleMember, "clinic-a"), memberPw)
	_, csr := makeCSR(t, pki.Identity{Name: memberEm, Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleMember})
	carol.upload("/me/csr", csr).want(t, http.StatusSeeOther)
	for _, c := range []*client{carol, alice} {
		c.get("/requests").want(t, http.StatusForbidden, "only the project admin")
		c.post("/requests/1/approve", nil).want(t, http.StatusForbidden, "only the project admin")
		c.post("/participants/server/revoke", nil).want(t, http.StatusForbidden)
		c.get("/invitations").want(t, http.StatusForbidden)
	}
	carol.post("/sites", url.Values{"name": {"site-m"}}).want(t, http.StatusForbidden, "only project and org admins")
	carol.get("/").want(t, 200, `id="own-status">pending`)
}

// TestInvitationsWorkOnceAndExpire.
func TestInvitationsWorkOnceAndExpire(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	link := pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a")
	h.accept(link, alicePw)
	c := h.client()
	c.get(link).want(t, http.StatusGone, "already used")
	c.get("/signin")
	c.post(link, url.Values{"password": {"another long password"}, "confirm": {"another long password"}}).want(t, http.StatusGone, "already used")

	late := pa.invite(bobEm, pki.RoleOrgAdmin, "clinic-b")
	c.get(late).want(t, 200)
	h.clock.Advance(DefaultInviteTTL + time.Second)
	c.get(late).want(t, http.StatusGone, "expired")
	c.post(late, url.Values{"password": {bobPw}, "confirm": {bobPw}}).want(t, http.StatusGone, "expired")
	if _, r := h.signin(bobEm, bobPw); r.status != http.StatusUnauthorized {
		t.Fatalf("bob signed in through an expired invitation: %d", r.status)
	}
	c.get("/invite/not-a-token").want(t, http.StatusNotFound, "not valid")

	// A short password is refused and leaves the invitation open.
	pa, _ = h.signin(paEmail, paPass) // three days on, the session expired
	pa.get("/")
	open := pa.invite(memberEm, pki.RoleMember, "clinic-a")
	c.get(open)
	c.post(open, url.Values{"password": {"short"}, "confirm": {"short"}}).want(t, http.StatusBadRequest, "at least 12")
	h.accept(open, memberPw)
}

// TestCSRFAndOrigin: a state-changing request with a forged, missing or
// another session's token, or from another origin, is refused; pre-session
// forms need their double-submit token.
func TestCSRFAndOrigin(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	other, _ := h.signin(paEmail, paPass)
	other.get("/")
	if other.csrf == pa.csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	for name, token := range map[string]string{"forged": "forged-token", "missing": "", "another session's": other.csrf} {
		t.Run(name, func(t *testing.T) {
			pa.post("/sites", url.Values{"name": {"site-x"}, "csrf": {token}}).want(t, http.StatusForbidden, "CSRF")
		})
	}
	for name, hdr := range map[string][2]string{
		"cross-site":   {"Sec-Fetch-Site", "cross-site"},
		"same-site":    {"Sec-Fetch-Site", "same-site"},
		"other origin": {"Origin", "https://evil.example"},
		"http origin":  {"Origin", "http://" + strings.TrimPrefix(h.ts.URL, "https://")},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.ts.URL+"/sites", strings.NewReader(url.Values{"name": {"site-x"}, "csrf": {pa.csrf}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(hdr[0], hdr[1])
			pa.do(req).want(t, http.StatusForbidden)
		})
	}
	// The header form of the token works, with this server's origin.
	req, _ := http.NewRequest("POST", h.ts.URL+"/sites", strings.NewReader(url.Values{"name": {"site-x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(csrfHeader, pa.csrf)
	req.Header.Set("Origin", h.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if r := pa.do(req); r.status != http.StatusSeeOther {
		t.Fatalf("a same-origin request with the header token: %d\n%s", r.status, excerpt(r.body))
	}
	// Sign-in without the form's double-submit token.
	c := h.client()
	c.post("/signin", url.Values{"email": {paEmail}, "password": {paPass}, "csrf": {"x"}}).want(t, http.StatusForbidden, "CSRF")
}

// TestCSRMustMatchTheRecord: a CSR whose name, org, kind or role differs
// from the site's or the account's is refused, naming the difference.
func TestCSRMustMatchTheRecord(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	site := alice.addSite(url.Values{"name": {"site-1"}})
	cases := []struct {
		name, path string
		id         pki.Identity
		says       string
	}{
		{"site: another name", site + "/csr", pki.Identity{Name: "site-9", Org: "clinic-a", Kind: pki.KindSite}, `name "site-9", not "site-1"`},
		{"site: another org", site + "/csr", pki.Identity{Name: "site-1", Org: "clinic-b", Kind: pki.KindSite}, `org "clinic-b", not "clinic-a"`},
		{"site: an admin's request", site + "/csr", pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleMember}, `kind "admin", not "site"`},
		{"own: another name", "/me/csr", pki.Identity{Name: "mallory@clinic-a.org", Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleOrgAdmin}, `name "mallory@clinic-a.org"`},
		{"own: a higher role", "/me/csr", pki.Identity{Name: aliceEm, Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleProjectAdmin}, `role "project_admin", not "org_admin"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, csr := makeCSR(t, c.id)
			alice.upload(c.path, csr).want(t, http.StatusBadRequest, c.says)
		})
	}
	alice.upload(site+"/csr", []byte("not a CSR")).want(t, http.StatusBadRequest, "no PEM CERTIFICATE REQUEST")
	pa.get("/requests").want(t, 200, "No requests yet")
}

// TestSigninThrottled: wrong passwords and unknown accounts get the same
// answer; after 5 failures the account is locked (even for the right
// password) for 30 s, doubling; 20 failures from one address on many
// accounts lock the address.
func TestSigninThrottled(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin(paEmail, "hub", paPass)
	_, unknown := h.signin("nobody@nowhere.org", "whatever password")
	_, wrong := h.signin(paEmail, "wrong password!!")
	unknown.want(t, http.StatusUnauthorized, errSignin)
	wrong.want(t, http.StatusUnauthorized, errSignin)
	for i := 0; i < failuresAllowed-1; i++ { // 5 failures in all on the account (one above)
		_, r := h.signin(paEmail, "wrong password!!")
		r.want(t, http.StatusUnauthorized)
	}
	_, r := h.signin(paEmail, paPass)
	r.want(t, http.StatusTooManyRequests, "try again in 30 s")
	if r.header.Get("Retry-After") != "30" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	h.clock.Advance(lockoutBase + time.Second)
	_, r = h.signin(paEmail, "wrong password!!")
	r.want(t, http.StatusUnauthorized)
	_, r = h.signin(paEmail, paPass)
	r.want(t, http.StatusTooManyRequests, "try again in 60 s")
	h.clock.Advance(2*lockoutBase + time.Second)
	if _, r := h.signin(paEmail, paPass); r.status != http.StatusSeeOther {
		t.Fatalf("the right password after the lockout: %d\n%s", r.status, excerpt(r.body))
	}

	// The address: failures spread over accounts.
	h.clock.Advance(forgetAfter + time.Minute)
	for i := 0; i < failuresPerAddress; i++ {
		_, r := h.signin(fmt.Sprintf("guess%d@x.org", i), "wrong password!!")
		r.want(t, http.StatusUnauthorized)
	}
	_, r = h.signin(paEmail, paPass)
	r.want(t, http.StatusTooManyRequests)
}

// TestSessions: cookie attributes; sign-out ends the session; idle and
// absolute expiry.
func TestSessions(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin(paEmail, "hub", paPass)
	c, r := h.signin(paEmail, paPass)
	cookie := r.header.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Fatalf("session cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Domain=") {
		t.Fatalf("session cookie %q has a Domain", cookie)
	}
	c.get("/").want(t, 200)
	c.post("/signout", nil).want(t, http.StatusSeeOther)
	if r := c.get("/"); r.location != "/signin" {
		t.Fatalf("after sign-out: %d %s", r.status, r.location)
	}

	idle, _ := h.signin(paEmail, paPass)
	h.clock.Advance(IdleTimeout - time.Minute)
	idle.get("/").want(t, 200) // activity keeps it
	h.clock.Advance(IdleTimeout + time.Second)
	if r := idle.get("/"); r.location != "/signin" {
		t.Fatalf("after %s idle: %d %s", IdleTimeout, r.status, r.location)
	}

	busy, _ := h.signin(paEmail, paPass)
	for elapsed := time.Duration(0); elapsed < AbsoluteTimeout-20*time.Minute; elapsed += 20 * time.Minute {
		h.clock.Advance(20 * time.Minute)
		busy.get("/").want(t, 200)
	}
	h.clock.Advance(21 * time.Minute)
	if r := busy.get("/"); r.location != "/signin" {
		t.Fatalf("after %s: %d %s", AbsoluteTimeout, r.status, r.location)
	}
}

// TestTLS: TLS 1.3 only; the generated certificate verifies against the
// project root and carries no participant identity.
func TestTLS(t *testing.T) {
	h := newHarness(t)
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool, MaxVersion: tls.VersionTLS12}}}
	if _, err := old.Get(h.ts.URL + "/signin"); err == nil {
		t.Fatal("a TLS 1.2 client was served")
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(h.ts.URL, "https://"), &tls.Config{RootCAs: h.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if _, err := pki.IdentityOf(leaf); err == nil {
		t.Fatal("the dashboard's certificate reads as a participant identity")
	}
	if got := conn.ConnectionState().Version; got != tls.VersionTLS13 {
		t.Fatalf("TLS version %x", got)
	}
}
