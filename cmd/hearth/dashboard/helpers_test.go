package dashboard

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"html"
	"io"
	"log"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
)

const testPassphrase = "a long test passphrase"

// testHash keeps tests fast; DefaultHashParams is measured by
// BenchmarkPasswordHash.
var testHash = HashParams{Time: 1, Memory: 64, Threads: 1}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a provisioned workspace (server only) and a dashboard serving
// it over real TLS on loopback.
type harness struct {
	t     *testing.T
	ws    string
	srv   *Server
	ts    *httptest.Server
	clock *clock
	pool  *x509.CertPool
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil, nil)
}

// newHarnessWith provisions sites beside the server as well, and lets
// configure change the dashboard's configuration.
func newHarnessWith(t *testing.T, sites []provision.SiteSpec, configure func(*Config)) *harness {
	t.Helper()
	return newHarnessOn(t, nil, sites, configure)
}

// newHarnessOn is newHarnessWith serving on ln (nil: a new loopback
// listener), for a test that must know the address before the dashboard
// is configured (a provider's redirect URI).
func newHarnessOn(t *testing.T, ln net.Listener, sites []provision.SiteSpec, configure func(*Config)) *harness {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "ws")
	now := time.Now()
	p := &provision.Project{APIVersion: 1, Name: "demo",
		Server: provision.ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost", "127.0.0.1"}, LeafPort: 17422, ClientPort: 17222, WebsocketPort: 17443}, Sites: sites}
	if _, err := provision.Provision(p, ws, []byte(testPassphrase), policies.Defaults(), now); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, ws, ln, now, configure)
	rootPEM, err := os.ReadFile(filepath.Join(ws, "ca", "rootCA.pem"))
	if err != nil {
		t.Fatal(err)
	}
	h.pool = newPool(rootPEM)
	return h
}

// newPool is a pool of the PEM certificates in pemCerts.
func newPool(pemCerts []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCerts)
	return pool
}

// startHarness serves a dashboard on ws, which may be empty (then clients
// skip verifying its certificate: before the project exists it is
// self-signed).
func startHarness(t *testing.T, ws string, ln net.Listener, now time.Time, configure func(*Config)) *harness {
	t.Helper()
	c := &clock{t: now}
	cfg := Config{Workspace: ws, Passphrase: []byte(testPassphrase), Listen: "127.0.0.1:0",
		Defaults: policies.Defaults(), Now: c.Now, HashParams: testHash}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	if ln != nil {
		ts.Listener.Close()
		ts.Listener = ln
	}
	// The dashboard's own TLS configuration, not StartTLS's, which would
	// put httptest's certificate before the dashboard's GetCertificate.
	ts.Listener = tls.NewListener(ts.Listener, srv.TLSConfig())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Start()
	ts.URL = "https://" + strings.TrimPrefix(ts.URL, "http://")
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return &harness{t: t, ws: ws, srv: srv, ts: ts, clock: c}
}

// client is a browser-like client: a cookie jar, the project root
// trusted, redirects not followed (tests look at them).
type client struct {
	h    *harness
	c    *http.Client
	csrf string // the session's token, read from the last page that had one
}

func (h *harness) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{h: h, c: &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool, InsecureSkipVerify: h.pool == nil}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// response is what a request got.
type response struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (c *client) do(req *http.Request) response {
	c.h.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(body); m != nil {
		c.csrf = string(m[1])
	}
	return response{status: resp.StatusCode, body: html.UnescapeString(string(body)), location: resp.Header.Get("Location"), header: resp.Header}
}

func (c *client) get(path string) response {
	c.h.t.Helper()
	req, _ := http.NewRequest("GET", c.h.ts.URL+path, nil)
	return c.do(req)
}

