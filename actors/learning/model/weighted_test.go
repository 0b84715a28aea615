package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func randomModel(r *rand.Rand) *Model {
	m := twoTensor(0, 0, 0, 0, 0)
	for i := range m.Tensors {
		for j := range m.Tensors[i].Data {
			m.Tensors[i].Data[j] = float32(r.NormFloat64() * 3)
		}
	}
	return m
}

func TestWeightedSumEqualsExplicitMean(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	models := make([]*Model, 7)
	weights := make([]float64, len(models))
	for i := range models {
		models[i] = randomModel(r)
		weights[i] = float64(1 + r.IntN(1000))
	}
	w := NewWeightedSum(models[0])
	for i, m := range models {
		if err := w.Add(m, weights[i]); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	got, err := w.Mean()
	if err != nil {
		t.Fatalf("Mean: %v", err)
	}
	if err := got.SameLayout(models[0]); err != nil {
		t.Fatalf("mean layout: %v", err)
	}
	total := 0.0
	for _, wt := range weights {
		total += wt
	}
	if w.Count() != len(models) || w.TotalWeight() != total {
		t.Fatalf("Count, TotalWeight = %d, %v; want %d, %v", w.Count(), w.TotalWeight(), len(models), total)
	}
	for ti, tensor := range got.Tensors {
		for j, v := range tensor.Data {
			want := 0.0
			for i, m := range models {
				want += weights[i] * float64(m.Tensors[ti].Data[j])
			}
			want /= total
			if math.Abs(float64(v)-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Fatalf("tensor %q[%d] = %v, want %v", tensor.Name, j, v, want)
			}
		}
	}
	// The inputs are untouched and the mean shares nothing with them.
	got.Tensors[0].Data[0] = 12345
	for _, m := range models {
		if m.Tensors[0].Data[0] == 12345 {
			t.Fatal("mean aliases an input")
		}
	}
}

func TestWeightedSumRefusals(t *testing.T) {
	good := twoTensor(1, 2, 3, 4, 5)
	other := good.Clone()
	other.Tensors[0].Shape = []int{4, 1}
	cases := []struct {
		name   string
		m      *Model
		weight float64
		want   error
		text   string
	}{
		{"layout mismatch", other, 1, ErrLayout, `"dense0/weight" has shape [2 2] here and [4 1] there`},
		{"nan value", twoTensor(1, float32(math.NaN()), 3, 4, 5), 1, ErrInvalid, "NaN"},
		{"inf value", twoTensor(1, 2, 3, float32(math.Inf(-1)), 5), 1, ErrInvalid, "Inf"},
		{"zero weight", good, 0, nil, "not a finite positive"},
		{"negative weight", good, -2, nil, "not a finite positive"},
		{"nan weight", good, math.NaN(), nil, "not a finite positive"},
		{"inf weight", good, math.Inf(1), nil, "not a finite positive"},
		{"nil model", nil, 1, ErrInvalid, "nil model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWeightedSum(good)
			if err := w.Add(good, 2); err != nil {
				t.Fatalf("Add good: %v", err)
			}
			err := w.Add(tc.m, tc.weight)
			if err == nil || !strings.Contains(err.Error(), tc.text) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Add = %v, want an error (%v) containing %q", err, tc.want, tc.text)
			}
			// The refusal left the sum as it was.
			if w.Count() != 1 || w.TotalWeight() != 2 {
				t.Fatalf("after refusal Count, TotalWeight = %d, %v", w.Count(), w.TotalWeight())
			}
			mean, err := w.Mean()
			if err != nil || mean.Tensors[0].Data[1] != 2 {
				t.Fatalf("mean after refusal = %v, %v", mean, err)
			}
		})
	}
}

func TestWeightedSumEmptyAndBadLayout(t *testing.T) {
	if _, err := NewWeightedSum(twoTensor(1, 2, 3, 4, 5)).Mean(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Mean of empty sum = %v, want ErrEmpty", err)
	}
	for name, layout := range map[string]*Model{
		"nil":          nil,
		"negative dim": {Tensors: []Tensor{{Name: "a", Shape: []int{-3}}}},
	} {
		w := NewWeightedSum(layout)
		if err := w.Add(twoTensor(1, 2, 3, 4, 5), 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Add = %v, want ErrInvalid", name, err)
		}
		if _, err := w.Mean(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Mean = %v, want ErrInvalid", name, err)
		}
	}
}

// Huge finite values times huge weights overflow float64 sums: to infinity
// one way, to NaN when they overflow both ways. Neither comes out as a mean.
func TestWeightedSumMeanNeverNonFinite(t *testing.T) {
	const huge = math.MaxFloat32
	tests := []struct {
		name    string
		models  []*Model
		weights []float64
	}{
		{"overflow to +Inf", []*Model{twoTensor(huge, 0, 0, 0, 0), twoTensor(huge, 0, 0, 0, 0)}, []float64{1e300, 1e300}},
		{"overflow both ways to NaN", []*Model{twoTensor(huge, 0, 0, 0, 0), twoTensor(-huge, 0, 0, 0, 0), twoTensor(huge, 0, 0, 0, 0)},
			[]float64{1e300, 1e300, 1e300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWeightedSum(tt.models[0])
			for i, m := range tt.models {
				if err := w.Add(m, tt.weights[i]); err != nil {
					t.Fatalf("Add %d: %v", i, err)
				}
			}
			m, err := w.Mean()
			if err == nil {
				t.Fatalf("mean %v came out", m.Tensors[0].Data)
			}
			if !strings.Contains(err.Error(), "overflowed") {
				t.Fatalf("error %q does not say the sum overflowed", err)
			}
		})
	}
}
