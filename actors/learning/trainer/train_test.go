package trainer

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/model"
)

func load(t testing.TB, name string) (train, test *dataset.Set) {
	t.Helper()
	train, test, err := dataset.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return train, test
}

func mustInit(t testing.TB, spec Spec, data *dataset.Set) *model.Model {
	t.Helper()
	m, err := Init(spec, data.Features, data.Classes)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Centralized training on the whole train split, evaluated on the test
// split, with a fixed seed: each case asserts a floor a little under the
// reference accuracy of files/README.md and logs what it measured.
func TestCentralizedAccuracy(t *testing.T) {
	cases := []struct {
		dataset string
		spec    Spec
		floor   float64
	}{
		// Reference: softmax logistic regression 95.2%.
		{"optdigits", Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 50, BatchSize: 16}, 0.94},
		// Reference: MLP(64) 96.7%.
		{"optdigits", Spec{Kind: "mlp", Hidden: []int{64}, LearningRate: 0.03, Epochs: 20, BatchSize: 16, L2: 1e-4}, 0.955},
		// Reference: logistic regression 97-99%.
		{"wdbc", Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 10, BatchSize: 16, L2: 1e-4}, 0.95},
		// Reference: LR 91.3%.
		{"mnist", Spec{Kind: "logreg", LearningRate: 0.03, Epochs: 3, BatchSize: 32, L2: 1e-4}, 0.89},
		// Reference: MLP(128) 93.8%.
		{"mnist", Spec{Kind: "mlp", Hidden: []int{128}, LearningRate: 0.03, Epochs: 5, BatchSize: 32, L2: 1e-4}, 0.93},
		// Reference: LR one-hot 84.7%.
		{"adult", Spec{Kind: "logreg", LearningRate: 0.03, Epochs: 2, BatchSize: 64, L2: 1e-4}, 0.835},
		{"adult", Spec{Kind: "mlp", Hidden: []int{64}, LearningRate: 0.01, Epochs: 5, BatchSize: 64, L2: 1e-4}, 0.845},
	}
	for _, tc := range cases {
		t.Run(tc.dataset+"/"+tc.spec.Kind, func(t *testing.T) {
			train, test := load(t, tc.dataset)
			tc.spec.Seed = 1
			m, res, err := Train(context.Background(), tc.spec, mustInit(t, tc.spec, train), train)
			if err != nil {
				t.Fatal(err)
			}
			met, err := Evaluate(tc.spec, m, test)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s %v: %d epochs, train loss %.4f, test accuracy %.2f%% (loss %.4f)",
				tc.dataset, tc.spec.Kind, tc.spec.Hidden, tc.spec.Epochs, res.Loss, 100*met.Accuracy, met.Loss)
			if res.Samples != train.Rows() || met.Samples != test.Rows() {
				t.Fatalf("samples %d/%d, want %d/%d", res.Samples, met.Samples, train.Rows(), test.Rows())
			}
			if met.Accuracy < tc.floor {
				t.Fatalf("test accuracy %.4f below %.4f", met.Accuracy, tc.floor)
			}
		})
	}
}

func TestTrainLeavesInputAndIsDeterministic(t *testing.T) {
	train, _ := load(t, "wdbc")
	spec := Spec{Kind: "mlp", Hidden: []int{8, 4}, LearningRate: 0.05, Epochs: 2, BatchSize: 10, L2: 1e-3, Seed: 7}
	m := mustInit(t, spec, train)
	before := m.Clone()
	a, resA, err := Train(context.Background(), spec, m, train)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Tensors {
		if !slices.Equal(m.Tensors[i].Data, before.Tensors[i].Data) {
			t.Fatalf("Train modified its input tensor %q", m.Tensors[i].Name)
		}
	}
	b, resB, _ := Train(context.Background(), spec, m, train)
	for i := range a.Tensors {
		if !slices.Equal(a.Tensors[i].Data, b.Tensors[i].Data) {
			t.Fatalf("two runs with one seed differ in %q", a.Tensors[i].Name)
		}
	}
	if resA != resB {
		t.Fatalf("results differ: %+v, %+v", resA, resB)
	}
	spec.Seed = 8
	c, _, _ := Train(context.Background(), spec, m, train)
	if slices.Equal(a.Tensors[0].Data, c.Tensors[0].Data) {
		t.Fatal("another seed gave the same model")
	}
}

