package trainer

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// dpSeed is a fixed DP-SGD seed, so that the tests are repeatable.
var dpSeed = [32]byte{'h', 'e', 'a', 'r', 't', 'h'}

// withDP returns spec with DP-SGD at noise multiplier sigma and clipping
// norm c, seeded with dpSeed.
func withDP(spec Spec, sigma, c float64) Spec {
	seed := dpSeed
	spec.DP = &DPSpec{NoiseMultiplier: sigma, ClipNorm: c, Seed: &seed}
	return spec
}

// With almost no noise, DP-SGD (Poisson sampling, clipping) comes close to
// plain training with the same settings.
func TestDPSGDTinyNoiseApproachesPlain(t *testing.T) {
	train, test := load(t, "optdigits")
	plain := Spec{Kind: "mlp", Hidden: []int{64}, LearningRate: 0.03, Epochs: 20, BatchSize: 16, L2: 1e-4, Seed: 1}
	private := withDP(plain, 1e-3, 5)
	acc := func(spec Spec) (float64, Result) {
		t.Helper()
		m, res, err := Train(context.Background(), spec, mustInit(t, spec, train), train)
		if err != nil {
			t.Fatal(err)
		}
		met, err := Evaluate(spec, m, test)
		if err != nil {
			t.Fatal(err)
		}
		return met.Accuracy, res
	}
	a, _ := acc(plain)
	b, res := acc(private)
	t.Logf("optdigits mlp[64], 20 epochs: plain %.2f%%, DP-SGD σ=1e-3 C=5 %.2f%% (%+v)", 100*a, 100*b, *res.DP)
	if b < a-0.02 {
		t.Fatalf("DP-SGD with a tiny noise multiplier: %.4f, more than 2 points under plain training's %.4f", b, a)
	}
}

// gradientOf is sample i's own gradient of the loss (no L2 term), over all
// parameters in the model's order, got from plain training: one step of
// batch 1 at learning rate 1 from zero momentum moves the parameters by
// exactly minus the gradient.
func gradientOf(t *testing.T, spec Spec, m *model.Model, data *dataset.Set, i int) []float64 {
	t.Helper()
	one := &dataset.Set{X: slices.Clone(data.Row(i)), Y: []int{data.Y[i]}, Classes: data.Classes, Features: data.Features, Name: "one"}
	s := spec
	s.DP, s.LearningRate, s.BatchSize, s.Epochs, s.L2 = nil, 1, 1, 1, 0
	after, _, err := Train(context.Background(), s, m, one)
	if err != nil {
		t.Fatal(err)
	}
	return delta(m, after, -1)
}

// delta is scale·(b - a), over all parameters in order.
func delta(a, b *model.Model, scale float64) []float64 {
	var d []float64
	for k := range a.Tensors {
		for j := range a.Tensors[k].Data {
			d = append(d, scale*(float64(b.Tensors[k].Data[j])-float64(a.Tensors[k].Data[j])))
		}
	}
	return d
}

