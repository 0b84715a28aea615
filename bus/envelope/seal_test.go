package envelope_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestSealRoundTrip(t *testing.T) {
	fx := newFixture(t)
	header, body := []byte("header bytes"), []byte("model update")
	sb, err := envelope.Seal(header, body, fx.self25519.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sb.Ciphertext, body) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if want := sha256.Sum256(fx.self25519.PublicKey().Bytes()); !bytes.Equal(sb.RecipientKeySha256, want[:]) {
		t.Errorf("recipient_key_sha256 does not name the recipient key")
	}
	got, err := envelope.Unseal(header, sb, fx.self25519)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("Unseal = %q, want %q", got, body)
	}
}

// TestUnsealRefuses: only the recipient key opens a sealed body, and only
// with the header it was sealed under. In particular the hub that relays it
// cannot read it.
func TestUnsealRefuses(t *testing.T) {
	fx := newFixture(t)
	header := []byte("header bytes")
	fresh := func(t *testing.T) *hearthv1.SealedBody {
		t.Helper()
		sb, err := envelope.Seal(header, []byte("model update"), fx.self25519.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	p256, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hubKeyHash := sha256.Sum256(fx.hub25519.PublicKey().Bytes())
	tests := []struct {
		name   string
		header []byte
		alter  func(sb *hearthv1.SealedBody)
		key    *ecdh.PrivateKey
	}{
		{"the hub's key", header, nil, fx.hub25519},
		{"the hub's key, recipient hash rewritten to it", header, func(sb *hearthv1.SealedBody) { sb.RecipientKeySha256 = hubKeyHash[:] }, fx.hub25519},
		{"altered header (associated data)", []byte("header bytez"), nil, fx.self25519},
		{"no header", nil, nil, fx.self25519},
		{"altered ciphertext", header, func(sb *hearthv1.SealedBody) { sb.Ciphertext[0] ^= 1 }, fx.self25519},
		{"truncated ciphertext", header, func(sb *hearthv1.SealedBody) { sb.Ciphertext = sb.Ciphertext[:3] }, fx.self25519},
		{"altered nonce", header, func(sb *hearthv1.SealedBody) { sb.Nonce[0] ^= 1 }, fx.self25519},
		{"short nonce", header, func(sb *hearthv1.SealedBody) { sb.Nonce = sb.Nonce[:8] }, fx.self25519},
		{"altered ephemeral key", header, func(sb *hearthv1.SealedBody) { sb.EphemeralPublicKey[0] ^= 1 }, fx.self25519},
		{"low-order ephemeral key", header, func(sb *hearthv1.SealedBody) { sb.EphemeralPublicKey = make([]byte, 32) }, fx.self25519},
		{"malformed ephemeral key", header, func(sb *hearthv1.SealedBody) { sb.EphemeralPublicKey = []byte{1} }, fx.self25519},
		{"not an X25519 key", header, nil, p256},
		{"no key", header, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := fresh(t)
			if tt.alter != nil {
				tt.alter(sb)
			}
			got, err := envelope.Unseal(tt.header, sb, tt.key)
			if !errors.Is(err, envelope.ErrUnseal) {
				t.Fatalf("Unseal = %q, %v; want %v", got, err, envelope.ErrUnseal)
			}
			if got != nil {
				t.Errorf("Unseal returned plaintext with its error")
			}
		})
	}
	if _, err := envelope.Unseal(header, nil, fx.self25519); !errors.Is(err, envelope.ErrUnseal) {
		t.Errorf("Unseal(nil body) = %v, want %v", err, envelope.ErrUnseal)
	}
}

func TestSealRefusesNonX25519(t *testing.T) {
	p256, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]*ecdh.PublicKey{"P-256": p256.PublicKey(), "nil": nil} {
		if _, err := envelope.Seal(nil, nil, key); err == nil {
			t.Errorf("Seal to a %s key succeeded", name)
		}
	}
}

// TestSealedEnvelope: a site seals a Ping to self's key; self's verifier
// opens the envelope without decoding the body, and only self's key decodes
// it; the hub, relaying the same bytes, cannot.
func TestSealedEnvelope(t *testing.T) {
	fx := newFixture(t)
	want := &hearthv1.Ping{Seq: 5, Text: "sealed"}
	data, id, err := fx.site2.SignSealed(envelope.Outgoing{Recipient: self, Body: want}, fx.self25519.PublicKey(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("sealed")) {
		t.Fatal("envelope bytes contain the plaintext")
	}
	v := fx.verifier(t, newClock(), nil)
	m, err := v.Open("site-2", data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != nil || m.Sealed == nil || m.Header.Id != id ||
		m.Header.BodyEncoding != hearthv1.BodyEncoding_BODY_ENCODING_SEALED || m.Header.MessageType != "hearth.v1.Ping" {
		t.Fatalf("sealed message opened as %+v", m)
	}
	got, err := v.DecodeSealed(m, fx.self25519)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("DecodeSealed = %v, want %v", got, want)
	}

	if _, err := v.DecodeSealed(m, fx.hub25519); !errors.Is(err, envelope.ErrUnseal) || envelope.Reason(err) != "unseal_failed" {
		t.Errorf("DecodeSealed with the hub's key = %v, want %v", err, envelope.ErrUnseal)
	}
	// The hub sees only the envelope bytes.
	env := new(hearthv1.Envelope)
	sb := new(hearthv1.SealedBody)
	if err := proto.Unmarshal(data, env); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(env.Body, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.Unseal(env.Header, sb, fx.hub25519); !errors.Is(err, envelope.ErrUnseal) {
		t.Errorf("the hub unsealed the body: %v", err)
	}
	// Re-addressing the sealed body under another header breaks the seal
	// even for the right key, besides the signature.
	other := bytes.Replace(env.Header, []byte(self), []byte("site-9"), 1)
	if _, err := envelope.Unseal(other, sb, fx.self25519); !errors.Is(err, envelope.ErrUnseal) {
		t.Errorf("Unseal under an altered header: %v, want %v", err, envelope.ErrUnseal)
	}
	if _, err := v.DecodeSealed(&envelope.Message{Header: m.Header, Body: want}, fx.self25519); !errors.Is(err, envelope.ErrMalformed) {
		t.Errorf("DecodeSealed of a plain message = %v, want %v", err, envelope.ErrMalformed)
	}
}

func TestSealedEnvelopeRefuses(t *testing.T) {
	fx := newFixture(t)
	data, _, err := fx.site2.SignSealed(envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, fx.self25519.PublicKey(), t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"tampered ciphertext", tamper(t, data, func(env *hearthv1.Envelope) { env.Body[len(env.Body)-1] ^= 1 }), envelope.ErrBadSignature},
		{"signed sealed body that does not parse", resign(t, data, fx.site2Key, func(_ *hearthv1.Header, env *hearthv1.Envelope) {
			env.Body = []byte{0xff}
		}), envelope.ErrMalformed},
		{"signed sealed body with a short nonce", resign(t, data, fx.site2Key, func(_ *hearthv1.Header, env *hearthv1.Envelope) {
			sb := new(hearthv1.SealedBody)
			if err := proto.Unmarshal(env.Body, sb); err != nil {
				t.Fatal(err)
			}
			sb.Nonce = sb.Nonce[:4]
			env.Body, _ = proto.Marshal(sb)
		}), envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fx.verifier(t, newClock(), nil).Open("site-2", tt.data); !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
	if _, _, err := fx.site2.SignSealed(envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, nil, t0); err == nil {
		t.Errorf("SignSealed without a recipient key succeeded")
	}
}
