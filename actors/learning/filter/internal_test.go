package filter

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// percentileLinear against sorting, on inputs that stress quickselect:
// duplicates, sorted runs, a single value.
func TestPercentileLinearMatchesSorting(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := map[string][]float64{"one": {3}, "two": {2, 1}}
	for _, n := range []int{17, 100, 1001} {
		rnd, dup, asc := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range n {
			rnd[i] = r.Float64()
			dup[i] = float64(r.IntN(4))
			asc[i] = float64(i)
		}
		inputs["random"+strconv.Itoa(n)], inputs["dups"+strconv.Itoa(n)], inputs["sorted"+strconv.Itoa(n)] = rnd, dup, asc
	}
	for name, in := range inputs {
		for _, q := range []float64{0, 1, 10, 25, 33.3, 50, 90, 99.9, 100} {
			sorted := slices.Sorted(slices.Values(in))
			v := float64(len(in)-1) * (q / 100)
			lo := int(v)
			want := sorted[lo]
			if lo+1 < len(sorted) {
				tt := v - float64(lo)
				if d := sorted[lo+1] - sorted[lo]; tt >= 0.5 {
					want = sorted[lo+1] - d*(1-tt)
				} else {
					want = sorted[lo] + d*tt
				}
			}
			if got := percentileLinear(slices.Clone(in), q); got != want {
				t.Errorf("%s q=%v: got %v, want %v", name, q, got, want)
			}
		}
	}
}
