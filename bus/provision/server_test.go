package provision

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChangeServer: with only the server's kit issued its hosts and ports
// change and its kit is re-issued; once another kit exists, or for another
// name, a bad port or a wrong passphrase, nothing changes.
func TestChangeServer(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws")
	p := &Project{APIVersion: 1, Name: "p", Server: ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost"}, LeafPort: 7422, ClientPort: 4222}}
	if _, err := Provision(p, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	oldSerial := load(t, ws, "server").Cert.SerialNumber
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

	// Once a site has a kit, the server stays.
	site := &Project{APIVersion: 1, Name: "p", Server: moved, Sites: []SiteSpec{{Name: "site-1", Org: "clinic"}}}
	if _, err := Provision(site, ws, passphrase, defaults, time.Now()); err != nil {
		t.Fatal(err)
	}
	back := moved
	back.LeafPort = 7422
	err := ChangeServer(ws, passphrase, back, defaults, time.Now())
	if err == nil || !strings.Contains(err.Error(), "the kits of site-1 already carry the server's address") {
		t.Fatalf("ChangeServer with a site kit = %v", err)
	}
	if load(t, ws, "server").Config.Server.LeafPort != 17422 {
		t.Fatal("a refused change changed the server kit")
	}
}
