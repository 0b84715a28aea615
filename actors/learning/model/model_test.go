package model

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func twoTensor(w0, w1, w2, w3, b0 float32) *Model {
	return &Model{Tensors: []Tensor{
		{Name: "dense0/weight", Shape: []int{2, 2}, Data: []float32{w0, w1, w2, w3}},
		{Name: "dense0/bias", Shape: []int{1}, Data: []float32{b0}},
	}}
}

func TestCloneIsDeep(t *testing.T) {
	m := twoTensor(1, 2, 3, 4, 5)
	c := m.Clone()
	c.Tensors[0].Data[0] = 99
	c.Tensors[0].Shape[0] = 7
	c.Tensors[1].Name = "x"
	if m.Tensors[0].Data[0] != 1 || m.Tensors[0].Shape[0] != 2 || m.Tensors[1].Name != "dense0/bias" {
		t.Fatalf("clone shares memory with the original: %+v", m)
	}
	if (*Model)(nil).Clone() != nil {
		t.Fatal("clone of nil is not nil")
	}
}

func TestCounts(t *testing.T) {
	m := twoTensor(1, 2, 3, 4, 5)
	if got := m.NumParams(); got != 5 {
		t.Fatalf("NumParams = %d, want 5", got)
	}
	if got := m.Bytes(); got != 20 {
		t.Fatalf("Bytes = %d, want 20", got)
	}
	if tt, ok := m.Tensor("dense0/bias"); !ok || tt.Data[0] != 5 {
		t.Fatalf("Tensor(dense0/bias) = %v, %v", tt, ok)
	}
	if _, ok := m.Tensor("nope"); ok {
		t.Fatal("Tensor(nope) found")
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name string
		m    *Model
		want string // substring of the error; "" for valid
	}{
		{"valid", twoTensor(1, 2, 3, 4, 5), ""},
		{"scalar", &Model{Tensors: []Tensor{{Name: "s", Data: []float32{1}}}}, ""},
		{"empty model", &Model{}, ""},
		{"nil", nil, "nil model"},
		{"nan", twoTensor(1, nan, 3, 4, 5), "NaN"},
		{"inf", twoTensor(1, 2, 3, 4, inf), "Inf"},
		{"short data", &Model{Tensors: []Tensor{{Name: "a", Shape: []int{2, 3}, Data: make([]float32, 5)}}}, "holds 6 values, data has 5"},
		{"zero dim", &Model{Tensors: []Tensor{{Name: "a", Shape: []int{0}, Data: nil}}}, "not positive"},
		{"negative dim", &Model{Tensors: []Tensor{{Name: "a", Shape: []int{-1, -1}, Data: []float32{1}}}}, "not positive"},
		{"overflowing shape", &Model{Tensors: []Tensor{{Name: "a", Shape: []int{1 << 20, 1 << 20, 1 << 20}}}}, "more than"},
		{"empty name", &Model{Tensors: []Tensor{{Name: "", Shape: []int{1}, Data: []float32{1}}}}, "empty name"},
		{"duplicate", &Model{Tensors: []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}}, "duplicate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want an ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestSameLayout(t *testing.T) {
	base := twoTensor(1, 2, 3, 4, 5)
	renamed := base.Clone()
	renamed.Tensors[1].Name = "dense0/b"
	reshaped := base.Clone()
	reshaped.Tensors[0].Shape = []int{4, 1}
	swapped := &Model{Tensors: []Tensor{base.Tensors[1], base.Tensors[0]}}
	shorter := &Model{Tensors: base.Tensors[:1]}
	cases := []struct {
		name string
		o    *Model
		want string
	}{
		{"same, other values", twoTensor(9, 9, 9, 9, 9), ""},
		{"renamed", renamed, `tensor 1 is named "dense0/bias" here and "dense0/b" there`},
		{"reshaped", reshaped, `tensor "dense0/weight" has shape [2 2] here and [4 1] there`},
		{"reordered", swapped, `tensor 0 is named "dense0/weight" here and "dense0/bias" there`},
		{"fewer tensors", shorter, "2 tensors here and 1 there"},
		{"nil", nil, "nil model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := base.SameLayout(tc.o)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("SameLayout = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrLayout) {
				t.Fatalf("SameLayout = %v, want an ErrLayout containing %q", err, tc.want)
			}
		})
	}
}
