package dashboard

// The OIDC sign-in against a real provider: Dex on loopback (HTTPS, its
// LDAP connector on a real slapd, plugins/authn/authntest), the dashboard
// registered there as a confidential client. A plain HTTP client with a
// cookie jar plays the browser: it follows the redirects, fills Dex's
// login form, and comes back to the callback. Without Dex (or slapd) these
// tests skip with the command that builds it; under CI=true they fail.

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn/authntest"
)

const (
	dashboardClientID = "hearth-dashboard"
	danEmail          = "dan@clinic-a.org"
	danPass           = "dan's password here"
)

// dexPeople is the directory behind Dex: pat is the project admin (the
// dashboard account paEmail), eve has no account, dan's account exists.
var dexPeople = authntest.Directory{People: []authntest.Person{
	{UID: "pat", Password: "pat-pw", Email: paEmail},
	{UID: "eve", Password: "eve-pw", Email: "eve@elsewhere.org"},
	{UID: "dan", Password: "dan-pw", Email: danEmail},
}}

// oidcHarness is a dashboard whose sign-in page offers Dex, with its
// project admin set up (by password) and pa signed in.
type oidcHarness struct {
	*harness
	dex *authntest.Dex
	pa  *client
}

func newOIDCHarness(t *testing.T) *oidcHarness {
	t.Helper()
	dir := authntest.StartSlapd(t, dexPeople)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secret := randomToken()
	dex := authntest.StartDex(t, authntest.DexConfig{Directory: dir, Clients: []authntest.DexClient{
		{ID: dashboardClientID, Secret: secret, RedirectURIs: []string{"https://" + ln.Addr().String() + oidcCallback}}}})
	h := newHarnessOn(t, ln, nil, func(c *Config) {
		c.OIDC = &OIDCConfig{Issuer: dex.Issuer, ClientID: dashboardClientID, ClientSecret: secret, Roots: dex.CA}
	})
	return &oidcHarness{harness: h, dex: dex, pa: h.setupAdmin(paEmail, "hub", paPass)}
}

// browser is a client that trusts the dashboard's root and Dex's CA.
func (o *oidcHarness) browser() *client {
	c := o.client()
	pool := o.pool.Clone()
	pool.AppendCertsFromPEM(o.dex.CAPEM)
	c.c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return c
}

var dexFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// toCallback signs uid in at Dex, starting from the dashboard's "Sign in
// with" link and following every redirect up to the dashboard's callback,
// whose URL it returns unvisited; start is the dashboard's redirect to
// the provider.
func (o *oidcHarness) toCallback(c *client, uid, password string) (callback *url.URL, start response) {
	o.t.Helper()
	start = c.get("/signin/oidc").want(o.t, http.StatusSeeOther)
	base := o.ts.URL + oidcCallback
	c.c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), base) {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	defer func() {
		c.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}()
	req, _ := http.NewRequest("GET", start.location, nil)
	login := c.do(req).want(o.t, http.StatusOK)
	m := dexFormRE.FindStringSubmatch(login.body)
	if m == nil {
		o.t.Fatalf("no login form at Dex:\n%s", excerpt(login.body))
	}
	action, err := url.Parse(start.location)
	if err != nil {
		o.t.Fatal(err)
	}
	if action, err = action.Parse(m[1]); err != nil {
		o.t.Fatal(err)
	}
	req, _ = http.NewRequest("POST", action.String(), strings.NewReader(url.Values{"login": {uid}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := c.do(req)
	if callback == nil {
		o.t.Fatalf("Dex did not redirect to the dashboard's callback: %d %s\n%s", r.status, r.location, excerpt(r.body))
	}
	return callback, start
}

// visit gets the callback URL u (its path and query) in c.
func visit(c *client, u *url.URL) response {
	c.h.t.Helper()
	return c.get(u.RequestURI())
}

// withQuery is u with the query parameter key set to value.
func withQuery(u *url.URL, key, value string) *url.URL {
	v := *u
	q := v.Query()
	q.Set(key, value)
	v.RawQuery = q.Encode()
	return &v
}

// lastRefusal is the newest signin.oidc.refused row; it fails unless
// there are want rows.
func lastRefusal(t *testing.T, h *harness, want int) AuditEntry {
	t.Helper()
	rows := auditRows(t, h, "signin.oidc.refused")
	if len(rows) != want {
		t.Fatalf("%d signin.oidc.refused rows, want %d: %+v", len(rows), want, rows)
	}
	return rows[want-1]
}

// TestOIDCSignin: the project admin signs in through Dex (authorization
// code with PKCE, the pre-session cookie __Host-, Secure, HttpOnly,
// SameSite=Lax) and gets a session; the callback visited again is
// refused (its pre-session spent), and so is the code brought to a fresh
// sign-in of the same browser (Dex takes a code once, with its own
// verifier); each refusal is audited without the code.
func TestOIDCSignin(t *testing.T) {
	o := newOIDCHarness(t)
	o.client().get("/signin").want(t, 200, `id="signin-oidc" href="/signin/oidc">Sign in with `+o.dex.Issuer)

	c := o.browser()
	cb, start := o.toCallback(c, "pat", "pat-pw")
	auth, err := url.Parse(start.location)
	if err != nil {
		t.Fatal(err)
	}
	q := auth.Query()
	if !strings.HasPrefix(start.location, o.dex.Issuer+"/auth?") || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("nonce") == "" || q.Get("client_id") != dashboardClientID || q.Get("response_type") != "code" {
		t.Fatalf("the redirect to the provider: %s", start.location)
	}
	if cb.Query().Get("state") != q.Get("state") || cb.Query().Get("code") == "" {
		t.Fatalf("Dex's callback %s does not carry the state and a code", cb)
	}
	cookie := strings.Join(start.header.Values("Set-Cookie"), "\n")
	for _, want := range []string{oidcCookie + "=", "Path=/", "Max-Age=600", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Fatalf("pre-session cookie %q lacks %s", cookie, want)
		}
	}

	done := visit(c, cb).want(t, http.StatusOK, "Signed in as <code>"+paEmail+"</code>")
	if done.header.Get("Refresh") != "0; url=/" {
		t.Fatalf("the signed-in page's Refresh: %q", done.header.Get("Refresh"))
	}
	c.get("/").want(t, http.StatusOK, paEmail, "Sign out")
	ok := auditRows(t, o.harness, "signin.oidc.ok")
	if len(ok) != 1 || ok[0].Actor != paEmail || !strings.Contains(ok[0].Detail, o.dex.Issuer) {
		t.Fatalf("signin.oidc.ok rows: %+v", ok)
	}

	// The same callback again: its pre-session is spent.
	visit(c, cb).want(t, http.StatusBadRequest, "this browser did not start this sign-in")
	lastRefusal(t, o.harness, 1)
	// The code with a fresh pre-session's state: the provider refuses it.
	again := c.get("/signin/oidc").want(t, http.StatusSeeOther)
	fresh, err := url.Parse(again.location)
	if err != nil {
		t.Fatal(err)
	}
	visit(c, withQuery(cb, "state", fresh.Query().Get("state"))).want(t, http.StatusUnauthorized, "the provider did not take the code")
	row := lastRefusal(t, o.harness, 2)
	if strings.Contains(row.Detail, cb.Query().Get("code")) {
		t.Fatalf("the audit holds the code: %+v", row)
	}
	if len(auditRows(t, o.harness, "signin.oidc.ok")) != 1 {
		t.Fatal("a refused callback signed in")
	}
}

// TestOIDCRefusals: a callback whose state was altered is refused and
// spends its pre-session (the right state after it is refused too); a
// callback brought to another browser (no pre-session: login CSRF) is
// refused; a verified e-mail with no account, and a disabled account,
// are refused with the reason. Each is audited, none gets a session.
func TestOIDCRefusals(t *testing.T) {
	o := newOIDCHarness(t)
	o.accept(o.pa.invite(danEmail, pki.RoleMember, "clinic-a"), danPass)

	t.Run("wrong state", func(t *testing.T) {
		c := o.browser()
		cb, _ := o.toCallback(c, "pat", "pat-pw")
		visit(c, withQuery(cb, "state", randomToken())).want(t, http.StatusBadRequest, "the state sent back is not this sign-in's")
		visit(c, cb).want(t, http.StatusBadRequest, "this browser did not start this sign-in")
		c.get("/").want(t, http.StatusSeeOther)
	})
	t.Run("another browser", func(t *testing.T) {
		cb, _ := o.toCallback(o.browser(), "pat", "pat-pw")
		other := o.browser()
		visit(other, cb).want(t, http.StatusBadRequest, "this browser did not start this sign-in")
		other.get("/").want(t, http.StatusSeeOther)
	})
	t.Run("unknown e-mail", func(t *testing.T) {
		c := o.browser()
		cb, _ := o.toCallback(c, "eve", "eve-pw")
		visit(c, cb).want(t, http.StatusForbidden, "no dashboard account has the e-mail eve@elsewhere.org")
		if row := lastRefusal(t, o.harness, 4); row.Actor != "eve@elsewhere.org" {
			t.Fatalf("refusal audited as %+v", row)
		}
	})
	t.Run("disabled account", func(t *testing.T) {
		if _, err := o.srv.db.Exec(`UPDATE users SET disabled = 1 WHERE email = ?`, danEmail); err != nil {
			t.Fatal(err)
		}
		c := o.browser()
		cb, _ := o.toCallback(c, "dan", "dan-pw")
		visit(c, cb).want(t, http.StatusForbidden, "the account "+danEmail+" is disabled")
		if row := lastRefusal(t, o.harness, 5); row.Actor != danEmail || !strings.Contains(row.Detail, "disabled") {
			t.Fatalf("refusal audited as %+v", row)
		}
		c.get("/").want(t, http.StatusSeeOther)
	})
	// The pre-session's nonce and PKCE verifier, changed here as if the
	// code came from another sign-in: the token's nonce is not this one's,
	// and Dex refuses the code without its own verifier.
	t.Run("nonce of another sign-in", func(t *testing.T) {
		c := o.browser()
		cb, _ := o.toCallback(c, "pat", "pat-pw")
		o.tamper(func(l *oidcLogin) { l.nonce = randomToken() })
		visit(c, cb).want(t, http.StatusUnauthorized, "the ID token's nonce is not this sign-in's")
		lastRefusal(t, o.harness, 6)
	})
	t.Run("verifier of another sign-in", func(t *testing.T) {
		c := o.browser()
		cb, _ := o.toCallback(c, "pat", "pat-pw")
		o.tamper(func(l *oidcLogin) { l.verifier = oauth2.GenerateVerifier() })
		visit(c, cb).want(t, http.StatusUnauthorized, "the provider did not take the code")
		lastRefusal(t, o.harness, 7)
	})
	if n := len(auditRows(t, o.harness, "signin.oidc.ok")); n != 0 {
		t.Fatalf("%d OIDC sign-ins succeeded, want none", n)
	}
}

// tamper changes every pre-session held.
func (o *oidcHarness) tamper(change func(*oidcLogin)) {
	o.srv.oidc.mu.Lock()
	defer o.srv.oidc.mu.Unlock()
	for k, l := range o.srv.oidc.logins {
		change(&l)
		o.srv.oidc.logins[k] = l
	}
}

// TestOIDCCallbackThrottled: refused callbacks count against the client
// address like failed passwords: after failuresPerAddress of them the
// next is 429 with Retry-After, before any check, audited once. No
// provider is needed: none of these callbacks gets as far as asking one.
func TestOIDCCallbackThrottled(t *testing.T) {
	h := newHarnessWith(t, nil, func(c *Config) {
		c.OIDC = &OIDCConfig{Issuer: "https://127.0.0.1:1/never-asked", ClientID: "id", ClientSecret: "secret"}
	})
	c := h.client()
	for range failuresPerAddress {
		c.get(oidcCallback+"?state=x&code=y").want(t, http.StatusBadRequest, "this browser did not start this sign-in")
	}
	r := c.get(oidcCallback+"?state=x&code=y").want(t, http.StatusTooManyRequests, "too many failed sign-ins")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	c.get(oidcCallback+"?state=x&code=y").want(t, http.StatusTooManyRequests)
	if n := len(auditRows(t, h, "signin.oidc.refused")); n != failuresPerAddress {
		t.Fatalf("%d refusals audited, want %d", n, failuresPerAddress)
	}
	if n := len(auditRows(t, h, "signin.throttled")); n != 1 {
		t.Fatalf("%d throttled rows, want 1", n)
	}
	// The password sign-in shares the address's lock.
	_, pw := h.signin(paEmail, paPass)
	pw.want(t, http.StatusTooManyRequests)
}

// TestOIDCOff: without OIDC configured the sign-in page offers none and
// its routes are not found.
func TestOIDCOff(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	if strings.Contains(c.get("/signin").want(t, 200).body, "signin-oidc") {
		t.Fatal("the sign-in page offers OIDC without a provider")
	}
	c.get("/signin/oidc").want(t, http.StatusNotFound)
	c.get(oidcCallback+"?state=x&code=y").want(t, http.StatusNotFound)
}

// TestVerifiedEmail: the token's email signs in only where the provider
// says it verified it: email_verified the JSON true. (Dex's LDAP
// connector marks every e-mail verified, so Dex cannot send the others.)
func TestVerifiedEmail(t *testing.T) {
	for _, tc := range []struct {
		name, claims, want string
	}{
		{"verified", `{"email":"a@b.org","email_verified":true}`, ""},
		{"not verified", `{"email":"a@b.org","email_verified":false}`, "does not say it verified the e-mail a@b.org"},
		{"verified absent", `{"email":"a@b.org"}`, "does not say it verified"},
		{"verified as a string", `{"email":"a@b.org","email_verified":"true"}`, "does not say it verified"},
		{"no email", `{"email_verified":true}`, "has no email claim"},
		{"email not a string", `{"email":["a@b.org"],"email_verified":true}`, "has no email claim"},
		{"empty email", `{"email":" ","email_verified":true}`, "has no email claim"},
		// A provider (or a compromised one) sends what it likes: only an
		// address an account can have goes on to the database and audit.
		{"email of 10000 bytes", `{"email":"` + strings.Repeat("a", 9994) + `@b.org","email_verified":true}`, "(10000 bytes) is no address a dashboard account can have"},
		{"email with a newline", `{"email":"a@b.org\nsigned in: pat","email_verified":true}`, "is no address a dashboard account can have"},
		{"email without @", `{"email":"pat","email_verified":true}`, "is no address a dashboard account can have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var claims map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.claims), &claims); err != nil {
				t.Fatal(err)
			}
			email, reason := verifiedEmail(claims)
			switch {
			case tc.want == "" && (reason != "" || email != "a@b.org"):
				t.Fatalf("refused: %q", reason)
			case tc.want != "" && (email != "" || !strings.Contains(reason, tc.want)):
				t.Fatalf("got %q, %q; want a refusal saying %q", email, reason, tc.want)
			case len(reason) > 2*maxReason:
				t.Fatalf("a reason of %d bytes: %.100s...", len(reason), reason)
			}
		})
	}
}

