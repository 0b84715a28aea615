package trainer

import (
	"context"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/dataset"
)

func TestNoopTrainerMovesNothing(t *testing.T) {
	spec := Spec{Kind: KindNoop, Params: 1000}
	m, err := Init(spec, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Tensors[0].Data[7] = 3
	data := &dataset.Set{X: make([]float32, 6), Y: []int{0, 1, 0}, Classes: 2, Features: 2, Name: "x"}
	out, r, err := Train(context.Background(), spec, m, data)
	if err != nil || r.Samples != 3 || out.Tensors[0].Data[7] != 3 || &out.Tensors[0].Data[0] == &m.Tensors[0].Data[0] {
		t.Fatalf("noop train: %v %+v", err, r)
	}
	layout, err := Layout(spec, 0, 0)
	if err != nil || len(layout) != 1 || layout[0].Shape[0] != 1000 {
		t.Fatalf("layout %v %v", layout, err)
	}
	for _, bad := range []Spec{{Kind: KindNoop}, {Kind: KindNoop, Params: 1 << 31}, {Kind: KindNoop, Params: 5, Hidden: []int{3}}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, _, err := Train(context.Background(), Spec{Kind: KindNoop, Params: 999}, m, data); err == nil {
		t.Error("a noop model of the wrong size was trained")
	}
}

func TestLayoutMatchesInit(t *testing.T) {
	spec := Defaults("optdigits", "mlp")
	m, err := Init(spec, 64, 10)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := Layout(spec, 64, 10)
	if err != nil || len(layout) != len(m.Tensors) {
		t.Fatalf("layout %v, %v", layout, err)
	}
	for i, l := range layout {
		if l.Name != m.Tensors[i].Name || len(l.Shape) != len(m.Tensors[i].Shape) || l.Shape[0] != m.Tensors[i].Shape[0] {
			t.Fatalf("layout %v differs from init %v", l, m.Tensors[i].Shape)
		}
	}
}
