package sealing_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestVerifyKey(t *testing.T) {
	p := pkitest.New(t)
	site1 := p.Issue(t, "site-1", "org-a", pki.KindSite)
	site2 := p.Issue(t, "site-2", "org-b", pki.KindSite)
	admin := p.Issue(t, "admin@x", "org-a", pki.KindAdmin)
	signer := func(pp *pkitest.Participant) *envelope.Signer {
		s, err := envelope.NewSigner(pp.Cert, pp.Key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const job = "job-0123456789ab"
	good, err := sealing.BindKey(signer(site1), job, key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if pub, err := sealing.VerifyKey(good, p.Trust, job, "site-1", now); err != nil || !pub.Equal(key.PublicKey()) {
		t.Fatalf("VerifyKey(good) = %v, %v", pub, err)
	}
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	byAdmin, _ := sealing.BindKey(signer(admin), job, key.PublicKey())
	for _, tc := range []struct {
		name   string
		change func(k *hearthv1.SealingKey)
		site   string
		job    string
		want   string
	}{
		{"another scope's binding", func(*hearthv1.SealingKey) {}, "site-1", "job-ffffffffffff", "bound to"},
		{"a swarm binding offered as the credential key", func(*hearthv1.SealingKey) {}, "site-1", sealing.Credentials, "bound to"},
		{"claimed for another site", func(*hearthv1.SealingKey) {}, "site-2", job, "bound to"},
		{"a key swapped in", func(k *hearthv1.SealingKey) { k.PublicKey = other.PublicKey().Bytes() }, "site-1", job, "does not verify"},
		{"another site's certificate", func(k *hearthv1.SealingKey) { k.Certificate = site2.Cert.Raw }, "site-1", job, "site-2's"},
		{"an admin's certificate", func(k *hearthv1.SealingKey) { k.Certificate, k.Site = byAdmin.Certificate, "admin@x" }, "admin@x", job, "required"},
		{"a certificate that does not parse", func(k *hearthv1.SealingKey) { k.Certificate = []byte("junk") }, "site-1", job, "certificate"},
		{"an oversized certificate", func(k *hearthv1.SealingKey) { k.Certificate = make([]byte, 17<<10) }, "site-1", job, "bytes"},
		{"not an X25519 key", func(k *hearthv1.SealingKey) { k.PublicKey = []byte{1, 2, 3} }, "site-1", job, "X25519"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := proto.Clone(good).(*hearthv1.SealingKey)
			tc.change(k)
			if _, err := sealing.VerifyKey(k, p.Trust, tc.job, tc.site, now); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyKey = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	p.Revoke(t, 1, site1)
	if _, err := sealing.VerifyKey(good, p.Trust, job, "site-1", now); err == nil {
		t.Error("a revoked site's binding verified")
	}
}

// TestVerifyHostKey: an aggregation host's binding verifies only as a
// host's; a site's binding does not pass for a host's, nor the reverse.
func TestVerifyHostKey(t *testing.T) {
	p := pkitest.New(t)
	host := p.Issue(t, "agg-1", "org-a", pki.KindAggregator)
	site := p.Issue(t, "site-1", "org-a", pki.KindSite)
	key, _ := ecdh.X25519().GenerateKey(rand.Reader)
	const job = "job-0123456789ab"
	bind := func(pp *pkitest.Participant) *hearthv1.SealingKey {
		s, err := envelope.NewSigner(pp.Cert, pp.Key)
		if err != nil {
			t.Fatal(err)
		}
		k, err := sealing.BindKey(s, job, key.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	hostKey, siteKey := bind(host), bind(site)
	if pub, err := sealing.VerifyHostKey(hostKey, p.Trust, job, "agg-1", now); err != nil || !pub.Equal(key.PublicKey()) {
		t.Fatalf("VerifyHostKey(host's) = %v, %v", pub, err)
	}
	if _, err := sealing.VerifyHostKey(siteKey, p.Trust, job, "site-1", now); err == nil {
		t.Error("a site's binding passed for a host's")
	}
	if _, err := sealing.VerifyKey(hostKey, p.Trust, job, "agg-1", now); err == nil {
		t.Error("a host's binding passed for a site's")
	}
}
