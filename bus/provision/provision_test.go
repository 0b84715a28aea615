package provision

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

var passphrase = []byte("correct horse battery staple")

// defaults stand in for package policies' default files: provisioning
// places whatever it is handed, and the bus knows no policy.
var defaults = fstest.MapFS{
	"authorization.json": {Data: []byte(`{"format_version": "1.0", "permissions": {}}`)},
	"resources.json":     {Data: []byte(`{"num_of_gpus": 0}`)},
}

const projectYAML = `
api_version: 1
name: test-project
server:
  name: server
  org: coordinator
  hosts: [localhost, 127.0.0.1, hub.example.org]
  leaf_port: 7422
  client_port: 4222
  websocket_port: 8443
sites:
  - {name: site-1, org: hospital-a}
  - {name: site-2, org: hospital-a, local_port: 14222}
  - {name: site-3, org: hospital-b, websocket: true, proxy: "http://127.0.0.1:3128"}
admins:
  - {name: admin@coordinator.org, org: coordinator, role: project_admin}
  - {name: lead@hospital-b.org, org: hospital-b, role: lead}
aggregators:
  - {name: aggregator-1, org: coordinator}
cert_validity_days: 30
`

func parse(t *testing.T, text string) *Project {
	t.Helper()
	p, err := ParseProject([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// provisioned provisions projectYAML into a new workspace.
func provisioned(t *testing.T) (string, *Result) {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "ws")
	res, err := Provision(parse(t, projectYAML), ws, passphrase, defaults, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ws, res
}

func load(t *testing.T, ws, name string) *kit.Kit {
	t.Helper()
	k, err := kit.Load(KitDir(ws, name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseProjectErrors(t *testing.T) {
	base := strings.TrimSpace(projectYAML)
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"duplicate site name", strings.Replace(base, "admins:", "  - {name: site-1, org: hospital-c}\nadmins:", 1), `sites[3].name: duplicate participant name "site-1"`},
		{"empty file", "", "project file is empty"},
		{"unknown field", strings.Replace(base, "org: hospital-a}", "org: hospital-a, colour: red}", 1), "field colour not found"},
		{"unknown top-level field", base + "\nowner: me", "field owner not found"},
		{"two documents", base + "\n---\nname: x", "more than one YAML document"},
		{"api version", strings.Replace(base, "api_version: 1", "api_version: 2", 1), "api_version: 2 is not supported (want 1)"},
		{"bad project name", strings.Replace(base, "name: test-project", "name: test project", 1), "name: invalid name \"test project\""},
		{"bad role", strings.Replace(base, "role: lead", "role: boss", 1), `admins[1].role: unknown role "boss"`},
		{"missing role", strings.Replace(base, ", role: lead", "", 1), `admins[1].role: unknown role ""`},
		{"bad leaf port", strings.Replace(base, "leaf_port: 7422", "leaf_port: 70000", 1), "server.leaf_port: 70000 is not a port (want 1-65535)"},
		{"missing client port", strings.Replace(base, "client_port: 4222", "", 1), "server.client_port: 0 is not a port"},
		{"negative websocket port", strings.Replace(base, "websocket_port: 8443", "websocket_port: -1", 1), "server.websocket_port: -1 is not a port"},
		{"ports clash", strings.Replace(base, "client_port: 4222", "client_port: 7422", 1), "server.client_port: port 7422 is already leaf_port"},
		{"no hosts", strings.Replace(base, "hosts: [localhost, 127.0.0.1, hub.example.org]", "hosts: []", 1), "server.hosts: at least one"},
		{"bad host", strings.Replace(base, "hub.example.org]", "\"hub example\"]", 1), `server.hosts[2]: "hub example" is not a DNS name or IP address`},
		{"bad site port", strings.Replace(base, "local_port: 14222", "local_port: 99999", 1), "sites[1].local_port: 99999 is not a port"},
		{"websocket without server port", strings.Replace(base, "  websocket_port: 8443\n", "", 1), "sites[2].websocket: the server has no websocket_port"},
		{"bad proxy", strings.Replace(base, "http://127.0.0.1:3128", "127.0.0.1:3128", 1), "sites[2].proxy:"},
		{"bad site name", strings.Replace(base, "name: site-2", "name: ../site-2", 1), `sites[1].name: invalid name "../site-2"`},
		{"bad org", strings.Replace(base, "org: hospital-b, websocket", "org: '', websocket", 1), `sites[2].org: invalid name ""`},
		{"name clashes with the server", strings.Replace(base, "name: aggregator-1", "name: server", 1), `aggregators[0].name: duplicate participant name "server"`},
		{"names differ only in case", strings.Replace(base, "name: site-2", "name: SITE-1", 1), `sites[1].name: duplicate participant name "SITE-1"`},
		{"negative validity", strings.Replace(base, "cert_validity_days: 30", "cert_validity_days: -1", 1), "cert_validity_days: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProject([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseProject: %v\nwant an error saying %q", err, tt.want)
			}
		})
	}
}

func TestParseProjectReportsEveryProblem(t *testing.T) {
	text := strings.Replace(strings.Replace(projectYAML, "role: lead", "role: boss", 1), "leaf_port: 7422", "leaf_port: 0", 1)
	_, err := ParseProject([]byte(text))
	for _, want := range []string{"admins[1].role", "server.leaf_port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseProject: %v\nwant it to mention %s", err, want)
		}
	}
}

func TestExampleProjectFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "project.example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProject(data)
	if err != nil {
		t.Fatal(err)
	}
	orgs := map[string]bool{}
	for _, s := range p.Sites {
		orgs[s.Org] = true
	}
	if len(p.Sites) != 3 || len(orgs) != 2 || len(p.Admins) != 2 || len(p.Aggregators) != 1 {
		t.Errorf("example: %d sites in %d orgs, %d admins, %d aggregators; want 3 in 2, 2, 1", len(p.Sites), len(orgs), len(p.Admins), len(p.Aggregators))
	}
}

func TestProvisionWritesLoadableKits(t *testing.T) {
	start := time.Now()
	ws, res := provisioned(t)
	wantAdded := []string{"site-1", "site-2", "site-3", "admin@coordinator.org", "lead@hospital-b.org", "aggregator-1", "server"}
	if !res.CreatedCA || !slices.Equal(res.Added, wantAdded) || len(res.Kept) != 0 || res.Workspace != ws {
		t.Fatalf("Result = %+v, want a new CA and added %v", res, wantAdded)
	}
	root := load(t, ws, "site-1").Root
	if want := kit.FingerprintOf(root).String(); res.RootFingerprint != want {
		t.Errorf("RootFingerprint %q, want the kits' root %s", res.RootFingerprint, want)
	}
	if f, err := RootFingerprint(ws); err != nil || f.String() != res.RootFingerprint {
		t.Errorf("RootFingerprint(workspace) = %v, %v; want %s", f, err, res.RootFingerprint)
	}
	if _, err := RootFingerprint(t.TempDir()); err == nil {
		t.Error("RootFingerprint of a folder without a CA succeeded")
	}
	for rel, want := range map[string]os.FileMode{"ca/rootCA.key": 0o600, "kits": 0o700, "ca": 0o700} {
		if fi, err := os.Stat(filepath.Join(ws, rel)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %#o", rel, fi, err, want)
		}
	}
	serverOnly := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	clientOnly := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tests := []struct {
		id    pki.Identity
		usage []x509.ExtKeyUsage
		dns   []string
		ips   []string
		urls  []string
	}{
		{pki.Identity{Name: "server", Org: "coordinator", Kind: pki.KindServer}, serverOnly, []string{"localhost", "hub.example.org"}, []string{"127.0.0.1"}, nil},
		{pki.Identity{Name: "site-1", Org: "hospital-a", Kind: pki.KindSite}, serverOnly, []string{"localhost"}, []string{"127.0.0.1"},
			[]string{"tls://localhost:7422", "tls://127.0.0.1:7422", "tls://hub.example.org:7422"}},
		{pki.Identity{Name: "site-3", Org: "hospital-b", Kind: pki.KindSite}, serverOnly, []string{"localhost"}, []string{"127.0.0.1"},
			[]string{"wss://localhost:8443", "wss://127.0.0.1:8443", "wss://hub.example.org:8443"}},
		{pki.Identity{Name: "admin@coordinator.org", Org: "coordinator", Kind: pki.KindAdmin, Role: pki.RoleProjectAdmin}, clientOnly, nil, nil, nil},
		{pki.Identity{Name: "lead@hospital-b.org", Org: "hospital-b", Kind: pki.KindAdmin, Role: pki.RoleLead}, clientOnly, nil, nil, nil},
		{pki.Identity{Name: "aggregator-1", Org: "coordinator", Kind: pki.KindAggregator}, clientOnly, nil, nil,
			[]string{"tls://localhost:7422", "tls://127.0.0.1:7422", "tls://hub.example.org:7422"}},
	}
	for _, tt := range tests {
		t.Run(tt.id.Name, func(t *testing.T) {
			k := load(t, ws, tt.id.Name)
			id, err := pki.IdentityOf(k.Cert)
			if err != nil || id != tt.id || k.Config.Identity() != tt.id {
				t.Errorf("identity %v (%v), kit.json %v; want %v", id, err, k.Config.Identity(), tt.id)
			}
			if !slices.Equal(k.Cert.ExtKeyUsage, tt.usage) {
				t.Errorf("ext key usage %v, want %v", k.Cert.ExtKeyUsage, tt.usage)
			}
			var ips []string
			for _, ip := range k.Cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(k.Cert.DNSNames, tt.dns) || !slices.Equal(ips, tt.ips) {
				t.Errorf("SANs %v %v, want %v %v", k.Cert.DNSNames, ips, tt.dns, tt.ips)
			}
			if tt.urls != nil && !slices.Equal(k.Config.LeafURLs(), tt.urls) {
				t.Errorf("LeafURLs %v, want %v", k.Config.LeafURLs(), tt.urls)
			}
			if d := k.Cert.NotAfter.Sub(start); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour+time.Minute {
				t.Errorf("certificate valid until %v, want 30 days from now", k.Cert.NotAfter)
			}
			for rel, want := range map[string]os.FileMode{"key.pem": 0o600, ".": 0o700} {
				if fi, err := os.Stat(filepath.Join(k.Dir, rel)); err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: %v %v, want mode %#o", rel, fi, err, want)
				}
			}
			for name, f := range defaults {
				got, err := os.ReadFile(filepath.Join(k.PolicyDir(), name+kit.DefaultSuffix))
				if err != nil || !bytes.Equal(got, f.Data) {
					t.Errorf("default policy %s: %q, %v; want the file handed in", name, got, err)
				}
			}
		})
	}

	server := load(t, ws, "server")
	var want []pki.Identity
	for _, tt := range tests[1:] {
		want = append(want, tt.id)
	}
	got := slices.DeleteFunc(slices.Clone(server.Participants), func(id pki.Identity) bool { return id.Name == "site-2" })
	if !slices.Equal(got, want) || len(server.Participants) != 6 {
		t.Errorf("server participants %v, want the six others", server.Participants)
	}
	if site2 := load(t, ws, "site-2"); site2.Config.Leaf.LocalPort != 14222 {
		t.Errorf("site-2 local port %d, want 14222", site2.Config.Leaf.LocalPort)
	}
	if site3 := load(t, ws, "site-3"); site3.Config.Leaf.Proxy != "http://127.0.0.1:3128" {
		t.Errorf("site-3 proxy %q", site3.Config.Leaf.Proxy)
	}

	w := workspace{dir: ws}
	issued, err := w.issued()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range wantAdded {
		if issued[name].Serial != serialHex(load(t, ws, name).Cert.SerialNumber) {
			t.Errorf("issued.json %s = %+v, not the kit's serial", name, issued[name])
		}
	}
	if issued["lead@hospital-b.org"].Role != pki.RoleLead || issued["site-1"].Org != "hospital-a" {
		t.Errorf("issued.json lacks role or org: %+v", issued)
	}
}

