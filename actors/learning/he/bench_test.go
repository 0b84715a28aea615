package he

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkHE measures, in one run on one core each, the HE steps of a
// round next to plaintext aggregation, on a 1 Mi-value update (4 MiB of
// float32), 5 sites, t = 3:
//
//	go test -run '^$' -bench HE -benchtime 3x ./actors/learning/he
//
// A decryption share includes the party's own sum of the 5 sites'
// ciphertexts (DecryptionShare decrypts no ciphertext handed to it).
// values/s is values processed per second; x-float32 is the ciphertext's
// wire bytes per float32 byte and B/value its bytes per value.
func BenchmarkHE(b *testing.B) {
	const values = 1 << 20
	params := testParams(b)
	parties, pk := setup(b, params, 5, 3, testSeed(1))
	ups, weights := updates(rand.New(rand.NewPCG(1, 1)), 5, values)
	enc, err := NewEncryptor(params, pk)
	if err != nil {
		b.Fatalf("NewEncryptor: %v", err)
	}
	cts := make([]*Ciphertext, len(ups))
	for i := range ups {
		if cts[i], err = enc.Encrypt(ups[i], weights[i]); err != nil {
			b.Fatalf("Encrypt: %v", err)
		}
	}
	sum, err := Sum(cts...)
	if err != nil {
		b.Fatalf("Sum: %v", err)
	}
	active := []int{0, 2, 4}
	shares := decryptionShares(b, parties, 1, cts, active)
	wire, err := sum.MarshalBinary()
	if err != nil {
		b.Fatalf("marshal: %v", err)
	}
	perSecond := func(b *testing.B) {
		b.ReportMetric(float64(values)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
	}

	b.Run("plaintext-sum", func(b *testing.B) {
		acc := make([]float32, values)
		w := float32(weights[1])
		b.SetBytes(4 * values)
		for b.Loop() {
			for k, v := range ups[1] {
				acc[k] += w * v
			}
		}
		perSecond(b)
	})
	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(4 * values)
		for b.Loop() {
			if _, err := enc.Encrypt(ups[0], weights[0]); err != nil {
				b.Fatalf("Encrypt: %v", err)
			}
		}
		perSecond(b)
		b.ReportMetric(float64(len(wire))/(4*values), "x-float32")
		b.ReportMetric(float64(len(wire))/values, "B/value")
	})
	b.Run("add", func(b *testing.B) {
		acc, err := Sum(cts[0])
		if err != nil {
			b.Fatalf("Sum: %v", err)
		}
		b.SetBytes(4 * values)
		for b.Loop() {
			acc.summands = 1 // keep below MaxSummands however long it runs
			if err := acc.Add(cts[1]); err != nil {
				b.Fatalf("Add: %v", err)
			}
		}
		perSecond(b)
	})
	b.Run("decrypt-share", func(b *testing.B) {
		b.SetBytes(4 * values)
		for b.Loop() {
			if _, err := parties[0].DecryptionShare(1, contributions(cts), active); err != nil {
				b.Fatalf("DecryptionShare: %v", err)
			}
		}
		perSecond(b)
	})
	b.Run("combine", func(b *testing.B) {
		b.SetBytes(4 * values)
		for b.Loop() {
			if _, err := Combine(params, pk, sum, shares); err != nil {
				b.Fatalf("Combine: %v", err)
			}
		}
		perSecond(b)
	})
	b.Run("decrypt", func(b *testing.B) { // all of it: t shares, then combine
		b.SetBytes(4 * values)
		for b.Loop() {
			var got []*DecryptionShare
			for _, i := range active {
				s, err := parties[i].DecryptionShare(1, contributions(cts), active)
				if err != nil {
					b.Fatalf("DecryptionShare: %v", err)
				}
				got = append(got, s)
			}
			if _, err := Combine(params, pk, sum, got); err != nil {
				b.Fatalf("Combine: %v", err)
			}
		}
		perSecond(b)
	})
	b.Run("marshal", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		for b.Loop() {
			if _, err := sum.MarshalBinary(); err != nil {
				b.Fatalf("marshal: %v", err)
			}
		}
		perSecond(b)
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		for b.Loop() {
			if err := new(Ciphertext).UnmarshalBinary(wire); err != nil {
				b.Fatalf("unmarshal: %v", err)
			}
		}
		perSecond(b)
	})
}
