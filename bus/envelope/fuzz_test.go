package envelope_test

import (
	"errors"
	"testing"

	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// FuzzOpen feeds Open arbitrary bytes: it must never panic, must refuse with
// a *RefusedError carrying a known reason, and must return a complete
// message whenever it accepts.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	valid := ping(f, fx.site2)
	sealed, _, err := fx.site2.SignSealed(envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{Seq: 2}}, fx.self25519.PublicKey(), t0)
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{
		valid,
		sealed,
		ping(f, fx.impostor),
		mustSign(f, fx.admin, envelope.Outgoing{Recipient: self, Body: &hearthv1.Notice{Text: "n"}}, t0),
		tamper(f, valid, func(env *hearthv1.Envelope) { env.Body[0] ^= 1 }),
		tamper(f, valid, func(env *hearthv1.Envelope) { env.Header = env.Header[:len(env.Header)/2] }),
		tamper(f, valid, func(env *hearthv1.Envelope) { env.SenderCert = env.SenderCert[:100] }),
		resign(f, valid, fx.site2Key, func(_ *hearthv1.Header, env *hearthv1.Envelope) { env.Body = []byte{0x0a, 0xff, 0x01} }),
		valid[:len(valid)-1],
		{},
		{0xff, 0xff, 0xff},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	v := fx.verifier(f, newClock(), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := v.Open("site-2", data)
		if err != nil {
			var re *envelope.RefusedError
			if m != nil || !errors.As(err, &re) || envelope.Reason(err) == "other" || err.Error() == "" {
				t.Fatalf("Open = %v, %T %v", m, err, err)
			}
			return
		}
		if m.Header == nil || m.Sender.Name != "site-2" || (m.Body == nil) == (m.Sealed == nil) {
			t.Fatalf("incomplete message %+v", m)
		}
		if m.Sealed != nil {
			if _, err := v.DecodeSealed(m, fx.self25519); err != nil && !errors.Is(err, envelope.ErrUnseal) && !errors.Is(err, envelope.ErrMalformed) {
				t.Fatalf("DecodeSealed: %v", err)
			}
		}
	})
}
