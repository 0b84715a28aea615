package trainer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/model"
)

func TestInitLayout(t *testing.T) {
	cases := []struct {
		name              string
		spec              Spec
		features, classes int
		shapes            [][]int
	}{
		{"binary logreg", Spec{Kind: "logreg"}, 30, 2, [][]int{{30, 1}, {1}}},
		{"softmax logreg", Spec{Kind: "logreg"}, 64, 10, [][]int{{64, 10}, {10}}},
		{"mlp", Spec{Kind: "mlp", Hidden: []int{128, 64}}, 784, 10, [][]int{{784, 128}, {128}, {128, 64}, {64}, {64, 10}, {10}}},
		{"binary mlp", Spec{Kind: "mlp", Hidden: []int{8}}, 5, 2, [][]int{{5, 8}, {8}, {8, 1}, {1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.LearningRate, spec.Epochs, spec.BatchSize, spec.Seed = 0.1, 1, 1, 5
			m, err := Init(spec, tc.features, tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(m.Tensors) != len(tc.shapes) {
				t.Fatalf("%d tensors, want %d", len(m.Tensors), len(tc.shapes))
			}
			for i, tensor := range m.Tensors {
				want := weightName(i / 2)
				if i%2 == 1 {
					want = biasName(i / 2)
				}
				if tensor.Name != want || !slices.Equal(tensor.Shape, tc.shapes[i]) {
					t.Fatalf("tensor %d is %q %v, want %q %v", i, tensor.Name, tensor.Shape, want, tc.shapes[i])
				}
			}
			again, _ := Init(spec, tc.features, tc.classes)
			if again.SameLayout(m) != nil || !slices.Equal(again.Tensors[0].Data, m.Tensors[0].Data) {
				t.Fatal("Init is not deterministic")
			}
			if spec.Kind == "mlp" {
				spec.Seed++
				other, _ := Init(spec, tc.features, tc.classes)
				if slices.Equal(other.Tensors[0].Data, m.Tensors[0].Data) {
					t.Fatal("another seed gave the same weights")
				}
			}
		})
	}
	if _, err := Init(Spec{Kind: "logreg", LearningRate: 1, Epochs: 1, BatchSize: 1}, 3, 1); err == nil {
		t.Fatal("Init for one class succeeded")
	}
	if _, err := Init(Spec{Kind: "logreg", LearningRate: 1, Epochs: 1, BatchSize: 1}, 1<<40, 1<<40); err == nil {
		t.Fatal("Init for absurd data succeeded")
	}
	if _, err := Init(Spec{Kind: "nope"}, 3, 2); err == nil {
		t.Fatal("Init with an invalid spec succeeded")
	}
}

// The analytic gradients of backward match central finite differences of
// the loss, for each output kind and depth.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	cases := []struct {
		name    string
		spec    Spec
		classes int
	}{
		{"sigmoid logreg", Spec{Kind: "logreg"}, 2},
		{"softmax logreg", Spec{Kind: "logreg"}, 4},
		{"mlp one layer", Spec{Kind: "mlp", Hidden: []int{5}}, 3},
		{"mlp two layers", Spec{Kind: "mlp", Hidden: []int{6, 4}}, 3},
		{"binary mlp", Spec{Kind: "mlp", Hidden: []int{5}}, 2},
	}
	const features, rows = 4, 7
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, rows*features)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := make([]int, rows)
			for i := range y {
				y[i] = r.IntN(tc.classes)
			}
			spec := tc.spec
			spec.LearningRate, spec.Epochs, spec.BatchSize, spec.Seed = 0.1, 1, rows, 9
			m, err := Init(spec, features, tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			for i := range m.Tensors {
				for j := range m.Tensors[i].Data {
					m.Tensors[i].Data[j] = float32(r.NormFloat64() * 0.5)
				}
			}
			net, err := bind(spec, m, features, tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			buf := net.newBuffers(rows)
			loss := func() float64 {
				logits := net.forward(x, rows, buf)
				l, _ := net.lossGrad(logits, y, make([]float32, len(logits)), 1/float32(rows))
				return l / rows
			}
			logits := net.forward(x, rows, buf)
			net.lossGrad(logits, y, buf.grad[len(net.layers)-1], 1/float32(rows))
			opt := newSGD(net, spec)
			net.backward(x, rows, buf, opt.gw, opt.gb)
			check := func(name string, p, grad []float32) {
				for j := range p {
					const h = 1e-3
					orig := p[j]
					p[j] = orig + h
					up := loss()
					p[j] = orig - h
					down := loss()
					p[j] = orig
					numeric := (up - down) / (2 * h)
					if math.Abs(numeric-float64(grad[j])) > 2e-3+2e-2*math.Abs(numeric) {
						t.Errorf("%s[%d]: analytic %v, numeric %v", name, j, grad[j], numeric)
					}
				}
			}
			for i, l := range net.layers {
				check(weightName(i), l.w, opt.gw[i])
				check(biasName(i), l.b, opt.gb[i])
			}
		})
	}
}

func TestBindRefusesWrongLayout(t *testing.T) {
	spec := Spec{Kind: "mlp", Hidden: []int{8}, LearningRate: 0.1, Epochs: 1, BatchSize: 4}
	m, err := Init(spec, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		spec              Spec
		features, classes int
		m                 *model.Model
	}{
		"other width":    {Spec{Kind: "mlp", Hidden: []int{9}, LearningRate: 0.1, Epochs: 1, BatchSize: 4}, 5, 3, m},
		"other kind":     {Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 1, BatchSize: 4}, 5, 3, m},
		"more features":  {spec, 6, 3, m},
		"fewer classes":  {spec, 5, 2, m},
		"nil model":      {spec, 5, 3, nil},
		"truncated data": {spec, 5, 3, &model.Model{Tensors: []model.Tensor{{Name: "dense0/weight", Shape: []int{5, 8}, Data: make([]float32, 3)}}}},
	} {
		if _, err := bind(c.spec, c.m, c.features, c.classes); err == nil {
			t.Errorf("%s: bind succeeded", name)
		}
	}
}
