package he

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// TestAggregateMatchesPlaintextFedAvg is the accuracy requirement: five
// sites, 100,000 values in [-1, 1] times FedAvg weights, decrypted by three
// of them with two offline, within 1e-4 of the plaintext weighted sum.
func TestAggregateMatchesPlaintextFedAvg(t *testing.T) {
	params := testParams(t)
	rng := rand.New(rand.NewPCG(1, 2))
	parties, pk := setup(t, params, 5, 3, testSeed(1))
	ups, weights := updates(rng, 5, 100_000)
	sum, cts := encryptAll(t, params, pk, ups, weights)
	active := []int{0, 2, 4} // sites 1 and 3 offline
	got, err := Combine(params, pk, sum, decryptionShares(t, parties, 1, cts, active))
	if err != nil {
		t.Fatalf("Combine: %v", err)
	}
	if len(got) != 100_000 {
		t.Fatalf("Combine returned %d values, want 100000", len(got))
	}
	maxErr := maxAbsErr(got, weightedSum(ups, weights))
	t.Logf("max abs error %.3g over %d values (5 sites, t = 3)", maxErr, len(got))
	if maxErr > 1e-4 {
		t.Fatalf("max abs error %g, want <= 1e-4", maxErr)
	}
}

// TestThresholds runs the whole protocol over several (n, t) and active
// sets: any t sites decrypt, whichever are offline.
func TestThresholds(t *testing.T) {
	params := testParams(t)
	tests := []struct {
		name   string
		n, t   int
		active []int
		length int
	}{
		{name: "5 sites t=3 two offline", n: 5, t: 3, active: []int{1, 3, 4}, length: 3 * Slots},
		{name: "5 sites t=4 one offline", n: 5, t: 4, active: []int{0, 1, 3, 4}, length: 5000},
		{name: "5 sites t=5 all online", n: 5, t: 5, active: []int{0, 1, 2, 3, 4}, length: 1},
		{name: "2 sites t=2", n: 2, t: 2, active: []int{0, 1}, length: Slots + 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			parties, pk := setup(t, params, tt.n, tt.t, testSeed(byte(10+i)))
			ups, weights := updates(rng, tt.n, tt.length)
			sum, cts := encryptAll(t, params, pk, ups, weights)
			if sum.Summands() != tt.n {
				t.Fatalf("sum of %d summands, want %d", sum.Summands(), tt.n)
			}
			got, err := Combine(params, pk, sum, decryptionShares(t, parties, 1, cts, tt.active))
			if err != nil {
				t.Fatalf("Combine: %v", err)
			}
			if e := maxAbsErr(got, weightedSum(ups, weights)); e > 1e-4 {
				t.Fatalf("max abs error %g, want <= 1e-4", e)
			}
		})
	}
}

// TestFewerThanThresholdFails shows both sides: Combine refuses t-1
// shares, and adding t-1 shares by hand gives garbage that the
// plausibility check refuses.
func TestFewerThanThresholdFails(t *testing.T) {
	params := testParams(t)
	rng := rand.New(rand.NewPCG(3, 4))
	parties, pk := setup(t, params, 5, 3, testSeed(2))
	ups, weights := updates(rng, 5, 2*Slots)
	sum, cts := encryptAll(t, params, pk, ups, weights)
	active := []int{0, 1, 2}
	shares := decryptionShares(t, parties, 1, cts, active, 0, 1) // party 2 never answers

	if _, err := Combine(params, pk, sum, shares); !errors.Is(err, ErrTooFewShares) {
		t.Fatalf("Combine with t-1 shares: %v, want ErrTooFewShares", err)
	}

	raw, err := combine(params, sum, shares)
	if err != nil {
		t.Fatalf("combine by hand: %v", err)
	}
	e := maxAbsErr(raw[:sum.Len()], weightedSum(ups, weights))
	t.Logf("t-1 shares summed by hand: max abs error %.3g", e)
	if e < 1000 {
		t.Fatalf("t-1 shares decrypt to within %g of the sum, want garbage", e)
	}
	if err := plausible(raw, sum); !errors.Is(err, ErrImplausible) {
		t.Fatalf("plausibility of t-1 shares' result: %v, want ErrImplausible", err)
	}
}