func TestReprovisionAddsAndKeeps(t *testing.T) {
	ws, _ := provisioned(t)
	root := load(t, ws, "site-1").Root
	siteSig := readFile(t, filepath.Join(KitDir(ws, "site-1"), "manifest.sig"))
	serverSig := readFile(t, filepath.Join(KitDir(ws, "server"), "manifest.sig"))

	// The same file again changes nothing.
	res, err := Provision(parse(t, projectYAML), ws, passphrase, defaults, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.CreatedCA || len(res.Added) != 0 || len(res.Kept) != 7 {
		t.Fatalf("second run: %+v, want everything kept", res)
	}
	if want := kit.FingerprintOf(root).String(); res.RootFingerprint != want {
		t.Errorf("second run's RootFingerprint %q, want %s", res.RootFingerprint, want)
	}
	if !bytes.Equal(serverSig, readFile(t, filepath.Join(KitDir(ws, "server"), "manifest.sig"))) {
		t.Error("an unchanged project re-signed the server kit")
	}

	// A file with site-4 added, and site-2 left out: site-4 is added, site-2 kept.
	text := strings.Replace(projectYAML, "  - {name: site-2, org: hospital-a, local_port: 14222}\n", "  - {name: site-4, org: hospital-c}\n", 1)
	res, err = Provision(parse(t, text), ws, passphrase, defaults, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.CreatedCA || !slices.Equal(res.Added, []string{"site-4"}) || !slices.Contains(res.Kept, "site-2") || len(res.Kept) != 7 {
		t.Fatalf("Result = %+v, want site-4 added and seven kept", res)
	}
	site4 := load(t, ws, "site-4")
	if pki.Fingerprint(site4.Root) != pki.Fingerprint(root) {
		t.Error("re-provisioning made a new root CA")
	}
	if !bytes.Equal(siteSig, readFile(t, filepath.Join(KitDir(ws, "site-1"), "manifest.sig"))) {
		t.Error("re-provisioning touched site-1's kit")
	}
	server := load(t, ws, "server")
	if !slices.Contains(server.Participants, site4.Config.Identity()) || !slices.ContainsFunc(server.Participants, func(id pki.Identity) bool { return id.Name == "site-2" }) {
		t.Errorf("server participants %v lack site-4 or site-2", server.Participants)
	}
	p, err := workspace{dir: ws}.project()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.find("site-4"); !ok || len(p.Sites) != 4 {
		t.Errorf("workspace project.yml sites %+v, want four with site-4", p.Sites)
	}
}

func TestReprovisionRefuses(t *testing.T) {
	ws, _ := provisioned(t)
	caFiles := func() []byte {
		return append(readFile(t, filepath.Join(ws, "ca", "rootCA.pem")), readFile(t, filepath.Join(ws, "ca", "rootCA.key"))...)
	}
	before := caFiles()
	tests := []struct {
		name string
		text string
		pass string
		is   error
		want string
	}{
		{"wrong passphrase", projectYAML, "not the passphrase", pki.ErrWrongPassphrase, "open CA in " + ws},
		{"different project", strings.Replace(projectYAML, "name: test-project", "name: other-project", 1), "", nil,
			"workspace " + ws + " holds project test-project, not other-project"},
		{"changed server", strings.Replace(projectYAML, "leaf_port: 7422", "leaf_port: 7423", 1), "", nil, "server: differs from the server provisioned"},
		{"changed site", strings.Replace(projectYAML, "{name: site-1, org: hospital-a}", "{name: site-1, org: hospital-z}", 1), "", nil,
			`sites[0]: participant "site-1" differs from the one provisioned`},
		{"participant kind changed", strings.Replace(strings.Replace(projectYAML, "  - {name: site-1, org: hospital-a}\n", "", 1), "name: aggregator-1, org: coordinator", "name: site-1, org: hospital-a", 1), "", nil,
			`aggregators[0]: participant "site-1" differs`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProject([]byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			pass := passphrase
			if tt.pass != "" {
				pass = []byte(tt.pass)
			}
			_, err = Provision(p, ws, pass, defaults, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Provision: %v\nwant an error saying %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
			if !bytes.Equal(before, caFiles()) {
				t.Fatal("the CA files changed")
			}
		})
	}
	for _, name := range []string{"server", "site-1", "admin@coordinator.org"} {
		load(t, ws, name)
	}
}

func TestProvisionRefusesNewWorkspace(t *testing.T) {
	p := parse(t, projectYAML)
	t.Run("short passphrase", func(t *testing.T) {
		ws := filepath.Join(t.TempDir(), "ws")
		if _, err := Provision(p, ws, []byte("short"), defaults, time.Now()); err == nil || !strings.Contains(err.Error(), "at least 8 characters") {
			t.Fatalf("Provision: %v", err)
		}
		if _, err := os.Stat(ws); !os.IsNotExist(err) {
			t.Errorf("workspace written: %v", err)
		}
	})
	t.Run("CA without project.yml", func(t *testing.T) {
		ws := t.TempDir()
		if err := os.MkdirAll(filepath.Join(ws, "ca"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Provision(p, ws, passphrase, defaults, time.Now()); err == nil || !strings.Contains(err.Error(), "refusing to create a new CA") {
			t.Fatalf("Provision: %v", err)
		}
	})
	t.Run("no default policies", func(t *testing.T) {
		ws := filepath.Join(t.TempDir(), "ws")
		if _, err := Provision(p, ws, passphrase, nil, time.Now()); !errors.Is(err, errNoDefaults) {
			t.Fatalf("Provision = %v, want errNoDefaults", err)
		}
		if _, err := os.Stat(ws); !os.IsNotExist(err) {
			t.Errorf("workspace written: %v", err)
		}
	})
	t.Run("invalid project", func(t *testing.T) {
		bad := *p
		bad.APIVersion = 0
		if _, err := Provision(&bad, t.TempDir(), passphrase, defaults, time.Now()); err == nil || !strings.Contains(err.Error(), "invalid project: api_version") {
			t.Fatalf("Provision: %v", err)
		}
	})
}

func TestRequestApprove(t *testing.T) {
	ws, _ := provisioned(t)
	req := filepath.Join(t.TempDir(), "req")
	site9 := pki.Identity{Name: "site-9", Org: "hospital-c", Kind: pki.KindSite}
	files, err := Request(req, site9, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(files.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("request key %v %v, want mode 0600", fi, err)
	}
	if files.CSR != filepath.Join(req, "site-9.csr") {
		t.Errorf("CSR at %s", files.CSR)
	}
	if _, err := Request(req, site9, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second request overwrote the key: %v", err)
	}

	if _, err := Approve(ws, passphrase, readFile(t, files.CSR), nil, time.Now()); !errors.Is(err, errNoDefaults) {
		t.Fatalf("Approve without default policies = %v, want errNoDefaults", err)
	}
	if _, err := os.Stat(KitDir(ws, "site-9")); !os.IsNotExist(err) {
		t.Fatalf("kit written without default policies: %v", err)
	}
	dir, err := Approve(ws, passphrase, readFile(t, files.CSR), defaults, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if dir != KitDir(ws, "site-9") {
		t.Errorf("kit at %s", dir)
	}
	_, err = kit.Load(dir)
	if want := "key.pem missing: copy the private key made by `hearth cert request` into " + dir; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load without the key: %v\nwant %q", err, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), readFile(t, files.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	k := load(t, ws, "site-9")
	if k.Config.Identity() != site9 || k.Config.Leaf == nil || !slices.Equal(k.Cert.DNSNames, []string{"localhost"}) {
		t.Errorf("approved kit: %+v, SANs %v", k.Config, k.Cert.DNSNames)
	}
	if server := load(t, ws, "server"); !slices.Contains(server.Participants, site9) {
		t.Errorf("server participants %v lack site-9", server.Participants)
	}
	if p, err := (workspace{dir: ws}).project(); err != nil || !slices.Contains(p.Sites, SiteSpec{Name: "site-9", Org: "hospital-c"}) {
		t.Errorf("project.yml lacks site-9: %v %+v", err, p)
	}
	// Re-provisioning with the original file keeps the approved site.
	res, err := Provision(parse(t, projectYAML), ws, passphrase, defaults, time.Now())
	if err != nil || !slices.Contains(res.Kept, "site-9") {
		t.Errorf("re-provision after approve: %+v %v", res, err)
	}

	t.Run("admin", func(t *testing.T) {
		adm := pki.Identity{Name: "member@hospital-c.org", Org: "hospital-c", Kind: pki.KindAdmin, Role: pki.RoleMember}
		f, err := Request(filepath.Join(t.TempDir(), "adm"), adm, nil)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := Approve(ws, passphrase, readFile(t, f.CSR), defaults, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), readFile(t, f.Key), 0o600); err != nil {
			t.Fatal(err)
		}
		k := load(t, ws, adm.Name)
		if id, _ := pki.IdentityOf(k.Cert); id != adm || !slices.Equal(k.Cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("admin certificate %v %v", id, k.Cert.ExtKeyUsage)
		}
	})

	csrFor := func(t *testing.T, id pki.Identity, hosts []string) []byte {
		t.Helper()
		key, _ := pki.NewKey()
		csr, err := pki.NewCSR(id, key, hosts)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	tests := []struct {
		name string
		csr  []byte
		pass []byte
		is   error
		want string
	}{
		{"same request twice", readFile(t, files.CSR), passphrase, nil, `participant "site-9" already holds a certificate`},
		{"name of a provisioned site", csrFor(t, pki.Identity{Name: "site-1", Org: "hospital-a", Kind: pki.KindSite}, nil), passphrase, nil, `"site-1" already holds a certificate`},
		{"name differing only in case", csrFor(t, pki.Identity{Name: "Site-1", Org: "hospital-a", Kind: pki.KindSite}, nil), passphrase, nil, `"Site-1" is already in the project as sites[0]`},
		{"server", csrFor(t, pki.Identity{Name: "server-2", Org: "x", Kind: pki.KindServer}, nil), passphrase, nil, "server certificates come only from `hearth provision`"},
		{"site asking for the hub's name", csrFor(t, pki.Identity{Name: "site-10", Org: "x", Kind: pki.KindSite}, []string{"hub.example.org"}), passphrase, nil,
			`host "hub.example.org": site certificates carry only`},
		{"aggregator asking for a host", csrFor(t, pki.Identity{Name: "agg-2", Org: "x", Kind: pki.KindAggregator}, []string{"localhost"}), passphrase, nil,
			"aggregator certificates carry no host names"},
		{"not a request", []byte("hello"), passphrase, nil, "certificate request: no PEM CERTIFICATE REQUEST block"},
		{"wrong passphrase", csrFor(t, pki.Identity{Name: "site-11", Org: "x", Kind: pki.KindSite}, nil), []byte("wrong passphrase"), pki.ErrWrongPassphrase, "open CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Approve(ws, tt.pass, tt.csr, defaults, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Approve: %v\nwant an error saying %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
		})
	}
	if _, err := os.Stat(KitDir(ws, "site-11")); !os.IsNotExist(err) {
		t.Errorf("a refused approval wrote a kit: %v", err)
	}
}

func TestRequestRefuses(t *testing.T) {
	tests := []struct {
		name  string
		id    pki.Identity
		hosts []string
		want  string
	}{
		{"server", pki.Identity{Name: "s", Org: "o", Kind: pki.KindServer}, nil, "server certificates come only from"},
		{"admin without role", pki.Identity{Name: "a", Org: "o", Kind: pki.KindAdmin}, nil, "unknown role"},
		{"site with a foreign host", pki.Identity{Name: "s", Org: "o", Kind: pki.KindSite}, []string{"evil.example"}, "site certificates carry only"},
		{"bad name", pki.Identity{Name: "../x", Org: "o", Kind: pki.KindSite}, nil, "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "req")
			if _, err := Request(dir, tt.id, tt.hosts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Request: %v, want an error saying %q", err, tt.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused request wrote files: %v", err)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	ws, res := provisioned(t)
	site1 := load(t, ws, "site-1").Cert
	site2 := load(t, ws, "site-2").Cert

	if err := Revoke(ws, passphrase, "site-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	crl := readFile(t, filepath.Join(ws, "ca", "crl.pem"))
	for _, name := range res.Added {
		if got := readFile(t, filepath.Join(KitDir(ws, name), "crl.pem")); !bytes.Equal(got, crl) {
			t.Errorf("%s: crl.pem differs from ca/crl.pem", name)
		}
	}
	der, err := pki.DecodeCRL(crl)
	if err != nil {
		t.Fatal(err)
	}
	trust := pki.NewTrust(load(t, ws, "server").Root)
	if err := trust.SetCRL(der); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(site1, time.Now()); !errors.Is(err, pki.ErrRevoked) {
		t.Errorf("Verify(site-1) = %v, want ErrRevoked", err)
	}
	if _, err := trust.Verify(site2, time.Now()); err != nil {
		t.Errorf("Verify(site-2): %v", err)
	}
	_, err = kit.Load(KitDir(ws, "site-1"))
	if !errors.Is(err, pki.ErrRevoked) || !strings.Contains(err.Error(), "this participant's certificate is revoked") {
		t.Errorf("Load(site-1) = %v, want a revoked certificate refused", err)
	}
	if k := load(t, ws, "site-2"); k.CRL == nil {
		t.Error("site-2 kit loaded without its CRL")
	}

	// A second revocation signs a newer list that still holds the first.
	if err := Revoke(ws, passphrase, "site-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	der2, err := pki.DecodeCRL(readFile(t, filepath.Join(KitDir(ws, "server"), "crl.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.SetCRL(der2); err != nil || trust.CRLNumber() != 2 {
		t.Fatalf("SetCRL(second list): %v, number %d", err, trust.CRLNumber())
	}
	for _, c := range []*x509.Certificate{site1, site2} {
		if _, err := trust.Verify(c, time.Now()); !errors.Is(err, pki.ErrRevoked) {
			t.Errorf("Verify(%s) = %v, want ErrRevoked", c.Subject.CommonName, err)
		}
	}
	var revs revocations
	if err := json.Unmarshal(readFile(t, filepath.Join(ws, "ca", "revoked.json")), &revs); err != nil || len(revs.Revoked) != 2 || revs.CRLNumber != 2 {
		t.Errorf("revoked.json = %+v (%v)", revs, err)
	}
	// Revoking again re-publishes under a new number without a duplicate entry.
	if err := Revoke(ws, passphrase, "site-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if r, _ := (workspace{dir: ws}).revocations(); r.CRLNumber != 3 || len(r.Revoked) != 2 {
		t.Errorf("revoked.json after a repeat = %+v", r)
	}

	tests := []struct {
		name string
		pass []byte
		who  string
		is   error
		want string
	}{
		{"unknown name", passphrase, "site-99", nil, `revoke "site-99": no certificate was issued to it`},
		{"wrong passphrase", []byte("not the passphrase"), "server", pki.ErrWrongPassphrase, "open CA"},
	}
	before := readFile(t, filepath.Join(ws, "ca", "revoked.json"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Revoke(ws, tt.pass, tt.who, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Revoke: %v, want an error saying %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
			if !bytes.Equal(before, readFile(t, filepath.Join(ws, "ca", "revoked.json"))) {
				t.Error("a refused revocation changed revoked.json")
			}
		})
	}
	t.Run("revoked name is not reissued", func(t *testing.T) {
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(pki.Identity{Name: "site-1", Org: "hospital-a", Kind: pki.KindSite}, key, nil)
		if _, err := Approve(ws, passphrase, csr, defaults, time.Now()); err == nil || !strings.Contains(err.Error(), "already holds a certificate") {
			t.Fatalf("Approve(revoked name): %v", err)
		}
	})
	t.Run("no workspace", func(t *testing.T) {
		if err := Revoke(t.TempDir(), passphrase, "site-1", time.Now()); err == nil || !strings.Contains(err.Error(), "holds no project") {
			t.Fatalf("Revoke on an empty folder: %v", err)
		}
	})
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
