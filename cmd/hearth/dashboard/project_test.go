package dashboard

import (
	"context"
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
)

// newProject is the setup form for an empty workspace.
func newProject(email, org, password string) url.Values {
	return url.Values{"project": {"fresh"}, "hosts": {"hub.example.org, 127.0.0.1"}, "leaf_port": {"17422"}, "client_port": {"17222"},
		"email": {email}, "org": {org}, "password": {password}, "confirm": {password}}
}

// TestEmptyWorkspace: in an empty folder the setup link also creates the
// project through provision.Provision (the CA, its key under the
// passphrase, the server's kit); refused forms create nothing.
func TestEmptyWorkspace(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws")
	h := startHarness(t, ws, nil, time.Now(), nil)
	c := h.client()
	path := h.srv.SetupPath()
	if path == "" {
		t.Fatal("no setup link in an empty workspace")
	}
	c.get(path).want(t, 200, "Create the project", `id="leaf_port"`, `value="7422"`, `value="4222"`)

	for _, tc := range []struct {
		name string
		edit func(url.Values)
		want string
	}{
		{"bad project name", func(f url.Values) { f.Set("project", "no spaces allowed") }, "project: name"},
		{"no hosts", func(f url.Values) { f.Set("hosts", " , ") }, "server.hosts"},
		{"not a port", func(f url.Values) { f.Set("leaf_port", "seven") }, `leaf_port: "seven" is not a number`},
		{"ports clash", func(f url.Values) { f.Set("client_port", "17422") }, "already leaf_port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newProject(paEmail, "hub", paPass)
			tc.edit(f)
			c.get(path)
			c.post(path, f).want(t, http.StatusBadRequest, tc.want)
			if _, err := os.Stat(filepath.Join(ws, "ca")); err == nil {
				t.Fatal("a refused form made the CA")
			}
		})
	}

	c.get(path)
	r := c.post(path, newProject(paEmail, "hub", paPass))
	if r.status != http.StatusSeeOther {
		t.Fatalf("setup: %d\n%s", r.status, excerpt(r.body))
	}
	if h.srv.SetupPath() != "" {
		t.Fatal("the setup link still works after the project was made")
	}
	p, err := provision.ReadProject(ws)
	if err != nil {
		t.Fatal(err)
	}
	want := provision.ServerSpec{Name: "server", Org: "hub", Hosts: []string{"hub.example.org", "127.0.0.1"}, LeafPort: 17422, ClientPort: 17222}
	if p.Name != "fresh" || p.Server.Name != want.Name || p.Server.Org != want.Org || !slices.Equal(p.Server.Hosts, want.Hosts) ||
		p.Server.LeafPort != want.LeafPort || p.Server.ClientPort != want.ClientPort || p.Server.WebsocketPort != 0 {
		t.Fatalf("project %s, server %+v", p.Name, p.Server)
	}
	k, err := kit.Load(provision.KitDir(ws, "server"))
	if err != nil {
		t.Fatalf("server kit: %v", err)
	}
	if !slices.Equal(k.Config.Server.Hosts, want.Hosts) || k.Config.Server.LeafPort != 17422 {
		t.Fatalf("server kit's server %+v", k.Config.Server)
	}
	if _, err := provision.OpenCA(ws, []byte("another passphrase")); err == nil {
		t.Fatal("the CA key opens with another passphrase")
	}
	if _, err := provision.OpenCA(ws, []byte(testPassphrase)); err != nil {
		t.Fatalf("the CA key under the dashboard's passphrase: %v", err)
	}
	root, _ := provision.RootFingerprint(ws)
	c.get("/").want(t, 200, root.String(), "fresh")
	entries, err := readAudit(context.Background(), h.srv.db)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(entries, func(e AuditEntry) bool { return e.Action == "project.create" && e.Target == "fresh" }) {
		t.Fatalf("audit %+v, want a project.create row", entries)
	}

	// New connections get a certificate from the new root.
	rootPEM, _ := os.ReadFile(filepath.Join(ws, "ca", "rootCA.pem"))
	h.pool = newPool(rootPEM)
	h.client().get("/signin").want(t, 200)

	// The workspace is now a project: a second dashboard on it opens it.
	h.srv.Close()
	srv, err := New(context.Background(), Config{Workspace: ws, Passphrase: []byte(testPassphrase), Listen: "127.0.0.1:0", Defaults: policies.Defaults(), HashParams: testHash})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.SetupPath() != "" || srv.projectName() != "fresh" {
		t.Fatalf("reopened: setup %q, project %q", srv.SetupPath(), srv.projectName())
	}
}

