package filter_test

import (
	"math"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
)

// FLARE parity: the cases below were worked by hand from
// nvflare/app_common/filters/percentile_privacy.py (process_dxo) and
// numpy.percentile's linear interpolation, and agree with that code run
// under numpy 1.24.
func TestPercentilePrivacyFLAREParity(t *testing.T) {
	t.Run("steps, scalar, interpolated cutoff", func(t *testing.T) {
		// diff (global zero), steps 2: x = diff/2 is
		//   w: 0.1 -0.005 0.02 -0.03 0.001 0.04   b: -0.015 0   s: 0.25
		// |x| sorted: 0 .001 .005 .015 .02 .03 .04 .1 .25 (9 values, the
		// scalar's included); percentile 30: index 0.3*8 = 2.4, cutoff =
		// .005 + 0.4*(.015-.005) = .009. Zeroed: .001, -.005, 0 (3, the
		// zero counted). Clipped to gamma .05: 0.1 (1). Times 2:
		//   w: .1 0 .04 -.06 0 .08   b: -.03 0   s: 0.5 (unchanged)
		local := mdl(
			tensor("w", []int{2, 3}, 0.2, -0.01, 0.04, -0.06, 0.002, 0.08),
			tensor("b", []int{2}, -0.03, 0),
			tensor("s", nil, 0.5),
		)
		global := mdl(tensor("w", []int{2, 3}, 0, 0, 0, 0, 0, 0), tensor("b", []int{2}, 0, 0), tensor("s", nil, 0))
		f := build(t, filter.Percentile{Percentile: 30, Gamma: 0.05, Steps: 2})
		out, rep := apply(t, f, global, local)
		wantData(t, out, map[string][]float32{
			"w": {0.1, 0, 0.04, -0.06, 0, 0.08},
			"b": {-0.03, 0},
			"s": {0.5},
		})
		if math.Abs(rep.Cutoff-0.009) > 1e-9 || rep.Zeroed != 3 || rep.Clipped != 1 || rep.Values != 9 || rep.Privacy != nil {
			t.Errorf("report %+v: want cutoff 0.009, zeroed 3, clipped 1, values 9, no privacy claim", rep)
		}
	})
	t.Run("nonzero global, upper interpolation", func(t *testing.T) {
		// Dyadic values, so every step is exact. diff = .5 .0625 -.25
		// .0078125; percentile 50: index 1.5 between .0625 and .25, numpy's
		// _lerp for t >= 0.5: .25 - (.25-.0625)*0.5 = .15625. Zeroed:
		// .0625 and .0078125; clipped to .375: .5.
		global := mdl(tensor("v", []int{4}, 1, 2, -1, 0.5))
		local := mdl(tensor("v", []int{4}, 1.5, 2.0625, -1.25, 0.5078125))
		out, rep := apply(t, build(t, filter.Percentile{Percentile: 50, Gamma: 0.375, Steps: 1}), global, local)
		wantData(t, out, map[string][]float32{"v": {1.375, 2, -1.25, 0.5}})
		if rep.Cutoff != 0.15625 || rep.Zeroed != 2 || rep.Clipped != 1 {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		// percentile 10, gamma .01, global zero: |x| = .001 .. .009 and
		// .02; index 0.1*9 = 0.9: cutoff .001 + .9*(.002-.001) = .0019 (of
		// the float32 values: within 1e-9); .001 is zeroed, .02 clipped to
		// .01.
		local := mdl(tensor("v", []int{10}, 0.001, -0.002, 0.003, -0.004, 0.005, -0.006, 0.007, -0.008, 0.009, 0.02))
		out, rep := apply(t, build(t, filter.DefaultPercentile()), nil, local)
		wantData(t, out, map[string][]float32{"v": {0, -0.002, 0.003, -0.004, 0.005, -0.006, 0.007, -0.008, 0.009, 0.01}})
		if math.Abs(rep.Cutoff-0.0019) > 1e-9 || rep.Zeroed != 1 || rep.Clipped != 1 {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("percentile 100 and 0", func(t *testing.T) {
		local := mdl(tensor("v", []int{3}, 0.25, -0.5, 0.125))
		// 100: cutoff = max = .5; only -.5 survives (not strictly inside).
		out, _ := apply(t, build(t, filter.Percentile{Percentile: 100, Gamma: 1, Steps: 1}), nil, local)
		wantData(t, out, map[string][]float32{"v": {0, -0.5, 0}})
		// 0: cutoff = min = .125; nothing is strictly inside.
		out, _ = apply(t, build(t, filter.Percentile{Percentile: 0, Gamma: 1, Steps: 1}), nil, local)
		wantData(t, out, map[string][]float32{"v": {0.25, -0.5, 0.125}})
	})
}

func TestPercentilePrivacyEmptyModel(t *testing.T) {
	out, rep := apply(t, build(t, filter.DefaultPercentile()), nil, mdl())
	if len(out.Tensors) != 0 || rep.Values != 0 {
		t.Errorf("got %+v, %+v", out, rep)
	}
}