// cancelAfter is a context that reports itself cancelled from its n-th Err
// call on, so a test can cancel Train between two given batches.
type cancelAfter struct {
	context.Context
	n, calls int
}

func (c *cancelAfter) Err() error {
	if c.calls++; c.calls >= c.n {
		return context.Canceled
	}
	return nil
}

func TestTrainHonoursCancellation(t *testing.T) {
	train, _ := load(t, "optdigits")
	spec := Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 3, BatchSize: 100, Seed: 1}
	m := mustInit(t, spec, train)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Train(ctx, spec, m, train); !errors.Is(err, context.Canceled) {
		t.Fatalf("Train with a cancelled context = %v", err)
	}
	c := &cancelAfter{Context: context.Background(), n: 5}
	if _, _, err := Train(c, spec, m, train); !errors.Is(err, context.Canceled) {
		t.Fatalf("Train cancelled mid-epoch = %v", err)
	}
	if c.calls != 5 {
		t.Fatalf("Train checked the context %d times after it was done, want it to stop at once", c.calls-5)
	}
}

func TestTrainRefusals(t *testing.T) {
	train, _ := load(t, "wdbc")
	spec := Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 1, BatchSize: 16, Seed: 1}
	m := mustInit(t, spec, train)
	digits, _ := load(t, "optdigits")
	nan := m.Clone()
	nan.Tensors[1].Data[0] = float32(math.NaN())
	cases := []struct {
		name string
		spec Spec
		m    *model.Model
		data *dataset.Set
		want string
	}{
		{"invalid spec", Spec{Kind: "logreg"}, m, train, "learning rate"},
		{"model for other data", spec, m, digits, "layout mismatch"},
		{"model for other kind", Spec{Kind: "mlp", Hidden: []int{4}, LearningRate: 0.1, Epochs: 1, BatchSize: 4}, m, train, "layout mismatch"},
		{"nil model", spec, nil, train, "nil model"},
		{"nan in model", spec, nan, train, "NaN"},
		{"nil data", spec, m, nil, "nil set"},
		{"empty data", spec, m, &dataset.Set{Classes: 2, Features: 30}, "no samples"},
		{"diverging", Spec{Kind: "logreg", LearningRate: 1e38, Epochs: 3, BatchSize: 1}, m, train, "diverged"},
	}
	//lint:ignore SA1012 a nil context is the bad input under test
	if _, _, err := Train(nil, spec, m, train); err == nil {
		t.Fatal("Train with a nil context succeeded")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Train(context.Background(), tc.spec, tc.m, tc.data)
			if err == nil || got != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Train = %v, %v; want an error containing %q", got != nil, err, tc.want)
			}
			if tc.name != "diverging" {
				if _, err := Evaluate(tc.spec, tc.m, tc.data); err == nil {
					t.Fatal("Evaluate accepted what Train refused")
				}
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	s := &dataset.Set{X: []float32{1, -1, 2, 0}, Y: []int{1, 0, 0, 1}, Classes: 2, Features: 1, Name: "t"}
	spec := Spec{Kind: "logreg", LearningRate: 1, Epochs: 1, BatchSize: 1}
	m := &model.Model{Tensors: []model.Tensor{
		{Name: "dense0/weight", Shape: []int{1, 1}, Data: []float32{1}},
		{Name: "dense0/bias", Shape: []int{1}, Data: []float32{0}},
	}}
	met, err := Evaluate(spec, m, s)
	if err != nil {
		t.Fatal(err)
	}
	// Logits 1, -1, 2, 0: predictions 1, 0, 1, 0 against labels 1, 0, 0, 1.
	if met.Samples != 4 || met.Accuracy != 0.5 {
		t.Fatalf("Evaluate = %+v, want 4 samples at accuracy 0.5", met)
	}
	// Cross-entropy: softplus(-1), softplus(-1), softplus(2), softplus(0).
	want := (2*0.31326168751822286 + 2.1269280110429727 + 0.6931471805599453) / 4
	if math.Abs(met.Loss-want) > 1e-6 {
		t.Fatalf("loss %v, want %v", met.Loss, want)
	}
}
