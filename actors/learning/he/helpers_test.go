package he

import (
	"encoding"
	"math"
	"math/rand/v2"
	"testing"
)

// testSeed returns a job seed derived from b.
func testSeed(b byte) [SeedSize]byte {
	var s [SeedSize]byte
	for i := range s {
		s[i] = b + byte(i)
	}
	return s
}

// testParams returns ParamsV1 or fails the test.
func testParams(tb testing.TB) Params {
	tb.Helper()
	p, err := NewParams()
	if err != nil {
		tb.Fatalf("NewParams: %v", err)
	}
	return p
}

// viaWire marshals in and unmarshals the bytes into out, as the message
// would cross the wire, and returns out.
func viaWire[T encoding.BinaryUnmarshaler](tb testing.TB, in encoding.BinaryMarshaler, out T) T {
	tb.Helper()
	b, err := in.MarshalBinary()
	if err != nil {
		tb.Fatalf("marshal %T: %v", in, err)
	}
	if err := out.UnmarshalBinary(b); err != nil {
		tb.Fatalf("unmarshal %T: %v", out, err)
	}
	return out
}

// setup runs key generation among n parties with threshold t, every
// message crossing the wire encoding, and returns the parties and the key.
func setup(tb testing.TB, params Params, n, t int, seed [SeedSize]byte) ([]*Party, *PublicKey) {
	tb.Helper()
	parties := make([]*Party, n)
	commitments := make([]Commitment, n)
	for i := range parties {
		p, err := NewParty(params, i, n, t, seed)
		if err != nil {
			tb.Fatalf("NewParty(%d, %d, %d): %v", i, n, t, err)
		}
		parties[i] = p
		commitments[i] = p.Commitment()
	}
	shares := reveal(tb, parties, commitments)
	if err := VerifyShares(commitments, shares); err != nil {
		tb.Fatalf("VerifyShares: %v", err)
	}
	pk, err := AggregatePublicKey(shares)
	if err != nil {
		tb.Fatalf("AggregatePublicKey: %v", err)
	}
	pk = viaWire(tb, pk, &PublicKey{})
	for _, p := range parties {
		own, err := p.PublicKey(commitments, shares)
		if err != nil {
			tb.Fatalf("party %d checks the key: %v", p.Index(), err)
		}
		if own.ID() != pk.ID() {
			tb.Fatalf("party %d computes key %s, the aggregator %s", p.Index(), own.ID(), pk.ID())
		}
	}
	for _, from := range parties {
		out := from.ThresholdShares()
		if len(out) != n-1 {
			tb.Fatalf("party %d has %d outgoing threshold shares, want %d", from.Index(), len(out), n-1)
		}
		for _, s := range out {
			if err := parties[s.To()].AddThresholdShare(viaWire(tb, s, &ThresholdShare{})); err != nil {
				tb.Fatalf("party %d takes the share of party %d: %v", s.To(), s.From(), err)
			}
		}
	}
	for _, p := range parties {
		if !p.Ready() {
			tb.Fatalf("party %d not ready after setup", p.Index())
		}
	}
	return parties, pk
}

// commitAll returns the commitments of parties, indexed by party.
func commitAll(parties []*Party) []Commitment {
	out := make([]Commitment, len(parties))
	for i, p := range parties {
		out[i] = p.Commitment()
	}
	return out
}

// reveal has every party reveal its public key share once it holds the
// commitments, each share crossing the wire.
func reveal(tb testing.TB, parties []*Party, commitments []Commitment) []*PublicKeyShare {
	tb.Helper()
	shares := make([]*PublicKeyShare, len(parties))
	for i, p := range parties {
		s, err := p.PublicKeyShare(commitments)
		if err != nil {
			tb.Fatalf("party %d reveals its share: %v", i, err)
		}
		shares[i] = viaWire(tb, s, &PublicKeyShare{})
	}
	return shares
}

// updates returns one update of length values in [-1, 1] per site and a
// FedAvg weight per site (sample counts over their total).
func updates(rng *rand.Rand, sites, length int) ([][]float32, []float64) {
	ups := make([][]float32, sites)
	weights := make([]float64, sites)
	var total float64
	for i := range ups {
		ups[i] = make([]float32, length)
		for k := range ups[i] {
			ups[i][k] = float32(2*rng.Float64() - 1)
		}
		weights[i] = float64(100 + rng.IntN(5000))
		total += weights[i]
	}
	for i := range weights {
		weights[i] /= total
	}
	return ups, weights
}

// weightedSum is the plaintext FedAvg sum the decryption must match.
func weightedSum(ups [][]float32, weights []float64) []float64 {
	sum := make([]float64, len(ups[0]))
	for i, u := range ups {
		for k, v := range u {
			sum[k] += weights[i] * float64(v)
		}
	}
	return sum
}

// encryptAll encrypts each site's weighted update and sums the
// ciphertexts, as they would cross the wire to the aggregator.
func encryptAll(tb testing.TB, params Params, pk *PublicKey, ups [][]float32, weights []float64) (*Ciphertext, []*Ciphertext) {
	tb.Helper()
	enc, err := NewEncryptor(params, pk)
	if err != nil {
		tb.Fatalf("NewEncryptor: %v", err)
	}
	cts := make([]*Ciphertext, len(ups))
	for i := range ups {
		ct, err := enc.Encrypt(ups[i], weights[i])
		if err != nil {
			tb.Fatalf("Encrypt site %d: %v", i, err)
		}
		cts[i] = viaWire(tb, ct, &Ciphertext{})
	}
	sum, err := Sum(cts...)
	if err != nil {
		tb.Fatalf("Sum: %v", err)
	}
	return viaWire(tb, sum, &Ciphertext{}), cts
}

// contributions keys the per-site ciphertexts cts by site index, as a
// round's decryption request carries them.
func contributions(cts []*Ciphertext) map[int]*Ciphertext {
	out := make(map[int]*Ciphertext, len(cts))
	for i, ct := range cts {
		out[i] = ct
	}
	return out
}

// decryptionShares asks each party of active (or of from, if given) for
// its share of round's sum of the per-site ciphertexts cts.
func decryptionShares(tb testing.TB, parties []*Party, round RoundID, cts []*Ciphertext, active []int, from ...int) []*DecryptionShare {
	tb.Helper()
	if from == nil {
		from = active
	}
	var out []*DecryptionShare
	for _, i := range from {
		s, err := parties[i].DecryptionShare(round, contributions(cts), active)
		if err != nil {
			tb.Fatalf("party %d DecryptionShare: %v", i, err)
		}
		out = append(out, viaWire(tb, s, &DecryptionShare{}))
	}
	return out
}

// rawDecryptionShares has each party of from make its share of ct itself,
// with none of DecryptionShare's checks on what it decrypts: for tests that
// show what a share of one ciphertext would give away.
func rawDecryptionShares(tb testing.TB, parties []*Party, ct *Ciphertext, active []int, from ...int) []*DecryptionShare {
	tb.Helper()
	if from == nil {
		from = active
	}
	var out []*DecryptionShare
	for _, i := range from {
		s, err := parties[i].decryptionShare(ct, active)
		if err != nil {
			tb.Fatalf("party %d DecryptionShare: %v", i, err)
		}
		out = append(out, viaWire(tb, s, &DecryptionShare{}))
	}
	return out
}

// maxAbsErr returns the largest |got[i] - want[i]|.
func maxAbsErr(got, want []float64) float64 {
	var m float64
	for i := range want {
		m = max(m, math.Abs(got[i]-want[i]))
	}
	return m
}
