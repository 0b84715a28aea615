package dashboard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// browserRequest is what static/csr.js's makeRequest answered for one
// case, run under Node.
type browserRequest struct {
	CSR   string `json:"csr"`
	Key   string `json:"key"`
	Error string `json:"error"`
}

// runCSRScript runs static/csr.js's makeRequest under Node (its WebCrypto
// has Ed25519, as Chromium's does) for each case, or skips without node.
// The browser test (integration/dashboard_test.go) runs the same file in
// Chromium.
func runCSRScript(t *testing.T, cases []map[string]any) []browserRequest {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH: the browser test runs static/csr.js in Chromium instead")
	}
	const driver = `
const {makeRequest} = require(process.argv[1]);
(async () => {
  const out = [];
  for (const c of JSON.parse(process.argv[2])) {
    try { out.push(await makeRequest(c.id, c.hosts)); } catch (e) { out.push({error: e.message}); }
  }
  process.stdout.write(JSON.stringify(out));
})();`
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", driver, "./static/csr.js", string(in))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node static/csr.js: %v\n%s", err, stderr.String())
	}
	var got []browserRequest
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("node answered %d results (%v) for %d cases: %s", len(got), err, len(cases), out)
	}
	return got
}

// TestBrowserCSRIsGoCSR: the request static/csr.js makes is, byte for
// byte, the one pki.NewCSR makes for the same identity, hosts and key
// (Ed25519 signs deterministically), it parses with pki.ParseCSR as the
// identity asked for, and its key.pem is pki.EncodeKey's. A request whose
// subject was changed after signing is refused; so are identities
// bus/pki would refuse.
func TestBrowserCSRIsGoCSR(t *testing.T) {
	good := []struct {
		name  string
		id    pki.Identity
		hosts []string
	}{
		{"site", pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite}, nil},
		{"site with its loopback names", pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite}, []string{"localhost", "127.0.0.1"}},
		{"admin with a role (UTF8String names)", pki.Identity{Name: "ann@clinic-a.org", Org: "clinic_a", Kind: pki.KindAdmin, Role: pki.RoleProjectAdmin}, nil},
		{"member", pki.Identity{Name: "bob@clinic-a.org", Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleMember}, nil},
		{"aggregator", pki.Identity{Name: "agg-1", Org: "hub", Kind: pki.KindAggregator}, nil},
		{"IPv6 and IPv4-mapped hosts", pki.Identity{Name: "agg-1", Org: "hub", Kind: pki.KindAggregator},
			[]string{"::1", "2001:db8::8:800:200c:417a", "::ffff:10.0.0.1", "fe80::1:2:3:4", "a.example", "1.2.3"}},
		{"a long name (long-form DER lengths)", pki.Identity{Name: strings.Repeat("n", 63), Org: strings.Repeat("o", 63), Kind: pki.KindSite},
			[]string{strings.Repeat("h", 60) + ".example", "10.1.2.3"}},
	}
	bad := []struct {
		name string
		id   map[string]string
		want string
	}{
		{"a name bus/pki refuses", map[string]string{"name": "site one", "org": "clinic-a", "kind": "site"}, "invalid name"},
		{"no org", map[string]string{"name": "site-1", "kind": "site"}, "invalid org"},
		{"a server", map[string]string{"name": "server", "org": "hub", "kind": "server"}, "invalid kind"},
		{"an admin without a role", map[string]string{"name": "a@b.org", "org": "b", "kind": "admin"}, "role"},
		{"a site with a role", map[string]string{"name": "site-1", "org": "b", "kind": "site", "role": "member"}, "role"},
	}
	var cases []map[string]any
	for _, c := range good {
		cases = append(cases, map[string]any{"id": map[string]string{"name": c.id.Name, "org": c.id.Org, "kind": string(c.id.Kind), "role": string(c.id.Role)}, "hosts": append([]string{}, c.hosts...)})
	}
	for _, c := range bad {
		cases = append(cases, map[string]any{"id": c.id, "hosts": []string{}})
	}
	results := runCSRScript(t, cases)

	for i, c := range good {
		t.Run(c.name, func(t *testing.T) {
			got := results[i]
			if got.Error != "" {
				t.Fatalf("csr.js: %s", got.Error)
			}
			key, err := pki.ParseKeyPEM([]byte(got.Key))
			if err != nil {
				t.Fatalf("key.pem from csr.js: %v", err)
			}
			if !bytes.Equal([]byte(got.Key), pki.EncodeKey(key)) {
				t.Errorf("key.pem from csr.js:\n%s\nis not pki.EncodeKey's:\n%s", got.Key, pki.EncodeKey(key))
			}
			want, err := pki.NewCSR(c.id, key, c.hosts)
			if err != nil {
				t.Fatal(err)
			}
			if got.CSR != string(want) {
				t.Errorf("csr.js made\n%s\npki.NewCSR makes\n%s", got.CSR, want)
			}
			req, err := pki.ParseCSR([]byte(got.CSR))
			if err != nil {
				t.Fatalf("pki.ParseCSR refuses the request from csr.js: %v", err)
			}
			if req.Identity != c.id || !req.PublicKey.Equal(key.Public()) {
				t.Errorf("request for %v (key %x), want %v", req.Identity, req.PublicKey, c.id)
			}
		})
	}
	for i, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if got := results[len(good)+i]; !strings.Contains(got.Error, c.want) {
				t.Errorf("csr.js answered %+v, want an error with %q", got, c.want)
			}
		})
	}

	t.Run("subject changed after signing", func(t *testing.T) {
		tampered := pkitest.AlterSignedCSR(t, []byte(results[0].CSR), "site-1", "site-9")
		if _, err := pki.ParseCSR(tampered); err == nil || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("a request whose name was changed after signing: %v, want a signature error", err)
		}
	})
}