// TestNonEmptyFolderRefused: a folder that holds anything but a project
// (or the dashboard's own folder) is no workspace to create one in.
func TestNonEmptyFolderRefused(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), Config{Workspace: ws, Passphrase: []byte(testPassphrase), Listen: "127.0.0.1:0", Defaults: policies.Defaults(), HashParams: testHash})
	if err == nil || !strings.Contains(err.Error(), "not empty (notes.txt)") {
		t.Fatalf("New on a non-empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ws, "dashboard")); err == nil {
		t.Fatal("the refused folder got a dashboard database")
	}
}

// TestChangeServer: the project admin changes the server's hosts and
// ports while only the server has a kit (re-issued, audited); an org admin
// and a lead are refused, as is a form without its CSRF token; once a site
// has a kit the change is refused with the reason, and nothing changes.
func TestChangeServer(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	lead := h.accept(pa.invite("lee@clinic-a.org", pki.RoleLead, "clinic-a"), "lead's password!")
	// change is the form (a new one each time: post adds the csrf field).
	change := func(leafPort string) url.Values {
		return url.Values{"hosts": {"hub.example.org, 127.0.0.1"}, "leaf_port": {leafPort}, "client_port": {"17501"}, "websocket_port": {"17502"}}
	}

	for name, c := range map[string]*client{"org admin": alice, "lead": lead} {
		t.Run(name, func(t *testing.T) {
			c.get("/").want(t, 200)
			c.get("/project").want(t, http.StatusForbidden)
			c.post("/project", change("17500")).want(t, http.StatusForbidden)
		})
	}
	pa.get("/project").want(t, 200, `id="server-leaf-port">17422`)
	forged := change("17500")
	forged.Set("csrf", "forged")
	pa.post("/project", forged).want(t, http.StatusForbidden, "CSRF token")
	bad := url.Values{"hosts": {"hub.example.org"}, "leaf_port": {"17500"}, "client_port": {"17500"}}
	pa.post("/project", bad).want(t, http.StatusBadRequest, "already leaf_port")
	if p, _ := provision.ReadProject(h.ws); p.Server.LeafPort != 17422 {
		t.Fatalf("a refused change changed the server: %+v", p.Server)
	}
	if rows := auditRows(t, h, "project.server.refused"); len(rows) != 1 || rows[0].Actor != paEmail || !strings.Contains(rows[0].Detail, "already leaf_port") {
		t.Fatalf("the refused change audited as %+v, want one project.server.refused row naming the reason", rows)
	}

	pa.get("/project")
	if r := pa.post("/project", change("17500")); r.status != http.StatusSeeOther {
		t.Fatalf("change the server: %d\n%s", r.status, excerpt(r.body))
	}
	k, err := kit.Load(provision.KitDir(h.ws, "server"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Config.Server.LeafPort != 17500 || !slices.Equal(k.Config.Server.Hosts, []string{"hub.example.org", "127.0.0.1"}) {
		t.Fatalf("server kit after the change: %+v", k.Config.Server)
	}
	pa.get("/project").want(t, 200, `id="server-leaf-port">17500`)
	entries, _ := readAudit(context.Background(), h.srv.db)
	if !slices.ContainsFunc(entries, func(e AuditEntry) bool { return e.Action == "project.server" && e.Actor == paEmail }) {
		t.Fatalf("no project.server row in the audit: %+v", entries)
	}

	// A site's kit: the server stays.
	page := alice.addSite(url.Values{"name": {"site-1"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(page+"/csr", csr).want(t, http.StatusSeeOther)
	pa.approveAll()
	pa.get("/project")
	pa.post("/project", change("17600")).want(t, http.StatusConflict, "the kits of site-1 already carry the server's address", "re-issuing")
	if p, _ := provision.ReadProject(h.ws); p.Server.LeafPort != 17500 {
		t.Fatalf("a refused change changed the server: %+v", p.Server)
	}
	if rows := auditRows(t, h, "project.server.refused"); len(rows) != 2 || !strings.Contains(rows[1].Detail, "the kits of site-1 already carry") {
		t.Fatalf("the change refused once a site has a kit audited as %+v", rows)
	}
}

// TestAddAggregator: the project admin adds an aggregation host from its
// CSR (its kit issued at once, the server kit admitting it, audited); an
// org admin is refused, as are a site's CSR and a taken name.
func TestAddAggregator(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	reqDir, csr := makeCSR(t, pki.Identity{Name: "agg-1", Org: "hub", Kind: pki.KindAggregator})

	alice.get("/")
	alice.upload("/project/aggregators", csr).want(t, http.StatusForbidden)
	pa.get("/project")
	_, siteCSR := makeCSR(t, pki.Identity{Name: "site-9", Org: "hub", Kind: pki.KindSite})
	pa.upload("/project/aggregators", siteCSR).want(t, http.StatusBadRequest, "not an aggregation host")
	_, squat := makeCSR(t, pki.Identity{Name: aliceEm, Org: "hub", Kind: pki.KindAggregator})
	pa.upload("/project/aggregators", squat).want(t, http.StatusConflict, "is taken")

	if r := pa.upload("/project/aggregators", csr); r.status != http.StatusSeeOther {
		t.Fatalf("add aggregator: %d\n%s", r.status, excerpt(r.body))
	}
	pa.get("/project").want(t, 200, `id="aggregator-agg-1"`)
	pa.upload("/project/aggregators", csr).want(t, http.StatusConflict, "is taken")
	server, err := kit.Load(provision.KitDir(h.ws, "server"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(server.Participants, func(id pki.Identity) bool { return id.Name == "agg-1" && id.Kind == pki.KindAggregator }) {
		t.Fatalf("the server kit does not admit agg-1: %v", server.Participants)
	}
	alice.get("/project/aggregators/agg-1/kit").want(t, http.StatusForbidden)
	pa.get("/project/aggregators/nope/kit").want(t, http.StatusNotFound)
	r := pa.get("/project/aggregators/agg-1/kit").want(t, 200)
	kits := t.TempDir()
	untar(t, []byte(r.body), kits)
	copyKey(t, reqDir, filepath.Join(kits, "agg-1"))
	k, err := kit.Load(filepath.Join(kits, "agg-1"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Config.Kind != pki.KindAggregator || k.Config.Org != "hub" {
		t.Fatalf("aggregator kit for %s", k.Config.Identity())
	}
	entries, _ := readAudit(context.Background(), h.srv.db)
	if !slices.ContainsFunc(entries, func(e AuditEntry) bool { return e.Action == "aggregator.add" && e.Target == "agg-1" }) {
		t.Fatalf("no aggregator.add row: %+v", entries)
	}
}

// TestRenameProject: the project admin renames the project while only the
// server has a kit: re-created under the new name (a new root, shown, and
// new connections served a certificate from it), audited; an org admin, a
// forged CSRF token, the same or an invalid name are refused; once a site
// has a kit the rename is refused with the reason, audited, and nothing
// changes.
func TestRenameProject(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	oldRoot, _ := provision.RootFingerprint(h.ws)
	rename := func(name string) url.Values { return url.Values{"project": {name}} }
	unchanged := func(t *testing.T, name string, root kit.Fingerprint) {
		t.Helper()
		if p, _ := provision.ReadProject(h.ws); p.Name != name {
			t.Fatalf("the project is %s, want %s", p.Name, name)
		}
		if got, _ := provision.RootFingerprint(h.ws); got != root {
			t.Fatal("the root changed")
		}
	}
	refusedRows := func() []AuditEntry {
		entries, _ := readAudit(context.Background(), h.srv.db)
		var out []AuditEntry
		for _, e := range entries {
			if e.Action == "project.rename.refused" {
				out = append(out, e)
			}
		}
		return out
	}

	alice.get("/")
	alice.post("/project/name", rename("other")).want(t, http.StatusForbidden)
	pa.get("/project").want(t, 200, `id="project-name">demo`, oldRoot.String())
	forged := rename("other")
	forged.Set("csrf", "forged")
	pa.post("/project/name", forged).want(t, http.StatusForbidden, "CSRF token")
	pa.get("/project")
	pa.post("/project/name", rename("demo")).want(t, http.StatusBadRequest, "named demo already")
	pa.get("/project")
	pa.post("/project/name", rename("no spaces")).want(t, http.StatusBadRequest, "name")
	unchanged(t, "demo", oldRoot)
	if rows := refusedRows(); len(rows) != 2 || !strings.Contains(rows[0].Detail, "already") {
		t.Fatalf("refusals audited: %+v, want the two refused names", rows)
	}

	pa.get("/project")
	if r := pa.post("/project/name", rename("renamed")); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d\n%s", r.status, excerpt(r.body))
	}
	newRoot, _ := provision.RootFingerprint(h.ws)
	if newRoot == oldRoot {
		t.Fatal("the renamed project kept its root")
	}
	k, err := kit.Load(provision.KitDir(h.ws, "server"))
	if err != nil || k.Config.Project != "renamed" || kit.FingerprintOf(k.Root) != newRoot {
		t.Fatalf("the server kit after the rename: %v, %+v", err, k)
	}
	entries, _ := readAudit(context.Background(), h.srv.db)
	if !slices.ContainsFunc(entries, func(e AuditEntry) bool {
		return e.Action == "project.rename" && e.Target == "renamed" && strings.Contains(e.Detail, "from demo") && strings.Contains(e.Detail, newRoot.String())
	}) {
		t.Fatalf("no project.rename row naming the new root: %+v", entries)
	}
	// New connections get a certificate from the new root, which the old
	// one does not verify; the pages show the new name and fingerprint.
	old := h.client()
	if _, err := old.c.Get(h.ts.URL + "/signin"); err == nil {
		t.Fatal("a client trusting only the old root verified the dashboard after the rename")
	}
	rootPEM, _ := os.ReadFile(filepath.Join(h.ws, "ca", "rootCA.pem"))
	h.pool = newPool(rootPEM)
	pa.c.Transport = h.client().c.Transport
	pa.get("/project").want(t, 200, `id="project-name">renamed`, newRoot.String())
	pa.get("/").want(t, 200, newRoot.String())

	// A site's kit: the name stays.
	alice.c.Transport = h.client().c.Transport
	page := alice.addSite(url.Values{"name": {"site-1"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(page+"/csr", csr).want(t, http.StatusSeeOther)
	pa.approveAll()
	pa.get("/project")
	pa.post("/project/name", rename("third")).want(t, http.StatusConflict, "the kits of site-1 already trust this project's root")
	unchanged(t, "renamed", newRoot)
	if rows := refusedRows(); len(rows) != 3 || !strings.Contains(rows[2].Detail, "site-1") || rows[2].Target != "third" {
		t.Fatalf("refusals audited: %+v, want the site's kit named", rows)
	}
}
