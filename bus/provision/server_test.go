package provision

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

// TestChangeServer: with only the server's kit issued its hosts and ports
// change and its kit is re-issued, the old certificate revoked; once
// another kit exists, or for another name, a bad port or a wrong
// passphrase, nothing changes.
func TestChangeServer(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws")
	p := &Project{APIVersion: 1, Name: "p", Server: ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost"}, LeafPort: 7422, ClientPort: 4222}}
	if _, err := Provision(p, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	oldKit := load(t, ws, "server")
	oldSerial := oldKit.Cert.SerialNumber
	oldCopy := filepath.Join(t.TempDir(), "server") // what someone kept of the old kit, key and all
	if err := os.CopyFS(oldCopy, os.DirFS(KitDir(ws, "server"))); err != nil {
		t.Fatal(err)
	}
	moved := ServerSpec{Name: "server", Org: "hub", Hosts: []string{"hub.example.org", "127.0.0.1"}, LeafPort: 17422, ClientPort: 14222, WebsocketPort: 18443}
	for _, tc := range []struct {
		name string
		spec ServerSpec
		pass []byte
		want string
	}{
		{"renamed", ServerSpec{Name: "hub", Org: "hub", Hosts: moved.Hosts, LeafPort: 1, ClientPort: 2}, passphrase, "its name and org stay"},
		{"ports clash", ServerSpec{Name: "server", Org: "hub", Hosts: moved.Hosts, LeafPort: 1, ClientPort: 1}, passphrase, "already leaf_port"},
		{"wrong passphrase", moved, []byte("not the passphrase"), "passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ChangeServer(ws, tc.pass, tc.spec, defaults, time.Now()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ChangeServer = %v, want %q", err, tc.want)
			}
			if got := load(t, ws, "server"); got.Cert.SerialNumber.Cmp(oldSerial) != 0 {
				t.Fatal("a refused change re-issued the server kit")
			}
			if _, err := os.Stat(filepath.Join(ws, "ca", "crl.pem")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a refused change published a revocation list: %v", err)
			}
		})
	}

	if err := ChangeServer(ws, passphrase, moved, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	k := load(t, ws, "server")
	if k.Cert.SerialNumber.Cmp(oldSerial) == 0 || !slices.Equal(k.Cert.DNSNames, []string{"hub.example.org"}) || k.Config.Server.LeafPort != 17422 || k.Config.Server.WebsocketPort != 18443 {
		t.Fatalf("re-issued server kit: serial %v, names %v, server %+v", k.Cert.SerialNumber, k.Cert.DNSNames, k.Config.Server)
	}
	if got, _ := ReadProject(ws); got.Server.ClientPort != 14222 {
		t.Fatalf("project.yml server %+v", got.Server)
	}

	// The old certificate is on the project's revocation list (Revoke's:
	// ca/revoked.json, ca/crl.pem, every kit's crl.pem), so the new hub,
	// which verifies every peer with its kit's list, refuses a copy of the
	// old kit; the new certificate verifies.
	if r, _ := (workspace{dir: ws}).revocations(); r.CRLNumber != 1 || len(r.Revoked) != 1 || r.Revoked[0].Serial != serialHex(oldSerial) || r.Revoked[0].Name != "server" {
		t.Fatalf("revoked.json after the change = %+v, want the old server serial %s", r, serialHex(oldSerial))
	}
	if k.CRL == nil || !bytes.Equal(readFile(t, filepath.Join(KitDir(ws, "server"), "crl.pem")), readFile(t, filepath.Join(ws, "ca", "crl.pem"))) {
		t.Fatal("the new server kit does not hold the project's revocation list")
	}
	hub, err := k.Trust()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Verify(oldKit.Cert, time.Now()); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("the new hub verifies the old server certificate: %v, want ErrRevoked", err)
	}
	if _, err := hub.Verify(k.Cert, time.Now()); err != nil {
		t.Fatalf("the new hub refuses the new server certificate: %v", err)
	}
	if err := kit.InstallCRL(oldCopy, readFile(t, filepath.Join(ws, "ca", "crl.pem"))); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.Load(oldCopy); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("the old kit's copy, given the project's list, loads: %v, want ErrRevoked", err)
	}

	// Once a site has a kit, the server stays.
	site := &Project{APIVersion: 1, Name: "p", Server: moved, Sites: []SiteSpec{{Name: "site-1", Org: "clinic"}}}
	if _, err := Provision(site, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	back := moved
	back.LeafPort = 7422
	err = ChangeServer(ws, passphrase, back, defaults, time.Now())
	if err == nil || !strings.Contains(err.Error(), "the kits of site-1 already carry the server's address") {
		t.Fatalf("ChangeServer with a site kit = %v", err)
	}
	if load(t, ws, "server").Config.Server.LeafPort != 17422 {
		t.Fatal("a refused change changed the server kit")
	}
}

