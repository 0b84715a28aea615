package kit_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
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

const project = "test-project"

// defaultPolicies stand in for package policies' default files: the kit
// lays out whatever policy files it is handed.
var defaultPolicies = fstest.MapFS{
	"authorization.json": {Data: []byte(`{"format_version": "1.0", "permissions": {"project_admin": "any"}}`)},
	"privacy.json":       {Data: []byte(`{"scopes": [], "default_scope": ""}`)},
}

var testServer = kit.ServerConfig{Name: "server", Hosts: []string{"localhost", "127.0.0.1"}, LeafPort: 7422, ClientPort: 4222, WebsocketPort: 8443}

func siteConfig(name string) kit.Config {
	return kit.Config{Project: project, Name: name, Org: "hospital-a", Kind: pki.KindSite, Server: testServer, Leaf: &kit.LeafConfig{}}
}

func serverConfig() kit.Config {
	return kit.Config{Project: project, Name: "server", Org: "coordinator", Kind: pki.KindServer, Server: testServer}
}

func adminConfig() kit.Config {
	return kit.Config{Project: project, Name: "admin@a.org", Org: "hospital-a", Kind: pki.KindAdmin, Role: pki.RoleLead, Server: testServer}
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(project, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue makes a key and a certificate for cfg's identity.
func issue(t *testing.T, ca *pki.CA, cfg kit.Config) (*x509.Certificate, ed25519.PrivateKey) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	if cfg.Kind == pki.KindServer {
		hosts = cfg.Server.Hosts
	}
	now := time.Now()
	cert, err := ca.Issue(pki.Template{Identity: cfg.Identity(), PublicKey: key.Public(), Hosts: hosts, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// writeKit writes and seals a kit for cfg the way provisioning does.
func writeKit(t *testing.T, ca *pki.CA, cfg kit.Config) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), cfg.Name)
	cert, key := issue(t, ca, cfg)
	c := kit.Contents{Config: cfg, Cert: cert, Key: key, Root: ca.Cert}
	if cfg.Kind == pki.KindServer {
		c.Participants = []pki.Identity{siteConfig("site-1").Identity(), adminConfig().Identity()}
	}
	if err := kit.Write(dir, c); err != nil {
		t.Fatal(err)
	}
	if err := kit.WriteDefaultPolicies(filepath.Join(dir, kit.LocalDir), defaultPolicies); err != nil {
		t.Fatal(err)
	}
	seal(t, dir, ca, cfg.Name)
	return dir
}

func seal(t *testing.T, dir string, ca *pki.CA, name string) {
	t.Helper()
	if err := kit.Seal(dir, project, name, ca, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAcceptsSealedKits(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name string
		cfg  kit.Config
	}{
		{"site", siteConfig("site-1")},
		{"server", serverConfig()},
		{"admin", adminConfig()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeKit(t, ca, tt.cfg)
			k, err := kit.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if id, _ := pki.IdentityOf(k.Cert); id != tt.cfg.Identity() {
				t.Errorf("certificate identity %v, want %v", id, tt.cfg.Identity())
			}
			if !k.Root.Equal(ca.Cert) || k.CRL != nil || k.Dir != dir {
				t.Errorf("Root, CRL or Dir wrong: %v %v %s", k.Root.Subject, k.CRL, k.Dir)
			}
			if tc := k.TLSCertificate(); tc.Leaf != k.Cert || !k.Key.Equal(tc.PrivateKey) {
				t.Error("TLSCertificate does not carry the kit's certificate and key")
			}
			if tt.cfg.Kind == pki.KindServer {
				want := []pki.Identity{siteConfig("site-1").Identity(), adminConfig().Identity()}
				if !slices.Equal(k.Participants, want) {
					t.Errorf("Participants = %v, want %v", k.Participants, want)
				}
			} else if k.Participants != nil {
				t.Errorf("Participants = %v in a %s kit", k.Participants, tt.cfg.Kind)
			}
			for f := range defaultPolicies {
				if _, err := os.Stat(filepath.Join(k.PolicyDir(), f+kit.DefaultSuffix)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestStateIsOutsideTheManifest(t *testing.T) {
	dir := writeKit(t, newCA(t), siteConfig("site-1"))
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	state, err := k.StateDir()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 || state != filepath.Join(dir, "state") {
		t.Fatalf("StateDir %s: %v %v, want %s/state with mode 0700", state, fi, err, dir)
	}
	if err := os.MkdirAll(filepath.Join(state, "jetstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "jetstream", "x.log"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.Load(dir); err != nil {
		t.Fatalf("state/ files must not affect Load: %v", err)
	}
	if k.CRLPath() != filepath.Join(dir, "crl.pem") {
		t.Errorf("CRLPath = %s", k.CRLPath())
	}
}

// TestLoadRefuses shows every check of Load refusing a kit.
func TestLoadRefuses(t *testing.T) {
	ca := newCA(t)
	other, err := pki.NewCA("other-project", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, name string, data []byte, perm os.FileMode) {
		t.Helper()
		if err := os.WriteFile(name, data, perm); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		cfg      kit.Config
		mutate   func(t *testing.T, dir string)
		tampered bool  // wraps ErrTampered
		is       error // also wraps this, when set
		want     string
	}{
		{
			name: "changed policy byte",
			mutate: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "local", "authorization.json.default")
				data, _ := os.ReadFile(p)
				data[10] ^= 1
				write(t, p, data, 0o644)
			},
			tampered: true, want: "local/authorization.json.default changed since provisioning",
		},
		{
			name:     "deleted certificate",
			mutate:   func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "cert.pem")) },
			tampered: true, want: "cert.pem missing",
		},
		{
			name:     "deleted policy",
			mutate:   func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "local", "privacy.json.default")) },
			tampered: true, want: "local/privacy.json.default missing",
		},
		{
			name:     "deleted manifest",
			mutate:   func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "manifest.json")) },
			tampered: true, want: "manifest.json missing",
		},
		{
			name: "extra default policy file",
			mutate: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "local", "extra.json.default"), []byte(`{"permissions":{"member":"any"}}`), 0o644)
			},
			tampered: true, want: "local/extra.json.default not in the signed manifest",
		},
		{
			name:     "extra top-level file",
			mutate:   func(t *testing.T, dir string) { write(t, filepath.Join(dir, "notes.txt"), []byte("hi"), 0o644) },
			tampered: true, want: "notes.txt not in the signed manifest",
		},
		{
			name: "symbolic link",
			mutate: func(t *testing.T, dir string) {
				if err := os.Symlink("/etc/passwd", filepath.Join(dir, "local", "link.json.default")); err != nil {
					t.Fatal(err)
				}
			},
			tampered: true, want: "local/link.json.default is not a regular file",
		},
		{
			name: "manifest signed by another CA",
			mutate: func(t *testing.T, dir string) {
				m, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
				write(t, filepath.Join(dir, "manifest.sig"), []byte(base64.StdEncoding.EncodeToString(other.Sign(m))), 0o644)
			},
			tampered: true, want: "manifest.sig manifest signature does not verify against rootCA.pem",
		},
		{
			name: "garbage signature",
			mutate: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "manifest.sig"), []byte("not base64!"), 0o644)
			},
			tampered: true, want: "manifest signature does not verify",
		},
		{
			name: "manifest edited to match a changed file",
			mutate: func(t *testing.T, dir string) {
				m, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
				write(t, filepath.Join(dir, "manifest.json"), []byte(strings.Replace(string(m), `"project"`, ` "project"`, 1)), 0o644)
			},
			tampered: true, want: "manifest signature does not verify",
		},
		{
			name: "certificate from another CA swapped in",
			mutate: func(t *testing.T, dir string) {
				cert, _ := issue(t, other, siteConfig("site-1"))
				write(t, filepath.Join(dir, "cert.pem"), pki.EncodeCert(cert), 0o644)
			},
			tampered: true, want: "cert.pem changed since provisioning",
		},
		{
			name: "certificate from another CA, manifest re-signed",
			mutate: func(t *testing.T, dir string) {
				cert, key := issue(t, other, siteConfig("site-1"))
				write(t, filepath.Join(dir, "cert.pem"), pki.EncodeCert(cert), 0o644)
				write(t, filepath.Join(dir, "key.pem"), pki.EncodeKey(key), 0o600)
				seal(t, dir, ca, "site-1")
			},
			is: pki.ErrUnknownAuthority, want: "cert.pem: certificate \"site-1\"",
		},
		{
			name: "kit.json identity differs from the certificate",
			mutate: func(t *testing.T, dir string) {
				data, _ := os.ReadFile(filepath.Join(dir, "kit.json"))
				write(t, filepath.Join(dir, "kit.json"), []byte(strings.Replace(string(data), "hospital-a", "hospital-b", 1)), 0o644)
				seal(t, dir, ca, "site-1")
			},
			want: "cert.pem: certificate is for site-1 (site, org hospital-a), but kit.json says site-1 (site, org hospital-b)",
		},
		{
			name: "manifest for another participant",
			mutate: func(t *testing.T, dir string) {
				seal(t, dir, ca, "site-2")
			},
			want: `manifest.json: signed for participant "site-2"`,
		},
		{
			name: "invalid kit.json",
			mutate: func(t *testing.T, dir string) {
				data, _ := os.ReadFile(filepath.Join(dir, "kit.json"))
				write(t, filepath.Join(dir, "kit.json"), []byte(strings.Replace(string(data), "7422", "70000", 1)), 0o644)
				seal(t, dir, ca, "site-1")
			},
			want: "kit.json: server.leaf_port: 70000 is not a port",
		},
		{
			name: "participants.json in a site kit",
			mutate: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "participants.json"), []byte("[]"), 0o644)
				seal(t, dir, ca, "site-1")
			},
			want: "participants.json: only server kits carry one",
		},
		{
			name: "server kit without participants.json",
			cfg:  serverConfig(),
			mutate: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, "participants.json"))
				seal(t, dir, ca, "server")
			},
			tampered: true, want: "participants.json missing",
		},
		{
			name:   "key readable by others",
			mutate: func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "key.pem"), 0o644) },
			want:   "key.pem is readable by group or others (mode 0644): run chmod 600",
		},
		{
			name:   "key readable by group",
			mutate: func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "key.pem"), 0o640) },
			want:   "key.pem is readable by group or others (mode 0640)",
		},
		{
			name: "key of another participant",
			mutate: func(t *testing.T, dir string) {
				key, _ := pki.NewKey()
				write(t, filepath.Join(dir, "key.pem"), pki.EncodeKey(key), 0o600)
			},
			want: "key.pem does not match cert.pem",
		},
		{
			name:   "key missing",
			mutate: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "key.pem")) },
			want:   "key.pem missing: copy the private key made by `hearth cert request` into",
		},
		{
			name: "revocation list from another CA",
			mutate: func(t *testing.T, dir string) {
				der, err := other.RevocationList(nil, 1, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "crl.pem"), pki.EncodeCRL(der), 0o644)
			},
			want: "crl.pem: revocation list not signed by the project root",
		},
		{
			name: "own certificate revoked",
			mutate: func(t *testing.T, dir string) {
				cert, _ := pki.ParseCertPEM(must(os.ReadFile(filepath.Join(dir, "cert.pem"))))
				der, err := ca.RevocationList([]pki.Revocation{{Serial: cert.SerialNumber, At: time.Now()}}, 1, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if err := kit.InstallCRL(dir, pki.EncodeCRL(der)); err != nil {
					t.Fatal(err)
				}
			},
			is: pki.ErrRevoked, want: "cert.pem: this participant's certificate is revoked",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.Name == "" {
				cfg = siteConfig("site-1")
			}
			dir := writeKit(t, ca, cfg)
			tt.mutate(t, dir)
			k, err := kit.Load(dir)
			if err == nil {
				t.Fatalf("Load accepted the kit: %+v", k.Config)
			}
			if got := errors.Is(err, kit.ErrTampered); got != tt.tampered {
				t.Errorf("errors.Is(err, ErrTampered) = %v, want %v", got, tt.tampered)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not say %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the kit %s", err, dir)
			}
			var te *kit.TamperError
			if errors.As(err, &te) && te.Kit != dir {
				t.Errorf("TamperError.Kit = %s, want %s", te.Kit, dir)
			}
		})
	}
}

