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
	h := startHarness(t, ws, time.Now(), nil)
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