// post sends a form with the current CSRF token unless form sets one.
func (c *client) post(path string, form url.Values) response {
	c.h.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf") {
		form.Set("csrf", c.csrf)
	}
	req, _ := http.NewRequest("POST", c.h.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// upload sends a CSR as the file field of a multipart form.
func (c *client) upload(path string, csr []byte) response {
	c.h.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("csrf", c.csrf)
	fw, _ := mw.CreateFormFile("csr_file", "req.csr")
	fw.Write(csr)
	mw.Close()
	req, _ := http.NewRequest("POST", c.h.ts.URL+path, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

func (r response) want(t *testing.T, status int, contains ...string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, excerpt(r.body))
	}
	for _, s := range contains {
		if !strings.Contains(r.body, s) {
			t.Fatalf("body lacks %q:\n%s", s, excerpt(r.body))
		}
	}
	return r
}

// excerpt is the part of a page a failure shows: its main, or its start.
func excerpt(body string) string {
	if i := strings.Index(body, "<main>"); i >= 0 {
		body = body[i:]
	}
	if len(body) > 1500 {
		body = body[:1500] + "..."
	}
	return body
}

// projectAndOrgAdmin is most tests' start: the project admin (paEmail, of
// org "hub") set up, and alice, clinic-a's org admin, invited by them and
// signed in.
func (h *harness) projectAndOrgAdmin() (pa, alice *client) {
	h.t.Helper()
	pa = h.setupAdmin(paEmail, "hub", paPass)
	return pa, h.accept(pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a"), alicePw)
}

// setupAdmin sets the project admin up through the one-time link.
func (h *harness) setupAdmin(email, org, password string) *client {
	h.t.Helper()
	c := h.client()
	path := h.srv.SetupPath()
	if path == "" {
		h.t.Fatal("no setup link")
	}
	c.get(path).want(h.t, 200, "Set up the project admin")
	r := c.post(path, url.Values{"email": {email}, "org": {org}, "password": {password}, "confirm": {password}})
	if r.status != http.StatusSeeOther || r.location != "/" {
		h.t.Fatalf("setup: %d %s\n%s", r.status, r.location, excerpt(r.body))
	}
	c.get("/").want(h.t, 200, email)
	return c
}

var inviteLinkRE = regexp.MustCompile(`id="invite-link">([^<]+)<`)

// invite has pa invite email and returns the link's path.
func (c *client) invite(email string, role pki.Role, org string) string {
	c.h.t.Helper()
	r := c.post("/invitations", url.Values{"email": {email}, "role": {string(role)}, "org": {org}}).want(c.h.t, 200, "No mail is sent")
	m := inviteLinkRE.FindStringSubmatch(r.body)
	if m == nil {
		c.h.t.Fatalf("no invitation link in\n%s", excerpt(r.body))
	}
	u, err := url.Parse(m[1])
	if err != nil {
		c.h.t.Fatal(err)
	}
	return u.Path
}

// accept accepts an invitation in a new client and returns it signed in.
func (h *harness) accept(path, password string) *client {
	h.t.Helper()
	c := h.client()
	c.get(path).want(h.t, 200, "Accept the invitation")
	r := c.post(path, url.Values{"password": {password}, "confirm": {password}})
	if r.status != http.StatusSeeOther {
		h.t.Fatalf("accept: %d\n%s", r.status, excerpt(r.body))
	}
	c.get("/").want(h.t, 200)
	return c
}

// signin signs in a new client.
func (h *harness) signin(email, password string) (*client, response) {
	h.t.Helper()
	c := h.client()
	c.get("/signin")
	return c, c.post("/signin", url.Values{"email": {email}, "password": {password}})
}

var siteRE = regexp.MustCompile(`^/sites/(\d+)$`)

// addSite registers a site and returns its page's path.
func (c *client) addSite(form url.Values) string {
	c.h.t.Helper()
	r := c.post("/sites", form)
	if r.status != http.StatusSeeOther || !siteRE.MatchString(r.location) {
		c.h.t.Fatalf("add site: %d %s\n%s", r.status, r.location, excerpt(r.body))
	}
	return r.location
}

// makeCSR makes a key and CSR for id as `hearth cert request` does, in
// its own folder, and returns the folder and the CSR.
func makeCSR(t *testing.T, id pki.Identity) (dir string, csr []byte) {
	t.Helper()
	dir = t.TempDir()
	files, err := provision.Request(dir, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	csr, err = os.ReadFile(files.CSR)
	if err != nil {
		t.Fatal(err)
	}
	return dir, csr
}

var approveRE = regexp.MustCompile(`action="/requests/(\d+)/approve"><input type="hidden" name="csrf" value="[^"]+"><input type="hidden" name="key_sha256" value="([^"]+)"><button type="submit" id="approve-([^"]+)"`)

// approveAll approves every pending request as the requests page shows
// it (its id and key digest), returning the names.
func (c *client) approveAll() []string {
	c.h.t.Helper()
	r := c.get("/requests").want(c.h.t, 200)
	var names []string
	for _, m := range approveRE.FindAllStringSubmatch(r.body, -1) {
		c.post("/requests/"+m[1]+"/approve", url.Values{"key_sha256": {m[2]}}).want(c.h.t, http.StatusSeeOther)
		names = append(names, m[3])
	}
	return names
}

// shownRequest is a pending request as the requests page showed it: what
// its approve form sends.
type shownRequest struct{ id, digest, name string }

// approveForm is the form approving r.
func (r shownRequest) approveForm() url.Values { return url.Values{"key_sha256": {r.digest}} }

// pendingShown reads the one pending request off the requests page.
func (c *client) pendingShown() shownRequest {
	c.h.t.Helper()
	m := approveRE.FindAllStringSubmatch(c.get("/requests").want(c.h.t, 200).body, -1)
	if len(m) != 1 {
		c.h.t.Fatalf("%d pending requests on the page, want one", len(m))
	}
	return shownRequest{id: m[0][1], digest: m[0][2], name: m[0][3]}
}

// untar unpacks a kit archive into dir.
func untar(t *testing.T, data []byte, dir string) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(name, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q escapes", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, os.FileMode(hdr.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, data, os.FileMode(hdr.Mode)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("archive entry %q of type %c", hdr.Name, hdr.Typeflag)
		}
	}
}

// copyKey puts the requester's key into an unpacked kit, as the page says.
func copyKey(t *testing.T, reqDir, kitDir string) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(reqDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kitDir, "key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
}
