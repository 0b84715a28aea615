package envelope_test

import (
	"errors"
	"testing"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

var benchPing = &hearthv1.Ping{Seq: 1, Text: "ping"}

// BenchmarkOpenRateLimited is the cost of refusing one envelope of a
// flooding sender: the rate check comes before any parsing or signature
// check. Compare with BenchmarkOpen.
func BenchmarkOpenRateLimited(b *testing.B) {
	fx := newFixture(b)
	v := fx.verifier(b, newClock(), func(c *envelope.Config) { c.Burst = 1 })
	data := mustSign(b, fx.site2, envelope.Outgoing{Recipient: self, Body: benchPing}, t0)
	if _, err := v.Open("site-2", data); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Open("site-2", data); !errors.Is(err, envelope.ErrRateLimited) {
			b.Fatalf("got %v, want %v", err, envelope.ErrRateLimited)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	fx := newFixture(b)
	m := envelope.Outgoing{Recipient: self, Body: benchPing}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := fx.site2.Sign(m, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen opens distinct envelopes (the replay cache refuses repeats),
// signed before the timer starts.
func BenchmarkOpen(b *testing.B) {
	fx := newFixture(b)
	v := fx.verifier(b, newClock(), bustest.Unlimited)
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = mustSign(b, fx.site2, envelope.Outgoing{Recipient: self, Body: benchPing}, t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Open("site-2", msgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenParallel(b *testing.B) {
	fx := newFixture(b)
	v := fx.verifier(b, newClock(), bustest.Unlimited)
	msgs := make(chan []byte, b.N)
	for range b.N {
		msgs <- mustSign(b, fx.site2, envelope.Outgoing{Recipient: self, Body: benchPing}, t0)
	}
	close(msgs)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Open("site-2", <-msgs); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSealedRoundTrip signs a sealed Ping, opens it and decodes it.
func BenchmarkSealedRoundTrip(b *testing.B) {
	fx := newFixture(b)
	v := fx.verifier(b, newClock(), bustest.Unlimited)
	m := envelope.Outgoing{Recipient: self, Body: benchPing}
	b.ReportAllocs()
	for b.Loop() {
		data, _, err := fx.site2.SignSealed(m, fx.self25519.PublicKey(), t0)
		if err != nil {
			b.Fatal(err)
		}
		msg, err := v.Open("site-2", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.DecodeSealed(msg, fx.self25519); err != nil {
			b.Fatal(err)
		}
	}
}