func TestLoadWithUnrelatedCRL(t *testing.T) {
	ca := newCA(t)
	dir := writeKit(t, ca, siteConfig("site-1"))
	otherCert, _ := issue(t, ca, siteConfig("site-2"))
	der, err := ca.RevocationList([]pki.Revocation{{Serial: otherCert.SerialNumber, At: time.Now()}}, 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := kit.InstallCRL(dir, pki.EncodeCRL(der)); err != nil {
		t.Fatal(err)
	}
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := k.Trust()
	if err != nil {
		t.Fatal(err)
	}
	if trust.CRLNumber() != 3 {
		t.Errorf("CRL number %d, want 3", trust.CRLNumber())
	}
	if _, err := trust.Verify(otherCert, time.Now()); !errors.Is(err, pki.ErrRevoked) {
		t.Errorf("kit trust accepted a revoked certificate: %v", err)
	}
	if err := kit.InstallCRL(dir, []byte("junk")); err == nil {
		t.Error("InstallCRL accepted junk")
	}
}

func TestUpdateParticipants(t *testing.T) {
	ca := newCA(t)
	dir := writeKit(t, ca, serverConfig())
	sig := must(os.ReadFile(filepath.Join(dir, "manifest.sig")))

	same := []pki.Identity{siteConfig("site-1").Identity(), adminConfig().Identity()}
	if err := kit.UpdateParticipants(dir, same, ca.Cert, ca, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := must(os.ReadFile(filepath.Join(dir, "manifest.sig"))); string(got) != string(sig) {
		t.Error("an unchanged participant list re-signed the manifest")
	}

	more := append(same, siteConfig("site-2").Identity())
	if err := kit.UpdateParticipants(dir, more, ca.Cert, ca, time.Now()); err != nil {
		t.Fatal(err)
	}
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Participants, more) {
		t.Errorf("Participants = %v, want %v", k.Participants, more)
	}

	t.Run("refuses a tampered kit", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "local", "extra.json.default"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := kit.UpdateParticipants(dir, same, ca.Cert, ca, time.Now())
		if !errors.Is(err, kit.ErrTampered) {
			t.Fatalf("UpdateParticipants re-signed a tampered kit: %v", err)
		}
		os.Remove(filepath.Join(dir, "local", "extra.json.default"))
	})
	t.Run("refuses another root", func(t *testing.T) {
		other := newCA(t)
		if err := kit.UpdateParticipants(dir, same, other.Cert, other, time.Now()); err == nil || !strings.Contains(err.Error(), "not this project's root CA") {
			t.Fatalf("UpdateParticipants with another root: %v", err)
		}
	})
	t.Run("refuses a site kit", func(t *testing.T) {
		site := writeKit(t, ca, siteConfig("site-1"))
		if err := kit.UpdateParticipants(site, same, ca.Cert, ca, time.Now()); err == nil || !strings.Contains(err.Error(), "not a server kit") {
			t.Fatalf("UpdateParticipants on a site kit: %v", err)
		}
	})
}

