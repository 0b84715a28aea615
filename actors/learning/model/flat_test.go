package model

import (
	"errors"
	"io"
	"testing"
)

func TestFlatHoldsAModelOutsideTheHeap(t *testing.T) {
	m := &Model{Tensors: []Tensor{
		{Name: "w", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "b", Shape: []int{2}, Data: []float32{-1, 0.5}},
	}}
	for _, spill := range []string{"", t.TempDir()} {
		f, err := FlatCopy(m, spill)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != 24 || f.Data[4] != -1 {
			t.Fatalf("flat %v", f.Data)
		}
		v := f.Model()
		if v.SameLayout(m) != nil || v.Tensors[1].Data[1] != 0.5 {
			t.Fatalf("view %+v", v)
		}
		v.Tensors[0].Data[0] = 9 // a view, not a copy
		buf := make([]byte, 4)
		if _, err := f.ReadAt(buf, 0); err != nil || buf[3] != 0x41 || buf[2] != 0x10 { // 9.0f = 0x41100000
			t.Fatalf("bytes % x, %v", buf, err)
		}
		if n, err := f.ReadAt(make([]byte, 8), 20); n != 4 || !errors.Is(err, io.EOF) {
			t.Fatalf("read past the end: %d, %v", n, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewFlatRefuses(t *testing.T) {
	cases := map[string][]TensorShape{
		"empty":          nil,
		"zero dimension": {{Name: "w", Shape: []int{0}}},
		"duplicate":      {{Name: "w", Shape: []int{1}}, {Name: "w", Shape: []int{1}}},
		"no name":        {{Shape: []int{1}}},
		"too large":      {{Name: "w", Shape: []int{1 << 20, 1 << 20}}},
	}
	for name, layout := range cases {
		t.Run(name, func(t *testing.T) {
			if f, err := NewFlat(layout, ""); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, %v", f, err)
			}
		})
	}
}
