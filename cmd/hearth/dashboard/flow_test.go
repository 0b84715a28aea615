package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
	"github.com/hearthfl/hearth/policies/resources"
)

const (
	paEmail  = "pa@hub.org"
	paPass   = "project admin password"
	aliceEm  = "alice@clinic-a.org"
	alicePw  = "alice's long password"
	bobEm    = "bob@clinic-b.org"
	bobPw    = "bob's long password!"
	memberEm = "carol@clinic-a.org"
	memberPw = "carol's long password"
)

// TestWholeFlow: the project admin sets up and invites an org admin, who
// accepts, adds two sites (one through a proxy) and uploads their CSRs and
// its own; the project admin approves; the kits download, take their key
// and load (kit.Load: root-signed manifest, certificate, key), carry the
// site's settings, and the server kit admits them. A site approved with
// `hearth cert approve` (provision.Approve) in the same workspace loads
// too: the two kinds of kits are one kind.
func TestWholeFlow(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	if h.srv.SetupPath() != "" {
		t.Fatal("the setup link still works after the project admin was made")
	}
	alice := h.accept(pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a"), alicePw)

	site1 := alice.addSite(url.Values{"name": {"site-1"}, "gpus": {"2"}, "gpu_memory_gib": {"80"}, "aggregates": {"1"}})
	site2 := alice.addSite(url.Values{"name": {"site-2"}, "proxy": {"http://127.0.0.1:3128"}, "websocket": {"1"}})
	alice.get(site1).want(t, 200, "2 × 80 GiB", "no request")
	alice.post("/sites", url.Values{"name": {"site-big"}, "gpu_memory_gib": {"5000"}}).want(t, http.StatusBadRequest, "not a number in 0..4096")
	reqs := map[string]string{}
	for name, page := range map[string]string{"site-1": site1, "site-2": site2} {
		dir, csr := makeCSR(t, pki.Identity{Name: name, Org: "clinic-a", Kind: pki.KindSite})
		reqs[name] = dir
		alice.upload(page+"/csr", csr).want(t, http.StatusSeeOther)
		alice.get(page).want(t, 200, `id="site-status">pending`)
	}
	ownDir, ownCSR := makeCSR(t, pki.Identity{Name: aliceEm, Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleOrgAdmin})
	alice.upload("/me/csr", ownCSR).want(t, http.StatusSeeOther)

	// Meanwhile the CLI approves a site of its own in the same workspace.
	cliDir, cliCSR := makeCSR(t, pki.Identity{Name: "site-cli", Org: "clinic-c", Kind: pki.KindSite})
	if _, err := provision.Approve(h.ws, []byte(testPassphrase), cliCSR, policies.Defaults(), time.Now()); err != nil {
		t.Fatal(err)
	}

	pa.get("/").want(t, 200, "3 certificate request(s)")
	approved := pa.approveAll()
	slices.Sort(approved)
	if want := []string{aliceEm, "site-1", "site-2"}; !slices.Equal(approved, want) {
		t.Fatalf("approved %v, want %v", approved, want)
	}

	root, err := provision.RootFingerprint(h.ws)
	if err != nil {
		t.Fatal(err)
	}
	kits := t.TempDir()
	load := func(name, page, reqDir string) *kit.Kit {
		t.Helper()
		alice.get(page).want(t, 200, root.String())
		r := alice.get(page+"/kit").want(t, 200)
		if r.header.Get("Content-Type") != "application/gzip" {
			t.Fatalf("kit of %s: Content-Type %q", name, r.header.Get("Content-Type"))
		}
		untar(t, []byte(r.body), kits)
		dir := filepath.Join(kits, name)
		if _, err := os.Stat(filepath.Join(dir, kit.KeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("kit of %s carries a key.pem (%v)", name, err)
		}
		if _, err := kit.Load(dir); err == nil || !strings.Contains(err.Error(), "key.pem") {
			t.Fatalf("kit of %s without its key: %v, want a refusal naming key.pem", name, err)
		}
		copyKey(t, reqDir, dir)
		k, err := kit.Load(dir)
		if err != nil {
			t.Fatalf("kit of %s: %v", name, err)
		}
		if k.RootFingerprint() != root {
			t.Fatalf("kit of %s: root %s, the page showed %s", name, k.RootFingerprint(), root)
		}
		return k
	}
	k1 := load("site-1", site1, reqs["site-1"])
	k2 := load("site-2", site2, reqs["site-2"])
	if k1.Config.Leaf == nil || k1.Config.Leaf.Proxy != "" || k1.Config.Leaf.Websocket {
		t.Errorf("site-1 leaf settings %+v, want none", k1.Config.Leaf)
	}
	if k2.Config.Leaf == nil || k2.Config.Leaf.Proxy != "http://127.0.0.1:3128" || !k2.Config.Leaf.Websocket {
		t.Errorf("site-2 leaf settings %+v, want the proxy and websocket registered", k2.Config.Leaf)
	}
	// Each kit's resources (root-signed: kit.Load checked them) are the
	// site's: its GPUs, and whether it aggregates (site-2 was registered
	// without, so its kit says "aggregate": false and it refuses to be a
	// swarm job's aggregator: participant.TestSiteThatDoesNotAggregate...).
	type offered struct {
		gpus       int
		memory     float64
		aggregates bool
	}
	for k, want := range map[*kit.Kit]offered{k1: {2, 80, true}, k2: {0, 0, false}} {
		o, err := resources.ParseFile(k.PolicyPath("resources.json"))
		if got := (offered{o.GPUs, o.MemPerGPU, o.Aggregates()}); err != nil || got != want || o.Aggregate == nil {
			t.Errorf("%s's resources.json: %+v (%v), want %+v with aggregate written", k.Config.Name, got, err, want)
		}
	}
	own := alice.get("/me/kit").want(t, 200)
	untar(t, []byte(own.body), kits)
	copyKey(t, ownDir, filepath.Join(kits, aliceEm))
	if k, err := kit.Load(filepath.Join(kits, aliceEm)); err != nil {
		t.Fatal(err)
	} else if id := k.Config.Identity(); id != (pki.Identity{Name: aliceEm, Org: "clinic-a", Kind: pki.KindAdmin, Role: pki.RoleOrgAdmin}) {
		t.Fatalf("alice's kit is for %s", id)
	}

	cliKit := provision.KitDir(h.ws, "site-cli")
	copyKey(t, cliDir, cliKit)
	if _, err := kit.Load(cliKit); err != nil {
		t.Fatalf("the CLI's kit beside the dashboard's: %v", err)
	}
	server, err := kit.Load(provision.KitDir(h.ws, "server"))
	if err != nil {
		t.Fatal(err)
	}
	var admitted []string
	for _, p := range server.Participants {
		admitted = append(admitted, p.Name)
	}
	slices.Sort(admitted)
	if want := []string{aliceEm, "site-1", "site-2", "site-cli"}; !slices.Equal(admitted, want) {
		t.Fatalf("the server kit admits %v, want %v", admitted, want)
	}

	// Revocation from the page signs the CRL `hearth cert revoke` does.
	pa.get("/participants").want(t, 200, "site-cli", "provision", "dashboard")
	pa.post("/participants/site-1/revoke", nil).want(t, http.StatusSeeOther)
	pa.get("/participants").want(t, 200, "revoked")
	if _, err := kit.Load(provision.KitDir(h.ws, "site-1")); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("site-1's kit after revocation: %v, want ErrRevoked", err)
	}
	if _, err := os.Stat(filepath.Join(h.ws, "ca", "crl.pem")); err != nil {
		t.Fatal(err)
	}

	entries, err := readAudit(t.Context(), h.srv.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyAudit(entries); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"setup", "invite.create", "invite.accept", "site.add", "csr.upload", "cert.approve", "kit.download", "cert.revoke"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
	pa.get("/audit").want(t, 200, `id="chain">intact`)
}
