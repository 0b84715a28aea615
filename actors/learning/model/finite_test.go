package model

import (
	"math"
	"testing"
)

// TestFirstNonFinite finds a NaN or an infinity wherever it is, across
// the spans it checks at once, and no other value: the largest finite
// values, subnormals and both zeros are finite.
func TestFirstNonFinite(t *testing.T) {
	xs := []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0, float32(math.Copysign(0, -1)), 1e-40}
	for len(xs) < 2*len(zeros)+100 {
		xs = append(xs, float32(len(xs))*1e30)
	}
	if i := FirstNonFinite(xs); i != -1 {
		t.Fatalf("finite values: FirstNonFinite = %d (%v)", i, xs[i])
	}
	if i := FirstNonFinite(nil); i != -1 {
		t.Fatalf("no values: %d", i)
	}
	for _, at := range []int{0, 5, len(zeros) - 1, len(zeros), 2*len(zeros) + 99} {
		for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			bad := append([]float32(nil), xs...)
			bad[at] = v
			bad[len(bad)-1] = float32(math.NaN()) // a later one does not count
			if at == len(bad)-1 {
				bad[at] = v
			}
			if i := FirstNonFinite(bad); i != at {
				t.Errorf("%v at %d: FirstNonFinite = %d", v, at, i)
			}
		}
	}
}