// TestRenameProject: with only the server's kit issued the project is
// re-created under the new name (a new root, so a new fingerprint, and the
// server kit from it, the old root and kit gone); a wrong passphrase, a bad
// name or the same one change nothing; once another kit exists it is
// refused with the reason.
func TestRenameProject(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws")
	p := &Project{APIVersion: 1, Name: "p", Server: ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost"}, LeafPort: 7422, ClientPort: 4222}}
	if _, err := Provision(p, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	oldRoot, err := RootFingerprint(ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, to string
		pass     []byte
		want     string
	}{
		{"the same name", "p", passphrase, "named p already"},
		{"an invalid name", "../q", passphrase, "invalid"},
		{"wrong passphrase", "q", []byte("not the passphrase"), "passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := RenameProject(ws, tc.pass, tc.to, defaults, time.Now()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RenameProject = %v, want %q", err, tc.want)
			}
			if root, _ := RootFingerprint(ws); root != oldRoot || load(t, ws, "server").Config.Project != "p" {
				t.Fatal("a refused rename changed the project")
			}
		})
	}

	res, err := RenameProject(ws, passphrase, "q", defaults, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := RootFingerprint(ws)
	if err != nil {
		t.Fatal(err)
	}
	if newRoot == oldRoot || res.RootFingerprint != newRoot.String() || res.Workspace != ws {
		t.Fatalf("after the rename: root %s (was %s), result %+v", newRoot, oldRoot, res)
	}
	k := load(t, ws, "server") // verified against the new root
	if k.Config.Project != "q" || kit.FingerprintOf(k.Root) != newRoot || k.Root.Subject.Organization[0] != "q" || k.Config.Server.LeafPort != 7422 {
		t.Fatalf("server kit after the rename: project %s, root %s (%v), server %+v", k.Config.Project, kit.FingerprintOf(k.Root), k.Root.Subject, k.Config.Server)
	}
	if got, err := ReadProject(ws); err != nil || got.Name != "q" || !slices.Equal(got.Server.Hosts, []string{"localhost"}) {
		t.Fatalf("project.yml after the rename: %+v, %v", got, err)
	}
	if _, err := OpenCA(ws, passphrase); err != nil {
		t.Fatalf("the new root does not open with the passphrase: %v", err)
	}
	entries, _ := os.ReadDir(ws)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".rename") {
			t.Errorf("the rename left %s behind", e.Name())
		}
	}

	// Once a site has a kit, the name stays.
	site := &Project{APIVersion: 1, Name: "q", Server: p.Server, Sites: []SiteSpec{{Name: "site-1", Org: "clinic"}}}
	if _, err := Provision(site, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = RenameProject(ws, passphrase, "r", defaults, time.Now())
	if err == nil || !strings.Contains(err.Error(), "the kits of site-1 already trust this project's root") {
		t.Fatalf("RenameProject with a site kit = %v", err)
	}
	if root, _ := RootFingerprint(ws); root != newRoot || load(t, ws, "site-1").Config.Project != "q" {
		t.Fatal("a refused rename changed the project")
	}
}

// TestKitsIssuedAfterARevocationCarryTheList: a kit made after a
// revocation (here the server's old certificate, which ChangeServer
// revokes while no other kit exists, so every site's kit comes later)
// holds the project's crl.pem, so its holder refuses the revoked
// certificate: a copy of the old server kit cannot pose as the hub to a
// site approved from a CSR, nor to one provisioned centrally.
func TestKitsIssuedAfterARevocationCarryTheList(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws")
	server := ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost"}, LeafPort: 7422, ClientPort: 4222}
	if _, err := Provision(&Project{APIVersion: 1, Name: "p", Server: server}, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	oldCert := load(t, ws, "server").Cert
	moved := server
	moved.LeafPort = 17422 // the same host name: the old certificate still names it
	if err := ChangeServer(ws, passphrase, moved, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}

	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(pki.Identity{Name: "site-1", Org: "clinic", Kind: pki.KindSite}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := Approve(ws, passphrase, csr, defaults, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pki.EncodeKey(key), 0o600); err != nil {
		t.Fatal(err)
	}
	central := &Project{APIVersion: 1, Name: "p", Server: moved, Sites: []SiteSpec{{Name: "site-2", Org: "clinic"}}}
	if _, err := Provision(central, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"site-1", "site-2"} {
		k := load(t, ws, name)
		if !bytes.Equal(readFile(t, filepath.Join(KitDir(ws, name), "crl.pem")), readFile(t, filepath.Join(ws, "ca", "crl.pem"))) {
			t.Fatalf("%s's kit does not hold the project's revocation list", name)
		}
		trust, err := k.Trust()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := trust.Verify(oldCert, time.Now()); !errors.Is(err, pki.ErrRevoked) {
			t.Fatalf("%s verifies the server's revoked certificate: %v, want ErrRevoked", name, err)
		}
	}
}

// TestRenameKeepsTheLimits: the project file's limits on what one admin
// may hold on the server reach the server's kit, and a rename keeps
// everything of the project but its name, the limits included
// (project.yml and the server's new kit).
func TestRenameKeepsTheLimits(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws")
	limits := &kit.Limits{JobsPerSubmitter: 2, CheckpointsPerSubmitter: 3, CheckpointRetentionDays: 7}
	p := &Project{APIVersion: 1, Name: "p", CertValidityDays: 30, Limits: limits,
		Server: ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost"}, LeafPort: 7422, ClientPort: 4222}}
	if _, err := Provision(p, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	if k := load(t, ws, "server"); k.Config.Limits == nil || *k.Config.Limits != *limits {
		t.Fatalf("the server kit has limits %+v, want the project file's %+v", k.Config.Limits, *limits)
	}
	if _, err := RenameProject(ws, passphrase, "q", defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadProject(ws)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "q" || got.CertValidityDays != 30 || got.Limits == nil || *got.Limits != *limits {
		t.Fatalf("project.yml after the rename: name %s, validity %d, limits %+v; want q, 30, %+v", got.Name, got.CertValidityDays, got.Limits, *limits)
	}
	if k := load(t, ws, "server"); k.Config.Limits == nil || *k.Config.Limits != *limits {
		t.Fatalf("the server kit after the rename has limits %+v, want %+v", k.Config.Limits, *limits)
	}
}
