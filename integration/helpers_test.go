package integration

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

type pkiCert struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	root *x509.Certificate
}

func (c *pkiCert) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

func itoa(i int) string { return strconv.Itoa(i) }

// openCA opens the project's CA with its passphrase, as its holder would.
func (p *project) openCA(t testing.TB) *pki.CA {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(p.Workspace, "ca", "rootCA.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(p.Workspace, "ca", "rootCA.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.OpenCA(certPEM, keyPEM, p.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue issues a site certificate valid for validity from now (negative:
// expired that long ago).
func issue(t testing.TB, ca *pki.CA, name string, kind pki.Kind, validity time.Duration) *pkiCert {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := pki.Template{Identity: pki.Identity{Name: name, Org: "org-a", Kind: kind}, PublicKey: key.Public(),
		Hosts: []string{"localhost", "127.0.0.1"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity)}
	if validity < 0 {
		tmpl.NotBefore = now.Add(2 * validity)
	}
	cert, err := ca.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return &pkiCert{cert: cert, key: key, root: ca.Cert}
}

func loadKit(t testing.TB, dir string) *kit.Kit {
	t.Helper()
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawKit reads a kit's certificate and key without verifying the kit (for a
// revoked kit, which Load refuses).
func rawKit(t testing.TB, dir string) *pkiCert {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert, err := pki.ParseCertPEM(read(kit.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.ParseCertPEM(read(kit.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.ParseKeyPEM(read(kit.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return &pkiCert{cert: cert, key: key, root: root}
}
