package he

import (
	"math"
	"math/big"
	"math/bits"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
)

// heStandard128 is the HomomorphicEncryption.org standard's largest log Q
// for 128-bit classical security with uniform ternary secrets, by log N.
var heStandard128 = map[int]int{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881}

func TestParams(t *testing.T) {
	params := testParams(t)
	p := params.ckks
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "lattigo uses the pinned modulus", ok: len(p.Q()) == 1 && p.Q()[0] == Q && p.PCount() == 0},
		{name: "ring degree", ok: p.LogN() == LogN && p.N() == N && p.MaxSlots() == Slots},
		{name: "Q is prime", ok: new(big.Int).SetUint64(Q).ProbablyPrime(32)},
		{name: "Q = 1 mod 2N (NTT-friendly)", ok: Q%(2*N) == 1},
		{name: "Q has LogQ bits", ok: bits.Len64(Q) == LogQ},
		{name: "log Q within the HE standard's 128-bit bound", ok: int(math.Ceil(p.LogQP())) <= heStandard128[LogN]},
		{name: "uniform ternary secret", ok: p.Xs() == ring.Ternary{P: 2.0 / 3.0}},
		{name: "error sigma 3.2", ok: p.Xe() == rlwe.DefaultXe},
		{name: "scale 2^45", ok: p.DefaultScale().Float64() == math.Exp2(LogScale)},
		{name: "expansion at most 8x float32", ok: Expansion() <= 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Fatal("does not hold")
			}
		})
	}
}

// TestNoiseBudget checks the two margins the parameters are chosen for: no
// sum of MaxSummands values of at most MaxAbsValue wraps around Q, and
// decryption by MaxParties parties keeps 1e-4 with a wide margin.
func TestNoiseBudget(t *testing.T) {
	// Worst case of the encoding: every slot adds up in one coefficient,
	// which is then at most max|sum| * scale.
	worst := MaxSummands * MaxAbsValue * math.Exp2(LogScale)
	if half := float64(Q) / 2; worst*8 > half {
		t.Fatalf("largest sum's coefficient %.3g leaves less than 8x headroom below Q/2 = %.3g", worst, half)
	}
	// Flooding noise per decrypted value: t shares of sigma FloodSigma,
	// through the decoding (a sum of N/2 coefficients per real slot).
	sigma := math.Sqrt(MaxParties) * FloodSigma * math.Sqrt(N/2) / math.Exp2(LogScale)
	t.Logf("decryption noise per value at t = %d: %.3g (1e-4 is %.1f sigma)", MaxParties, sigma, 1e-4/sigma)
	if 1e-4/sigma < 8 {
		t.Fatalf("1e-4 is only %.1f standard deviations of the decryption noise", 1e-4/sigma)
	}
}
