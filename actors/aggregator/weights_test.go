package aggregator

import (
	"math"
	"testing"
)

func TestCappedWeights(t *testing.T) {
	cases := []struct {
		name      string
		committed map[string]int64
		maxShare  float64
		want      map[string]float64
	}{
		{"under the cap: counts as committed", map[string]int64{"a": 300, "b": 200, "c": 250}, 0.5,
			map[string]float64{"a": 300, "b": 200, "c": 250}},
		// a liar's 10^12 is lowered to 0.4 of the total: t = 0.4*(4*600)/(1-0.4) = 1600.
		{"a liar capped at half", map[string]int64{"liar": 1e12, "b": 600, "c": 600, "d": 600, "e": 600}, 0.5,
			map[string]float64{"liar": 2400, "b": 600, "c": 600, "d": 600, "e": 600}},
		{"a liar capped at the default share of 5 sites", map[string]int64{"liar": 1e12, "b": 600, "c": 600, "d": 600, "e": 600}, DefaultShareCap(5),
			map[string]float64{"liar": 1600, "b": 600, "c": 600, "d": 600, "e": 600}},
		// two large: t = 0.3*(100+100)/(1-2*0.3) = 150 (the second, 1000, is above a one-site cap of 0.3*1200/0.7 = 514).
		{"two sites over the cap", map[string]int64{"a": 5000, "b": 1000, "c": 100, "d": 100}, 0.3,
			map[string]float64{"a": 150, "b": 150, "c": 100, "d": 100}},
		{"a cap below a fair share: equal weights", map[string]int64{"a": 10, "b": 20, "c": 30}, 0.2,
			map[string]float64{"a": 1, "b": 1, "c": 1}},
		{"no cap", map[string]int64{"a": 9000, "b": 10}, 1,
			map[string]float64{"a": 9000, "b": 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CappedWeights(tc.committed, tc.maxShare)
			total := 0.0
			for s, w := range got {
				total += w
				if math.Abs(w-tc.want[s]) > 1e-9*tc.want[s] {
					t.Errorf("%s: weight %v, want %v", s, w, tc.want[s])
				}
			}
			share := tc.maxShare
			for s, w := range got {
				if w/total > max(share, 1/float64(len(got)))+1e-9 {
					t.Errorf("%s holds %.3f of the weight, cap %.3f", s, w/total, share)
				}
			}
		})
	}
}