// TestOneSiteCannotDecryptAnother: a site's ciphertext carries no
// plaintext for another site, with that site's share of the secret used as
// a key, or with its decryption share alone.
func TestOneSiteCannotDecryptAnother(t *testing.T) {
	params := testParams(t)
	rng := rand.New(rand.NewPCG(5, 6))
	parties, pk := setup(t, params, 5, 3, testSeed(3))
	ups, weights := updates(rng, 1, Slots)
	_, cts := encryptAll(t, params, pk, ups, weights)
	victim := cts[0] // site 0's update
	want := weightedSum(ups, weights)

	t.Run("secret share as a key", func(t *testing.T) {
		sk := rlwe.NewSecretKey(params.ckks)
		copy(sk.Value.Q.Coeffs[0], parties[1].tsk)
		pt := rlwe.NewDecryptor(params.ckks, sk).DecryptNew(victim.chunk(0, params.meta))
		got := make([]float64, Slots)
		if err := ckks.NewEncoder(params.ckks).Decode(pt, got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if e := maxAbsErr(got, want); e < 1000 {
			t.Fatalf("site 1's secret share decrypts site 0's update to within %g", e)
		}
	})
	t.Run("one decryption share", func(t *testing.T) {
		shares := rawDecryptionShares(t, parties, victim, []int{1, 2, 3}, 1)
		if _, err := Combine(params, pk, victim, shares); !errors.Is(err, ErrTooFewShares) {
			t.Fatalf("Combine with site 1's share alone: %v, want ErrTooFewShares", err)
		}
		raw, err := combine(params, victim, shares)
		if err != nil {
			t.Fatalf("combine by hand: %v", err)
		}
		if e := maxAbsErr(raw[:victim.Len()], want); e < 1000 {
			t.Fatalf("site 1's decryption share alone decrypts site 0's update to within %g", e)
		}
	})
	t.Run("ciphertext coefficients", func(t *testing.T) {
		// A fresh encryption looks uniform mod Q: nothing of the encoded
		// values shows through (the mean of 8192 coefficients is 0.5 Q
		// give or take 0.0032 Q; the bound is six of those).
		var mean float64
		for _, v := range victim.coeffs {
			mean += float64(v) / float64(Q)
		}
		mean /= float64(len(victim.coeffs))
		if mean < 0.48 || mean > 0.52 {
			t.Fatalf("ciphertext coefficients average %.3f Q, want uniform (0.5 Q)", mean)
		}
		// Encryption is randomized: the same update encrypts to unrelated
		// ciphertexts.
		again, _ := encryptAll(t, params, pk, ups, weights)
		same := 0
		for i, v := range again.coeffs {
			if v == victim.coeffs[i] {
				same++
			}
		}
		if same > 2 {
			t.Fatalf("two encryptions of one update share %d coefficients", same)
		}
	})
}

// TestFloodingSigmaSizedForCKKS records why FloodSigma is 2^20 and not the
// 2^30 of Lattigo's BGV-minded examples: at this scale 2^30 misses 1e-4.
func TestFloodingSigmaSizedForCKKS(t *testing.T) {
	params := testParams(t)
	rng := rand.New(rand.NewPCG(9, 9))
	parties, pk := setup(t, params, 5, 3, testSeed(4))
	ups, weights := updates(rng, 5, Slots)
	sum, cts := encryptAll(t, params, pk, ups, weights)
	want := weightedSum(ups, weights)
	active := []int{0, 1, 2}

	big := 1 << 30
	for _, p := range parties {
		var err error
		p.cks, err = multiparty.NewKeySwitchProtocol(params.ckks, ring.DiscreteGaussian{Sigma: float64(big), Bound: 6 * float64(big)})
		if err != nil {
			t.Fatalf("key switch protocol: %v", err)
		}
	}
	raw, err := combine(params, sum, decryptionShares(t, parties, 1, cts, active))
	if err != nil {
		t.Fatalf("combine: %v", err)
	}
	e := maxAbsErr(raw, want)
	t.Logf("flooding sigma 2^30: max abs error %.3g", e)
	if e <= 1e-4 {
		t.Fatalf("sigma 2^30 gives max error %g; the test no longer shows why FloodSigma is 2^20", e)
	}
}