// TestBrowserCSRUploaded: a request made by static/csr.js, uploaded for
// its site, passes the dashboard's checks (pki.ParseCSR, the site's
// identity, provision.CheckRequest) and waits for approval; one whose
// org was changed after signing is refused for its signature, and one
// made in the browser for another site's name is refused naming it.
func TestBrowserCSRUploaded(t *testing.T) {
	id := func(name string) map[string]any {
		return map[string]any{"id": map[string]string{"name": name, "org": "clinic-a", "kind": "site"}, "hosts": []string{}}
	}
	made := runCSRScript(t, []map[string]any{id("site-1"), id("site-2")})
	h := newHarness(t)
	_, alice := h.projectAndOrgAdmin()
	page := alice.addSite(url.Values{"name": {"site-1"}})

	tampered := pkitest.AlterSignedCSR(t, []byte(made[0].CSR), "clinic-a", "clinic-b")
	alice.upload(page+"/csr", tampered).want(t, http.StatusBadRequest, "certificate request signature")
	alice.upload(page+"/csr", []byte(made[1].CSR)).want(t, http.StatusBadRequest, `name "site-2", not "site-1"`)
	alice.get(page).want(t, 200, `id="site-status">no request`)
	alice.upload(page+"/csr", []byte(made[0].CSR)).want(t, http.StatusSeeOther)
	alice.get(page).want(t, 200, `id="site-status">pending`)
}

// TestPagesOfferBrowserCSR: the pages where a site's or one's own request
// is uploaded offer the browser-made key for exactly the identity the
// request must ask for; static/csr.js is served without a session as
// JavaScript, and the CSP lets the pages run that script and no other
// (no inline script, no eval, nowhere to connect).
func TestPagesOfferBrowserCSR(t *testing.T) {
	h := newHarness(t)
	script := h.client().get("/static/csr.js").want(t, 200, `generateKey({ name: "Ed25519" }`)
	if ct := script.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("csr.js served as %q", ct)
	}
	if script.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("csr.js without nosniff")
	}
	embedded, err := staticFS.ReadFile("static/csr.js")
	if err != nil || script.body != string(embedded) {
		t.Errorf("/static/csr.js is not the embedded static/csr.js (%v)", err)
	}

	pa := h.setupAdmin(paEmail, "hub", paPass)
	home := pa.get("/").want(t, 200, `data-name="pa@hub.org" data-org="hub" data-kind="admin" data-role="project_admin" data-field="csr" data-upload="upload-own"`, `<script src="/static/csr.js" defer></script>`)
	csp := home.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, never := range []string{"unsafe-inline", "unsafe-eval", "connect-src", "blob:", "data:"} {
		if strings.Contains(csp, never) {
			t.Errorf("CSP %q allows %q", csp, never)
		}
	}
	if strings.Count(home.body, "<script") != 1 {
		t.Errorf("the home page has %d script elements, want the one of csr.js", strings.Count(home.body, "<script"))
	}

	alice := h.accept(pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a"), alicePw)
	page := alice.addSite(url.Values{"name": {"site-1"}})
	alice.get(page).want(t, 200, `data-name="site-1" data-org="clinic-a" data-kind="site" data-role="" data-field="csr" data-upload="upload-csr"`, `id="upload-csr"`)
	carol := h.accept(pa.invite(memberEm, pki.RoleMember, "clinic-a"), memberPw)
	if body := carol.get(page).want(t, 200, "site-1").body; strings.Contains(body, "webcrypto-csr") {
		t.Error("a member, who may not upload the site's request, is offered a key for it")
	}
}
