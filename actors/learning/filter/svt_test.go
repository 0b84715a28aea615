package filter_test

import (
	"errors"
	"math"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// diffOf is out - global per value, flattened.
func diffOf(out, global *model.Model) []float64 {
	var d []float64
	for i, t := range out.Tensors {
		for j, v := range t.Data {
			g := 0.0
			if global != nil {
				g = float64(global.Tensors[i].Data[j])
			}
			d = append(d, float64(v)-g)
		}
	}
	return d
}

// With budgets so large that every noise scale is below 1e-11, SVT is
// deterministic and its algorithm can be read off the output: the values
// whose clipped |x| is at least tau are accepted, the c released are
// clipped to gamma and multiplied back by steps, the rest are zero.
func TestSVTPrivacyNoiseless(t *testing.T) {
	const huge = 1e12
	global := mdl(tensor("w", []int{2, 2}, 1, 2, 3, 4))
	tests := []struct {
		name  string
		steps int
		diff  []float32
		want  []float64
	}{
		// x = .5 .01 -.3 .001; tau .1 accepts .5 (clipped to .4) and -.3.
		{"one step", 1, []float32{0.5, 0.01, -0.3, 0.001}, []float64{0.4, 0, -0.3, 0}},
		// The same x from twice the diff over two steps; the diff sent is
		// twice the clipped x.
		{"two steps", 2, []float32{1, 0.02, -0.6, 0.002}, []float64{0.8, 0, -0.6, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := mdl(tensor("w", []int{2, 2}, 1+tt.diff[0], 2+tt.diff[1], 3+tt.diff[2], 4+tt.diff[3]))
			cfg := filter.SVT{Fraction: 0.5, Epsilon: huge, NoiseVar: huge, Gamma: 0.4, Tau: 0.1, Replace: false, Steps: tt.steps}
			out, rep := apply(t, build(t, cfg), global, local)
			got := diffOf(out, global)
			for k := range tt.want {
				// The diff of the float32 inputs, not the decimal
				// literal, was clipped or kept: within float32 rounding.
				if math.Abs(got[k]-tt.want[k]) > 1e-6 {
					t.Errorf("diff[%d] = %v, want %v", k, got[k], tt.want[k])
				}
			}
			if rep.Uploaded != 2 || rep.Released != 2 || rep.Passes != 1 || rep.Clipped != 1 || rep.Zeroed != 2 || rep.Values != 4 {
				t.Errorf("report %+v", rep)
			}
			// The accounting: c = 2, (2c)^(2/3) = 4^(2/3).
			epsT := huge / (1 + math.Pow(4, 2.0/3.0))
			p := rep.Privacy
			if p == nil || p.Accountant != filter.AccountantPureSum || p.Delta != 0 ||
				p.EpsilonThreshold != epsT || p.EpsilonQuery != huge-epsT || p.EpsilonRelease != 2*huge ||
				p.Epsilon != epsT+(huge-epsT)+2*huge {
				t.Errorf("privacy %+v", p)
			}
		})
	}
}

// FLARE's defaults on 10,000 values: c = 1,000 accepted, then 1,000 draws
// with replacement among them (about 1-1/e of them distinct); ε is FLARE's
// pure sum, the release budget c*noise_var = 100 dominating.
func TestSVTPrivacyDefaultsAccounting(t *testing.T) {
	global, local := ramp(10000)
	out, rep := apply(t, build(t, filter.DefaultSVT()), global, local)
	const c = 1000
	if rep.Uploaded != c || rep.Released < 580 || rep.Released > 680 || rep.Zeroed != 10000-rep.Released || rep.Passes != 1 {
		t.Fatalf("report %+v", rep)
	}
	nonzero := 0
	for _, d := range diffOf(out, global) {
		if d != 0 {
			nonzero++
		}
	}
	if nonzero != rep.Released {
		t.Errorf("%d values changed, report says %d released", nonzero, rep.Released)
	}
	epsT := 0.1 / (1 + math.Pow(2*c, 2.0/3.0))
	p := rep.Privacy
	if p.EpsilonThreshold != epsT || p.EpsilonQuery != 0.1-epsT || p.EpsilonRelease != 100 || p.Epsilon != epsT+(0.1-epsT)+100 || p.Delta != 0 {
		t.Errorf("privacy %+v", p)
	}
	if rep.NoiseStd != 2*1e-5/0.1 {
		t.Errorf("release scale %v, want 2*gamma/noise_var = 2e-4", rep.NoiseStd)
	}
}

// SVT halts at the c-th value accepted, and the values are asked in a
// random order: when every value would cross, the c released are spread
// over the model rather than its first c.
func TestSVTPrivacyHaltsAtC(t *testing.T) {
	const n = 1000
	data := make([]float32, n)
	for i := range data {
		data[i] = 0.5
	}
	local := mdl(tensor("w", []int{n}, data...))
	cfg := filter.SVT{Fraction: 0.01, Epsilon: 1e12, NoiseVar: 1e12, Gamma: 1, Tau: 0.1, Replace: false, Steps: 1}
	out, rep := apply(t, build(t, cfg), nil, local)
	if rep.Uploaded != 10 || rep.Released != 10 || rep.Passes != 1 || rep.Zeroed != n-10 {
		t.Fatalf("report %+v", rep)
	}
	last := 0
	for k, v := range out.Tensors[0].Data {
		if v != 0 {
			last = k
		}
	}
	if last < 100 {
		t.Errorf("the released values all lie in the model's first %d", last+1)
	}
}

// The release noise is Laplace of scale 2*gamma/noise_var: on 20,000
// zero diffs all released, the mean |noise| is that scale.
func TestSVTPrivacyReleaseNoiseScale(t *testing.T) {
	const n = 20000
	local := mdl(tensor("w", []int{n}, make([]float32, n)...))
	cfg := filter.SVT{Fraction: 1, Epsilon: 1e12, NoiseVar: 2, Gamma: 1e-3, Tau: 0, Replace: false, Steps: 1}
	out, rep := apply(t, build(t, cfg), nil, local)
	var sum float64
	for _, v := range out.Tensors[0].Data {
		sum += math.Abs(float64(v))
	}
	b := 2 * cfg.Gamma / cfg.NoiseVar
	if mean := sum / n; math.Abs(mean/b-1) > 0.03 {
		t.Errorf("mean |noise| %v, want the scale %v within 3%%", mean, b)
	}
	if rep.Released != n || rep.NoiseStd != b {
		t.Errorf("report %+v", rep)
	}
}

// Sampling with replacement releases each drawn value once.
func TestSVTPrivacyReplace(t *testing.T) {
	const n = 1000
	data := make([]float32, n)
	for i := range data {
		data[i] = 0.5
	}
	local := mdl(tensor("w", []int{n}, data...))
	cfg := filter.SVT{Fraction: 1, Epsilon: 1e12, NoiseVar: 1e12, Gamma: 0.25, Tau: 0.1, Replace: true, Steps: 1}
	out, rep := apply(t, build(t, cfg), nil, local)
	released := 0
	for _, v := range out.Tensors[0].Data {
		switch {
		case v == 0:
		case math.Abs(float64(v)-0.25) < 1e-9:
			released++
		default:
			t.Fatalf("value %v: neither withheld nor clipped to gamma", v)
		}
	}
	// n draws with replacement from n hit about 1-1/e of them.
	if released != rep.Released || released < 580 || released > 680 || rep.Clipped != released {
		t.Errorf("released %d, report %+v", released, rep)
	}
}

func TestSVTPrivacySeeded(t *testing.T) {
	global, local := ramp(2000)
	a, _ := apply(t, build(t, filter.DefaultSVT()), global, local)
	b, _ := apply(t, build(t, filter.DefaultSVT()), global, local)
	if !equalBits(a, b) {
		t.Error("the same seed gave different outputs")
	}
	f, err := filter.New(filter.DefaultSVT()) // seeded from crypto/rand
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := apply(t, f, global, local); equalBits(a, c) {
		t.Error("a filter seeded from crypto/rand drew the test seed's values")
	}
}

// A tau far above the query noise never gets enough values across: the
// passes are bounded.
func TestSVTPrivacyNoProgress(t *testing.T) {
	local := mdl(tensor("w", []int{4}, 0.001, 0.002, 0.003, 0.004))
	cfg := filter.SVT{Fraction: 0.5, Epsilon: 1e9, NoiseVar: 1, Gamma: 0.01, Tau: 1, Replace: true, Steps: 1}
	_, rep, err := build(t, cfg).Apply(nil, local)
	if !errors.Is(err, filter.ErrNoProgress) || rep.Passes != filter.MaxSVTPasses {
		t.Fatalf("err %v, passes %d; want ErrNoProgress after %d", err, rep.Passes, filter.MaxSVTPasses)
	}
}
