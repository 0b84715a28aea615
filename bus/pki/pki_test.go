package pki_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

func TestIdentityRoundTripsThroughCertificates(t *testing.T) {
	p := pkitest.New(t)
	for _, tc := range []struct {
		name string
		kind pki.Kind
	}{{"server", pki.KindServer}, {"site-1", pki.KindSite}, {"admin@hospital.org", pki.KindAdmin}, {"agg-1", pki.KindAggregator}} {
		part := p.Issue(t, tc.name, "org-a", tc.kind)
		got, err := pki.IdentityOf(part.Cert)
		if err != nil {
			t.Fatal(err)
		}
		if got != part.Identity {
			t.Fatalf("identity %+v, want %+v", got, part.Identity)
		}
		wantServerAuth := tc.kind == pki.KindServer || tc.kind == pki.KindSite
		hasServerAuth := false
		for _, u := range part.Cert.ExtKeyUsage {
			hasServerAuth = hasServerAuth || u == x509.ExtKeyUsageServerAuth
		}
		if hasServerAuth != wantServerAuth {
			t.Errorf("%s: server auth %v, want %v", tc.kind, hasServerAuth, wantServerAuth)
		}
	}
}

func TestIdentityValidateRefuses(t *testing.T) {
	cases := []struct {
		name string
		id   pki.Identity
		want string
	}{
		{"empty name", pki.Identity{Org: "o", Kind: pki.KindSite}, "invalid name"},
		{"dot-dot name", pki.Identity{Name: "../x", Org: "o", Kind: pki.KindSite}, "invalid name"},
		{"subject wildcard", pki.Identity{Name: "site*", Org: "o", Kind: pki.KindSite}, "invalid name"},
		{"unknown kind", pki.Identity{Name: "s", Org: "o", Kind: "robot"}, "unknown kind"},
		{"admin without role", pki.Identity{Name: "a", Org: "o", Kind: pki.KindAdmin}, "unknown role"},
		{"site with role", pki.Identity{Name: "s", Org: "o", Kind: pki.KindSite, Role: pki.RoleLead}, "only admins carry a role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.id.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestTrustRefuses(t *testing.T) {
	p := pkitest.New(t)
	other := pkitest.New(t)
	good := p.Issue(t, "site-1", "org-a", pki.KindSite)
	revoked := p.Issue(t, "site-2", "org-a", pki.KindSite)
	p.Revoke(t, 1, revoked)
	now := time.Now()
	cases := []struct {
		name string
		cert *x509.Certificate
		at   time.Time
		want error
	}{
		{"another CA", other.Issue(t, "site-1", "org-a", pki.KindSite).Cert, now, pki.ErrUnknownAuthority},
		{"expired", p.Issue(t, "site-3", "org-a", pki.KindSite, pkitest.Expired()).Cert, now, pki.ErrExpired},
		{"not yet valid", good.Cert, good.Cert.NotBefore.Add(-time.Hour), pki.ErrNotYetValid},
		{"revoked", revoked.Cert, now, pki.ErrRevoked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Trust.Verify(tc.cert, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ce *pki.CertError
			if !errors.As(err, &ce) || ce.Name != tc.cert.Subject.CommonName || pki.Code(err) == "" {
				t.Fatalf("error %v does not name the certificate or carry a code", err)
			}
		})
	}
	if _, err := p.Trust.Verify(good.Cert, now); err != nil {
		t.Fatalf("good certificate refused: %v", err)
	}
	if _, err := p.Trust.VerifyKind(good.Cert, now, pki.KindAdmin); !errors.Is(err, pki.ErrWrongKind) {
		t.Fatalf("site as admin: %v, want wrong kind", err)
	}
}

func TestSetCRLRefusesForeignAndOlderLists(t *testing.T) {
	p := pkitest.New(t)
	other := pkitest.New(t)
	site := p.Issue(t, "site-1", "org-a", pki.KindSite)
	newer := p.Revoke(t, 5, site)
	foreign, err := other.CA.RevocationList(nil, 9, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Trust.SetCRL(foreign); err == nil || !strings.Contains(err.Error(), "not signed by the project root") {
		t.Fatalf("foreign CRL: %v", err)
	}
	older, err := p.CA.RevocationList(nil, 4, time.Now()) // would un-revoke site-1
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Trust.SetCRL(older); !errors.Is(err, pki.ErrStaleCRL) {
		t.Fatalf("older CRL: %v, want stale", err)
	}
	if err := p.Trust.SetCRL(newer); err != nil {
		t.Fatalf("same CRL again: %v", err)
	}
	if _, err := p.Trust.Verify(site.Cert, time.Now()); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("revocation lost: %v", err)
	}
	if err := p.Trust.SetCRL([]byte("garbage")); err == nil {
		t.Fatal("garbage CRL accepted")
	}
}

func TestEncryptedKey(t *testing.T) {
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := pki.EncryptKey(key, []byte("correct horse battery"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(enc), "-----BEGIN HEARTH ENCRYPTED PRIVATE KEY-----") {
		t.Fatalf("not an encrypted key block:\n%s", enc)
	}
	if plain, _ := pki.ParseKeyPEM(enc); plain != nil {
		t.Fatal("encrypted key parses as a plain key")
	}
	got, err := pki.DecryptKey(enc, []byte("correct horse battery"))
	if err != nil || !got.Equal(key) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := pki.DecryptKey(enc, []byte("wrong passphrase!")); !errors.Is(err, pki.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := pki.EncryptKey(key, []byte("short")); err == nil {
		t.Fatal("short passphrase accepted")
	}
}

func TestCertificateRequest(t *testing.T) {
	key, _ := pki.NewKey()
	id := pki.Identity{Name: "site-9", Org: "clinic", Kind: pki.KindSite}
	csr, err := pki.NewCSR(id, key, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	if req.Identity != id || !req.PublicKey.Equal(key.Public()) || len(req.Hosts) != 2 {
		t.Fatalf("parsed %+v", req)
	}
	tampered := []byte(strings.Replace(string(csr), "A", "B", 1))
	if _, err := pki.ParseCSR(tampered); err == nil {
		t.Fatal("tampered request accepted")
	}
}

func TestCANeverIssuesOutsideItsValidity(t *testing.T) {
	ca, err := pki.NewCA("p", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	_, err = ca.Issue(pki.Template{Identity: pki.Identity{Name: "s", Org: "o", Kind: pki.KindSite}, PublicKey: key.Public(),
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err == nil {
		t.Fatal("issued a certificate that ended before the CA began")
	}
	cert, err := ca.Issue(pki.Template{Identity: pki.Identity{Name: "s", Org: "o", Kind: pki.KindSite}, PublicKey: key.Public(),
		NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatal("certificate outlives its CA")
	}
}

// TestCRLChangedFiresOnNewerListsOnly: the channel taken before an install
// closes for a newer list, and not for a refused or repeated one.
func TestCRLChangedFiresOnNewerListsOnly(t *testing.T) {
	p := pkitest.New(t)
	site := p.Issue(t, "site-1", "org-a", pki.KindSite)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	before := p.Trust.CRLChanged()
	list := p.Revoke(t, 3, site)
	if !closed(before) {
		t.Fatal("a newer list did not close the channel taken before it")
	}
	after := p.Trust.CRLChanged()
	if closed(after) {
		t.Fatal("the channel of the list in use is already closed")
	}
	older, err := p.CA.RevocationList(nil, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Trust.SetCRL(older); !errors.Is(err, pki.ErrStaleCRL) {
		t.Fatalf("older list: %v", err)
	}
	if err := p.Trust.SetCRL(list); err != nil {
		t.Fatal(err)
	}
	if closed(after) {
		t.Fatal("a stale or repeated list closed the channel")
	}
}