func l2(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// DP-SGD clips each sample's gradient, over all parameters together, to
// the clipping norm: one step of DP-SGD over a batch holding every sample
// (q = 1), with negligible noise, equals the mean of the samples'
// gradients each clipped on its own, computed here from plain training on
// one sample at a time. An outlier whose gradient is thousands of times
// the clipping norm then moves the model by at most lr·C/N more than an
// ordinary sample in its place would, where plain training lets it move
// the model by far more.
func TestDPSGDClipsPerSample(t *testing.T) {
	digits, _ := load(t, "optdigits")
	const rows, lr, c = 12, 0.5, 1.0
	data := &dataset.Set{X: slices.Clone(digits.X[:rows*digits.Features]), Y: slices.Clone(digits.Y[:rows]), Classes: digits.Classes, Features: digits.Features, Name: "twelve"}
	outlier := &dataset.Set{X: slices.Clone(data.X), Y: slices.Clone(data.Y), Classes: data.Classes, Features: data.Features, Name: "outlier"}
	for j := range outlier.Row(3) {
		outlier.Row(3)[j] = 1000 * float32(j%7-3)
	}
	outlier.Y[3] = (data.Y[3] + 5) % data.Classes
	for _, kind := range []Spec{
		{Kind: "logreg"},
		{Kind: "mlp", Hidden: []int{16, 8}},
	} {
		t.Run(kind.Kind, func(t *testing.T) {
			spec := kind
			spec.LearningRate, spec.Epochs, spec.BatchSize, spec.Seed = lr, 1, rows, 3 // q = 1: one step over every sample
			m := mustInit(t, spec, data)
			private := withDP(spec, dp.MinNoiseMultiplier, c)
			step := func(s Spec, d *dataset.Set) []float64 {
				t.Helper()
				after, res, err := Train(context.Background(), s, m, d)
				if err != nil {
					t.Fatal(err)
				}
				if s.DP != nil && (res.DP.SamplingRate != 1 || res.DP.Steps != 1) {
					t.Fatalf("mechanism %+v, want q = 1 and one step", *res.DP)
				}
				return delta(m, after, 1)
			}

			// The reference: mean of per-sample clipped gradients, one step of lr.
			want := make([]float64, m.NumParams())
			norms := make([]float64, rows)
			for i := range rows {
				g := gradientOf(t, spec, m, outlier, i)
				norms[i] = l2(g)
				f := min(1, c/norms[i])
				for j := range want {
					want[j] -= lr * f * g[j] / rows
				}
			}
			if norms[3] < 100*c {
				t.Fatalf("the outlier's gradient norm is only %v", norms[3])
			}
			got := step(private, outlier)
			diff := make([]float64, len(got))
			for j := range got {
				diff[j] = got[j] - want[j]
			}
			t.Logf("per-sample gradient norms %.3g; DP-SGD step off the clipped reference by %.2g (step norm %.3g)", norms, l2(diff), l2(got))
			if l2(diff) > 1e-4*l2(want) {
				t.Fatalf("DP-SGD's step is %.3g away from the mean of per-sample clipped gradients (norm %.3g)", l2(diff), l2(want))
			}

			// The outlier against an ordinary sample in its place.
			plainMove, privateMove := l2(sub(step(spec, outlier), step(spec, data))), l2(sub(got, step(private, data)))
			bound := 2 * lr * c / rows * (1 + 1e-4)
			t.Logf("outlier in place of sample 3: plain SGD step moves by %.3g more, DP-SGD by %.3g (bound 2·lr·C/N = %.3g)", plainMove, privateMove, bound)
			if privateMove > bound {
				t.Fatalf("the outlier moved DP-SGD's step by %v, more than 2·lr·C/N = %v", privateMove, bound)
			}
			if plainMove < 100*bound {
				t.Fatalf("the outlier moves plain SGD by only %v: the test shows nothing", plainMove)
			}
		})
	}

	// One sample alone: the step is at most lr·C, however large its gradient.
	one := &dataset.Set{X: slices.Clone(outlier.Row(3)), Y: []int{outlier.Y[3]}, Classes: data.Classes, Features: data.Features, Name: "one"}
	spec := withDP(Spec{Kind: "mlp", Hidden: []int{16}, LearningRate: lr, Epochs: 1, BatchSize: 1, Seed: 2}, dp.MinNoiseMultiplier, c)
	m := mustInit(t, spec, one)
	after := mustTrain(t, spec, m, one)
	if move := l2(delta(m, after, 1)); move > lr*c*(1+1e-4) {
		t.Fatalf("one sample moved the model by %v, more than lr·C = %v", move, lr*c)
	}
}

func sub(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for j := range a {
		d[j] = a[j] - b[j]
	}
	return d
}

func mustTrain(t *testing.T, spec Spec, m *model.Model, data *dataset.Set) *model.Model {
	t.Helper()
	out, _, err := Train(context.Background(), spec, m, data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The result names the mechanism run, which DPMechanism predicts: q =
// BatchSize/N (1 once the batch covers the data), Epochs·ceil(N/BatchSize)
// steps, and the spec's noise multiplier; plain training names none.
func TestDPSGDReportsMechanism(t *testing.T) {
	train, _ := load(t, "wdbc") // 456 samples
	cases := []struct {
		name   string
		batch  int
		epochs int
		q      float64
		steps  int64
	}{
		{"batch 16", 16, 3, 16.0 / 456, 3 * 29},
		{"batch divides", 24, 2, 24.0 / 456, 2 * 19},
		{"batch of all", 456, 4, 1, 4},
		{"batch above all", 1000, 2, 1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := withDP(Spec{Kind: "logreg", LearningRate: 0.1, Epochs: tc.epochs, BatchSize: tc.batch, Seed: 1}, 1.3, 1)
			_, res, err := Train(context.Background(), spec, mustInit(t, spec, train), train)
			if err != nil {
				t.Fatal(err)
			}
			want := dp.Mechanism{SamplingRate: tc.q, NoiseMultiplier: 1.3, Steps: tc.steps}
			if res.DP == nil || *res.DP != want || res.Samples != 456 {
				t.Fatalf("result %+v (DP %v), want %+v", res, res.DP, want)
			}
			if pre, err := DPMechanism(spec, train.Rows()); err != nil || pre != want {
				t.Fatalf("DPMechanism = %+v, %v", pre, err)
			}
		})
	}
	plain := Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 1, BatchSize: 16, Seed: 1}
	if _, res, _ := Train(context.Background(), plain, mustInit(t, plain, train), train); res.DP != nil {
		t.Fatalf("plain training reported a mechanism %+v", *res.DP)
	}
	if _, err := DPMechanism(plain, 10); !errors.Is(err, ErrSpec) {
		t.Fatalf("DPMechanism without dp: %v", err)
	}
}

// The sampling and the noise are secret: two runs of one spec differ
// unless the (test-only) DP seed is fixed, and Spec.Seed, which the job
// manifest makes public, does not decide them.
func TestDPSGDRandomnessIsSecret(t *testing.T) {
	train, _ := load(t, "wdbc")
	spec := Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 1, BatchSize: 16, Seed: 1, DP: &DPSpec{NoiseMultiplier: 1, ClipNorm: 1}}
	m := mustInit(t, spec, train)
	a, b := mustTrain(t, spec, m, train), mustTrain(t, spec, m, train)
	if slices.Equal(a.Tensors[0].Data, b.Tensors[0].Data) {
		t.Fatal("two DP-SGD runs of one spec gave the same model: the randomness is not secret")
	}
	seeded := withDP(spec, 1, 1)
	c, d := mustTrain(t, seeded, m, train), mustTrain(t, seeded, m, train)
	if !slices.Equal(c.Tensors[0].Data, d.Tensors[0].Data) {
		t.Fatal("two runs with one DP seed differ")
	}
	other := seeded
	other.Seed = 99
	if e := mustTrain(t, other, m, train); !slices.Equal(c.Tensors[0].Data, e.Tensors[0].Data) {
		t.Fatal("Spec.Seed changed DP-SGD's sampling or noise")
	}
}