func TestWriteRefuses(t *testing.T) {
	ca := newCA(t)
	cert, key := issue(t, ca, siteConfig("site-1"))
	otherKey, _ := pki.NewKey()
	tests := []struct {
		name string
		c    kit.Contents
		want string
	}{
		{"identity mismatch", kit.Contents{Config: siteConfig("site-2"), Cert: cert, Key: key, Root: ca.Cert}, "certificate is for site-1"},
		{"key mismatch", kit.Contents{Config: siteConfig("site-1"), Cert: cert, Key: otherKey, Root: ca.Cert}, "key does not match"},
		{"participants in a site kit", kit.Contents{Config: siteConfig("site-1"), Cert: cert, Key: key, Root: ca.Cert, Participants: []pki.Identity{}}, "only server kits"},
		{"invalid config", kit.Contents{Config: kit.Config{Name: "site-1"}, Cert: cert, Root: ca.Cert}, "kit.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kit.Write(filepath.Join(t.TempDir(), "k"), tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestWriteModes(t *testing.T) {
	dir := writeKit(t, newCA(t), siteConfig("site-1"))
	for name, want := range map[string]os.FileMode{".": 0o700, "key.pem": 0o600, "cert.pem": 0o644, "kit.json": 0o644, "local": 0o755} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %#o, want %#o", name, fi.Mode().Perm(), want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A site's own policy overrides are the site's: they do not break the kit,
// while the provisioned defaults beside them stay signed.
func TestSiteOwnedPolicyOverridesAreOutsideTheManifest(t *testing.T) {
	ca := newCA(t)
	dir := writeKit(t, ca, siteConfig("site-1"))
	override := []byte(`{"format_version": "1.0", "permissions": {"project_admin": "none"}}`)
	if err := os.WriteFile(filepath.Join(dir, "local", "authorization.json"), override, 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatalf("a site's own policy override broke its kit: %v", err)
	}
	if got := k.PolicyPath("authorization.json"); got != filepath.Join(k.PolicyDir(), "authorization.json") {
		t.Fatalf("policy in force %s, want the site's override", got)
	}
	if got := k.PolicyPath("privacy.json"); got != filepath.Join(k.PolicyDir(), "privacy.json.default") {
		t.Fatalf("policy in force %s, want the default", got)
	}
}
