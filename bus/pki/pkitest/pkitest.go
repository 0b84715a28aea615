// Package pkitest makes real project PKIs for tests: a root CA and
// certificates issued by it, in memory, in a few milliseconds.
package pkitest

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// Project is a test project: its CA and a Trust over it.
type Project struct {
	CA    *pki.CA
	Trust *pki.Trust
	now   time.Time
}

// New creates a project with a fresh root CA.
func New(t testing.TB) *Project {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("test-project", now.Add(-72*time.Hour), 96*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &Project{CA: ca, Trust: pki.NewTrust(ca.Cert), now: now}
}

// Participant is an issued identity with its key.
type Participant struct {
	Identity pki.Identity
	Cert     *x509.Certificate
	Key      ed25519.PrivateKey
}

// TLS is the participant's certificate for crypto/tls.
func (p *Participant) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
}

// Option changes a certificate before it is issued.
type Option func(*pki.Template)

// Expired makes a certificate that expired an hour ago.
func Expired() Option {
	return func(t *pki.Template) {
		t.NotBefore = t.NotAfter.Add(-48 * time.Hour)
		t.NotAfter = time.Now().Add(-time.Hour)
	}
}

// Issue issues a certificate for a participant. Servers and sites get the
// loopback host names.
func (p *Project) Issue(t testing.TB, name, org string, kind pki.Kind, opts ...Option) *Participant {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	id := pki.Identity{Name: name, Org: org, Kind: kind}
	if kind == pki.KindAdmin {
		id.Role = pki.RoleProjectAdmin
	}
	tmpl := pki.Template{Identity: id, PublicKey: key.Public(), NotBefore: p.now.Add(-time.Minute), NotAfter: p.now.Add(12 * time.Hour)}
	if kind == pki.KindServer || kind == pki.KindSite {
		tmpl.Hosts = []string{"localhost", "127.0.0.1"}
	}
	for _, o := range opts {
		o(&tmpl)
	}
	cert, err := p.CA.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return &Participant{Identity: id, Cert: cert, Key: key}
}

// Revoke revokes the participants' certificates in p.Trust.
func (p *Project) Revoke(t testing.TB, number int64, revoked ...*Participant) []byte {
	t.Helper()
	var rs []pki.Revocation
	for _, r := range revoked {
		rs = append(rs, pki.Revocation{Serial: r.Cert.SerialNumber, Name: r.Identity.Name, At: time.Now()})
	}
	der, err := p.CA.RevocationList(rs, number, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Trust.SetCRL(der); err != nil {
		t.Fatal(err)
	}
	return der
}
