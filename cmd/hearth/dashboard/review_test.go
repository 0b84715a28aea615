package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// The tests of the security review's findings: each shows its control
// refusing.

// TestSitesListsVisibleSites: the sites page lists a site its org admin
// and the project admin may see (it held the one database connection
// while looking up each site's request, and hung).
func TestSitesListsVisibleSites(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	site := alice.addSite(url.Values{"name": {"site-a"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-a", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site+"/csr", csr).want(t, http.StatusSeeOther)
	alice.addSite(url.Values{"name": {"site-b"}})
	alice.c.Timeout, pa.c.Timeout = 10*time.Second, 10*time.Second // a hang fails, not stalls
	alice.get("/sites").want(t, 200, "site-a", "site-b", "pending")
	pa.get("/sites").want(t, 200, "site-a", "site-b")
}

// signinRequest is a sign-in form for c, which has fetched /signin.
func signinRequest(c *client, email, password string) *http.Request {
	form := url.Values{"email": {email}, "password": {password}, "csrf": {c.csrf}}
	req, _ := http.NewRequest("POST", c.h.ts.URL+"/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// countAudit counts the audit rows of action.
func countAudit(t *testing.T, h *harness, action string) int {
	t.Helper()
	var n int
	if err := h.srv.db.QueryRow(`SELECT COUNT(*) FROM audit WHERE action = ?`, action).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// inFlightOf is the number of reserved, unsettled attempts of key.
func (l *limiter) inFlightOf(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.keys[key]; ok {
		return f.inFlight
	}
	return 0
}

// TestSigninBurstIsThrottled: failuresAllowed parallel wrong sign-ins for
// one account, all in their password check, use up its allowance: the
// right password arriving meanwhile is refused without a check and gets
// no session; no more than failuresAllowed checks ran; the refusals are
// audited once.
func TestSigninBurstIsThrottled(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin(paEmail, "hub", paPass)
	gate := make(chan struct{})
	var checks atomic.Int32
	h.srv.verify = func(password, hash string) (bool, error) {
		checks.Add(1)
		<-gate
		return checkPassword(password, hash)
	}
	var wg sync.WaitGroup
	statuses := make(chan int, failuresAllowed)
	for range failuresAllowed {
		c := h.client()
		c.get("/signin")
		req := signinRequest(c, paEmail, "wrong password!!")
		wg.Go(func() {
			resp, err := c.c.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.accounts.inFlightOf(paEmail) < failuresAllowed {
		if time.Now().After(deadline) {
			close(gate)
			t.Fatalf("%d sign-ins in flight, want %d", h.srv.accounts.inFlightOf(paEmail), failuresAllowed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 3 {
		_, r := h.signin(paEmail, paPass)
		r.want(t, http.StatusTooManyRequests, "try again in")
		if strings.Contains(r.header.Get("Set-Cookie"), sessionCookie) {
			t.Fatal("a throttled sign-in got a session cookie")
		}
	}
	close(gate)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusUnauthorized {
			t.Errorf("a wrong password in the burst: %d, want 401", s)
		}
	}
	_, r := h.signin(paEmail, paPass)
	r.want(t, http.StatusTooManyRequests) // now locked by the five failures
	if n := checks.Load(); n != failuresAllowed {
		t.Errorf("%d password checks, want %d", n, failuresAllowed)
	}
	if n := countAudit(t, h, "signin.throttled"); n != 1 {
		t.Errorf("%d signin.throttled rows for one lock window, want 1", n)
	}
	if n := countAudit(t, h, "signin.fail"); n != failuresAllowed {
		t.Errorf("%d signin.fail rows, want %d", n, failuresAllowed)
	}
}

// TestHashQueueBounded: a check waiting for a hash slot gives up with its
// request's context, and beyond maxHashWaiting waiting it is refused 503.
func TestHashQueueBounded(t *testing.T) {
	s := &Server{hashSlots: make(chan struct{}, 1)}
	s.hashSlots <- struct{}{} // the one slot taken
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.checkPassword(ctx, "password", "hash"); err != context.DeadlineExceeded {
		t.Fatalf("waiting past the context: %v", err)
	}
	s.hashWaiting.Store(maxHashWaiting)
	_, err := s.checkPassword(context.Background(), "password", "hash")
	if he, ok := err.(*httpError); !ok || he.status != http.StatusServiceUnavailable {
		t.Fatalf("a full queue: %v, want 503", err)
	}
}

// TestAddressKey: IPv6 clients are counted by /64, IPv4 by address.
func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":              "192.0.2.7",
		"2001:db8:1:2::1":        "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9":   "2001:db8:1:2::/64",
		"::ffff:192.0.2.7":       "::ffff:192.0.2.7",
		"not an address at all!": "not an address at all!",
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAuditConcurrent: audit rows written at once, through the database
// and through requests, are all recorded and the chain stays intact.
func TestAuditConcurrent(t *testing.T) {
	h := newHarness(t)
	h.setupAdmin(paEmail, "hub", paPass)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() { errs <- audit(ctx, h.srv.db, h.clock.Now(), "tester", "test.parallel", fmt.Sprint(i), "") })
	}
	const signins = 10 // under failuresPerAddress
	statuses := make(chan int, signins)
	for i := range signins {
		c := h.client()
		c.get("/signin")
		req := signinRequest(c, fmt.Sprintf("guess%d@x.org", i), "wrong password!!")
		wg.Go(func() {
			resp, err := c.c.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(errs)
	close(statuses)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for s := range statuses {
		if s != http.StatusUnauthorized {
			t.Errorf("a parallel failed sign-in: %d, want 401", s)
		}
	}
	if n := countAudit(t, h, "test.parallel"); n != 40 {
		t.Errorf("%d test.parallel rows, want 40", n)
	}
	if n := countAudit(t, h, "signin.fail"); n != signins {
		t.Errorf("%d signin.fail rows, want %d", n, signins)
	}
	entries, err := readAudit(ctx, h.srv.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyAudit(entries); err != nil {
		t.Fatal(err)
	}
}

// TestLogsHoldNoToken: a refused POST to an invitation or setup link is
// logged with its route's pattern, not the token.
func TestLogsHoldNoToken(t *testing.T) {
	h := newHarness(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	h.srv.log = slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	setup := h.srv.SetupPath()
	h.client().post(setup, url.Values{"csrf": {"x"}}).want(t, http.StatusForbidden)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	link := pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a")
	h.client().post(link, url.Values{"csrf": {"x"}}).want(t, http.StatusForbidden)
	mu.Lock()
	logged := buf.String()
	mu.Unlock()
	for _, token := range []string{strings.TrimPrefix(setup, "/setup/"), strings.TrimPrefix(link, "/invite/")} {
		if strings.Contains(logged, token) {
			t.Fatalf("the log holds a token:\n%s", logged)
		}
	}
	for _, want := range []string{"/setup/{token}", "/invite/{token}"} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log lacks %s:\n%s", want, logged)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSecurityHeadersEverywhere: the mux's own answers (an unknown page,
// a method not allowed) carry the security headers too.
func TestSecurityHeadersEverywhere(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	put, _ := http.NewRequest("PUT", h.ts.URL+"/signin", nil)
	for name, r := range map[string]response{
		"not found":          c.get("/no/such/page"),
		"method not allowed": c.do(put),
		"a page":             c.get("/signin"),
	} {
		t.Run(name, func(t *testing.T) {
			for _, hdr := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Cache-Control", "Strict-Transport-Security"} {
				if r.header.Get(hdr) == "" {
					t.Errorf("status %d: no %s", r.status, hdr)
				}
			}
		})
	}
}

// TestSiteNamesDoNotSquat: a site may not take an account's e-mail or an
// open invitation's, and an invitation may not name a site.
func TestSiteNamesDoNotSquat(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	pa.invite(bobEm, pki.RoleOrgAdmin, "clinic-b")
	for _, name := range []string{aliceEm, strings.ToUpper(bobEm), paEmail} {
		alice.post("/sites", url.Values{"name": {name}}).want(t, http.StatusConflict, "already the name of")
	}
	alice.addSite(url.Values{"name": {memberEm}})
	pa.post("/invitations", url.Values{"email": {memberEm}, "role": {"member"}, "org": {"clinic-a"}}).
		want(t, http.StatusConflict, "already the name of a site")
	pa.post("/invitations", url.Values{"email": {"server@hub.org"}, "role": {"member"}, "org": {"hub"}}).want(t, http.StatusOK)
}

// TestCSRHostsCheckedAtUpload: a site CSR asking for a host name that a
// site's certificate may not carry is refused when uploaded.
func TestCSRHostsCheckedAtUpload(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	site := alice.addSite(url.Values{"name": {"site-a"}})
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		id   pki.Identity
	}{
		{site + "/csr", pki.Identity{Name: "site-a", Org: "clinic-a", Kind: pki.KindSite}},
		{"/me/csr", pki.Identity{Name: aliceEm, Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleOrgAdmin}},
	} {
		csr, err := pki.NewCSR(c.id, key, []string{"hub.example.org"})
		if err != nil {
			t.Fatal(err)
		}
		alice.upload(c.path, csr).want(t, http.StatusBadRequest, "host")
	}
	pa.get("/requests").want(t, 200, "No requests yet")
}

// TestRevokedStaysOut: a revoked site's kit is no longer handed out; a
// revoked account's sessions end and it cannot sign in again.
func TestRevokedStaysOut(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	site := alice.addSite(url.Values{"name": {"site-a"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-a", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site+"/csr", csr).want(t, http.StatusSeeOther)
	_, own := makeCSR(t, pki.Identity{Name: aliceEm, Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleOrgAdmin})
	alice.upload("/me/csr", own).want(t, http.StatusSeeOther)
	pa.approveAll()
	alice.get(site+"/kit").want(t, 200)
	alice.get("/me/kit").want(t, 200)

	pa.get("/participants")
	pa.post("/participants/site-a/revoke", nil).want(t, http.StatusSeeOther)
	alice.get(site+"/kit").want(t, http.StatusGone, "revoked")

	pa.post("/participants/"+aliceEm+"/revoke", nil).want(t, http.StatusSeeOther)
	if r := alice.get("/"); r.location != "/signin" {
		t.Fatalf("a revoked account's session still works: %d %s", r.status, r.location)
	}
	_, r := h.signin(aliceEm, alicePw)
	r.want(t, http.StatusUnauthorized, errSignin)
}

// TestAuditPaged: the audit page shows auditPageSize rows, newest first,
// and links to the older ones; the chain is checked whole.
func TestAuditPaged(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	for i := range auditPageSize + 10 {
		if err := audit(context.Background(), h.srv.db, h.clock.Now(), "tester", "test.page", fmt.Sprint(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	total := auditPageSize + 11 // and the setup row
	r := pa.get("/audit").want(t, 200, fmt.Sprintf("%d entries", total), `id="chain">intact`, `href="/audit?before=12"`)
	if n := strings.Count(r.body, "test.page"); n != auditPageSize {
		t.Fatalf("%d rows on the first page, want %d", n, auditPageSize)
	}
	r = pa.get("/audit?before=12").want(t, 200, "setup")
	if n := strings.Count(r.body, "test.page"); n != 10 || strings.Contains(r.body, `id="older"`) {
		t.Fatalf("the last page: %d rows, older link %t", n, strings.Contains(r.body, `id="older"`))
	}
	if _, err := h.srv.db.Exec(`UPDATE audit SET detail = 'changed' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	pa.get("/audit").want(t, 200, "BROKEN: audit row 3")
}