func TestDPSGDHonoursCancellation(t *testing.T) {
	train, _ := load(t, "optdigits")
	spec := withDP(Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 3, BatchSize: 100, Seed: 1}, 1, 1)
	m := mustInit(t, spec, train)
	c := &cancelAfter{Context: context.Background(), n: 5}
	if _, _, err := Train(c, spec, m, train); !errors.Is(err, context.Canceled) || c.calls != 5 {
		t.Fatalf("Train cancelled mid-epoch = %v after %d checks", err, c.calls)
	}
}

func TestDPSpecValidate(t *testing.T) {
	base := Spec{Kind: "mlp", Hidden: []int{8}, LearningRate: 0.1, Epochs: 1, BatchSize: 8}
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"valid", withDP(base, 1.1, 1), ""},
		{"smallest noise", withDP(base, dp.MinNoiseMultiplier, 1), ""},
		{"zero noise", withDP(base, 0, 1), "noise multiplier"},
		{"negative noise", withDP(base, -1, 1), "noise multiplier"},
		{"NaN noise", withDP(base, math.NaN(), 1), "noise multiplier"},
		{"infinite noise", withDP(base, math.Inf(1), 1), "noise multiplier"},
		{"zero clip", withDP(base, 1, 0), "clip norm"},
		{"negative clip", withDP(base, 1, -1), "clip norm"},
		{"NaN clip", withDP(base, 1, math.NaN()), "clip norm"},
		{"huge clip", withDP(base, 1, 1e300), "clip norm"},
		{"noop", withDP(Spec{Kind: KindNoop, Params: 4, LearningRate: 0.1, Epochs: 1, BatchSize: 8}, 1, 1), "no dp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an ErrSpec containing %q", err, tc.want)
			}
		})
	}
}
