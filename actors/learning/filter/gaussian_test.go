package filter_test

import (
	"math"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/filter"
)

func TestGaussianPrivacyClipping(t *testing.T) {
	global := mdl(tensor("a", []int{1}, 1), tensor("b", []int{1}, -1))
	tests := []struct {
		name    string
		local   []float32
		clipped bool
		norm    float64
		want    []float64 // the diff sent, before the (negligible) noise
	}{
		// diff (3, 4): norm 5, clipped to C = 1 as one vector: (0.6, 0.8),
		// scaled by 1/(1+1e-6) for float32 rounding's margin.
		{"clipped across tensors", []float32{4, 3}, true, 5, []float64{0.6 / (1 + 1e-6), 0.8 / (1 + 1e-6)}},
		// diff (0.3, -0.4): norm 0.5 is within C.
		{"within the norm", []float32{1.3, -1.4}, false, 0.5, []float64{0.3, -0.4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := mdl(tensor("a", []int{1}, tt.local[0]), tensor("b", []int{1}, tt.local[1]))
			cfg := filter.Gaussian{NoiseMultiplier: dp.MinNoiseMultiplier, ClipNorm: 1}
			out, rep := apply(t, build(t, cfg), global, local)
			got := diffOf(out, global)
			for k := range tt.want {
				if math.Abs(got[k]-tt.want[k]) > 1e-5 { // noise std 1e-6
					t.Errorf("diff[%d] = %v, want %v", k, got[k], tt.want[k])
				}
			}
			if math.Abs(rep.Norm-tt.norm) > 1e-6 || rep.NormClipped != tt.clipped || rep.ClipNorm != 1 || rep.NoiseStd != dp.MinNoiseMultiplier {
				t.Errorf("report %+v", rep)
			}
			m := rep.Privacy.Mechanism
			if rep.Privacy.Accountant != filter.AccountantRDP || m == nil || *m != (dp.Mechanism{SamplingRate: 1, NoiseMultiplier: dp.MinNoiseMultiplier, Steps: 1}) {
				t.Errorf("privacy %+v", rep.Privacy)
			}
		})
	}
}

// With a seed the noise is exactly dp.Source's, tensor by tensor in the
// model's order, on the clipped diff rounded to float32.
func TestGaussianPrivacyNoiseIsDPSources(t *testing.T) {
	global := mdl(tensor("a", []int{2}, 1, 2), tensor("b", []int{3}, 0, 0, 0))
	local := mdl(tensor("a", []int{2}, 4, 2), tensor("b", []int{3}, 0, 4, 0)) // diff norm 5
	cfg := filter.Gaussian{NoiseMultiplier: 1.1, ClipNorm: 2}
	out, _ := apply(t, build(t, cfg), global, local)
	f := 2 / (5 * (1 + 1e-6))
	a := []float32{float32(3 * f), 0}
	b := []float32{0, float32(4 * f), 0}
	src := dp.NewSeededSource(seed)
	if err := src.AddGaussian(a, 2.2); err != nil {
		t.Fatal(err)
	}
	if err := src.AddGaussian(b, 2.2); err != nil {
		t.Fatal(err)
	}
	wantData(t, out, map[string][]float32{
		"a": {float32(1 + float64(a[0])), float32(2 + float64(a[1]))},
		"b": {b[0], b[1], b[2]},
	})
}

func TestGaussianPrivacyNoiseStd(t *testing.T) {
	const n = 100000
	local := mdl(tensor("w", []int{n}, make([]float32, n)...))
	out, _ := apply(t, build(t, filter.Gaussian{NoiseMultiplier: 2, ClipNorm: 0.5}), nil, local)
	var sum, sq float64
	for _, v := range out.Tensors[0].Data {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean := sum / n
	if std := math.Sqrt(sq/n - mean*mean); math.Abs(std-1) > 0.02 || math.Abs(mean) > 0.02 {
		t.Errorf("noise mean %v std %v, want 0 and sigma*C = 1", mean, std)
	}
}

// What is computed from the unfiltered update, and protected by no noise,
// does not leave the site: Shareable drops it and keeps the rest.
func TestReportShareable(t *testing.T) {
	global := mdl(tensor("a", []int{2}, 0, 0))
	local := mdl(tensor("a", []int{2}, 3, 4))
	_, g := apply(t, build(t, filter.Gaussian{NoiseMultiplier: 1, ClipNorm: 1}), global, local)
	_, p := apply(t, build(t, filter.DefaultPercentile()), global, local)
	_, q := apply(t, build(t, filter.Quantize{Codec: "int8-block64"}), global, local)
	_, s := apply(t, build(t, filter.SVT{Fraction: 1, Epsilon: 1, NoiseVar: 1, Gamma: 1, Tau: 0, Steps: 1}), global, local)
	if g.Norm != 5 || !g.NormClipped || p.Cutoff == 0 || s.Clipped == 0 || q.Effect.MaxAbsError == 0 || s.Passes == 0 {
		t.Fatalf("the site's reports lack their site-only fields: %+v %+v %+v %+v", g, p, q.Effect, s)
	}
	gs, ps, qs, ss := g.Shareable(), p.Shareable(), q.Shareable(), s.Shareable()
	if gs.Norm != 0 || gs.NormClipped || ps.Cutoff != 0 || ss.Clipped != 0 || qs.Effect.MaxAbsError != 0 || qs.Effect.RelL2Error != 0 || ss.Passes != 0 {
		t.Errorf("shareable reports keep site-only fields: %+v %+v %+v %+v", gs, ps, qs.Effect, ss)
	}
	if q.Effect.MaxAbsError == 0 {
		t.Error("Shareable changed the site's own report")
	}
	if gs.ClipNorm != 1 || gs.NoiseStd != 1 || gs.Privacy == nil || qs.Effect.Bytes != q.Effect.Bytes || ss.Privacy.Epsilon != s.Privacy.Epsilon {
		t.Errorf("shareable reports lost public fields: %+v %+v", gs, qs.Effect)
	}
}
