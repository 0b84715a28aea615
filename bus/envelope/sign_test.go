package envelope_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestNewSigner(t *testing.T) {
	fx := newFixture(t)
	cert := fx.site2.Certificate()
	tests := []struct {
		name string
		cert *x509.Certificate
		key  ed25519.PrivateKey
		text string // "" for success
	}{
		{"matching key", cert, fx.site2Key, ""},
		{"no certificate", nil, fx.site2Key, "no certificate"},
		{"short key", cert, fx.site2Key[:10], "private key is 10 bytes"},
		{"key of another participant", cert, fx.otherKey, `does not match the certificate of "site-2"`},
		{"certificate without an identity", noIdentity(t, fx.otherKey), fx.otherKey, "certificate identity malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := envelope.NewSigner(tt.cert, tt.key)
			if tt.text == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := (pki.Identity{Name: "site-2", Org: "org-site-2", Kind: pki.KindSite}); s.Identity() != want {
					t.Errorf("Identity = %v, want %v", s.Identity(), want)
				}
				if s.Certificate() != cert {
					t.Errorf("Certificate is not the one given")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("NewSigner: %v, want an error about %q", err, tt.text)
			}
		})
	}
}

// noIdentity is a self-signed certificate for key whose subject carries no
// participant kind.
func noIdentity(t *testing.T, key ed25519.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "site-9", Organization: []string{"o"}},
		NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestSignValidates(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name string
		m    envelope.Outgoing
		text string
	}{
		{"no body", envelope.Outgoing{Recipient: self}, "no body"},
		{"no recipient", envelope.Outgoing{Body: &hearthv1.Ping{}}, "recipient"},
		{"bad recipient", envelope.Outgoing{Recipient: "a b", Body: &hearthv1.Ping{}}, "recipient"},
		{"unknown kind", envelope.Outgoing{Recipient: self, Kind: 9, Body: &hearthv1.Ping{}}, "unknown kind 9"},
		{"response without correlation id", envelope.Outgoing{Recipient: self, Kind: hearthv1.Header_KIND_RESPONSE, Body: &hearthv1.Pong{}},
			"needs the request's id"},
		{"error without a Failure", envelope.Outgoing{Recipient: self, Kind: hearthv1.Header_KIND_ERROR, CorrelationID: "c", Body: &hearthv1.Pong{}},
			"carries hearth.v1.Failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := fx.site2.Sign(tt.m, t0)
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Sign: %v, want an error about %q", err, tt.text)
			}
		})
	}
}

// TestSignatureFormat pins the wire format: the signature is Ed25519 over
// "hearth.envelope.v1\x00" || uint32be(len(header)) || header || body, by the
// attached certificate's key, and the defaults are filled in.
func TestSignatureFormat(t *testing.T) {
	fx := newFixture(t)
	data, id, err := fx.site2.Sign(envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{Seq: 1}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	env := new(hearthv1.Envelope)
	if err := proto.Unmarshal(data, env); err != nil {
		t.Fatal(err)
	}
	pub := fx.site2.Certificate().PublicKey.(ed25519.PublicKey)
	if !ed25519.Verify(pub, signed(env.Header, env.Body), env.Signature) {
		t.Errorf("signature does not verify over the documented bytes")
	}
	if string(env.SenderCert) != string(fx.site2.Certificate().Raw) {
		t.Errorf("sender certificate not attached")
	}
	h := headerOf(t, data)
	if h.Id != id || h.Kind != hearthv1.Header_KIND_MESSAGE || h.BodyEncoding != hearthv1.BodyEncoding_BODY_ENCODING_PLAIN {
		t.Errorf("header %v: want id %s, KIND_MESSAGE, BODY_ENCODING_PLAIN", h, id)
	}
}

func TestSignIDsAreFresh(t *testing.T) {
	fx := newFixture(t)
	seen := map[string]bool{}
	for range 100 {
		_, id, err := fx.site2.Sign(envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("id %s issued twice", id)
		}
		seen[id] = true
	}
}