// TestOIDCConfigValidate: the configuration names an https issuer, a
// client id and a secret.
func TestOIDCConfigValidate(t *testing.T) {
	good := OIDCConfig{Issuer: "https://idp.example.org/dex", ClientID: "dashboard", ClientSecret: "s"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*OIDCConfig)
		want string
	}{
		{"http issuer", func(c *OIDCConfig) { c.Issuer = "http://idp.example.org" }, "want an https URL"},
		{"issuer with a query", func(c *OIDCConfig) { c.Issuer = "https://idp.example.org/?x=1" }, "want an https URL"},
		{"no client id", func(c *OIDCConfig) { c.ClientID = "" }, "no client id"},
		{"no secret", func(c *OIDCConfig) { c.ClientSecret = "" }, "no client secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestOIDCPreSessionsBoundedPerAddress: one address cannot hold more than
// maxOIDCLoginsPerAddr sign-ins in progress (429 past it), another address
// still can, and expired ones no longer count.
func TestOIDCPreSessionsBoundedPerAddress(t *testing.T) {
	o := newOIDCSignin(OIDCConfig{Issuer: "https://127.0.0.1:1/never-asked", ClientID: "id", ClientSecret: "secret"})
	now := time.Now()
	login := func(addr string) oidcLogin { return oidcLogin{addr: addr, expires: now.Add(oidcLoginTTL)} }
	for i := range maxOIDCLoginsPerAddr {
		if err := o.hold(now, fmt.Sprint("a", i), login("192.0.2.1")); err != nil {
			t.Fatalf("pre-session %d from one address: %v", i, err)
		}
	}
	err := o.hold(now, "a-over", login("192.0.2.1"))
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusTooManyRequests || !strings.Contains(he.msg, "from this address") {
		t.Fatalf("pre-session past the bound: %v, want 429 naming the address", err)
	}
	if err := o.hold(now, "b", login("192.0.2.2")); err != nil {
		t.Fatalf("another address refused: %v", err)
	}
	if err := o.hold(now.Add(oidcLoginTTL), "a-later", login("192.0.2.1")); err != nil {
		t.Fatalf("once the first expired: %v", err)
	}
}
