package aggregator

import (
	"testing"

	"github.com/hearthfl/hearth/actors/learning/model"
)

func TestFlattenTakesContiguousValuesWithoutACopy(t *testing.T) {
	all := []float32{1, 2, 3, 4, 5}
	one := &model.Model{Tensors: []model.Tensor{{Name: "a", Shape: []int{2}, Data: all[:2]}, {Name: "b", Shape: []int{3}, Data: all[2:5]}}}
	if x := flatten(one); &x[0] != &all[0] || len(x) != 5 {
		t.Fatalf("contiguous tensors copied: %v", x)
	}
	apart := &model.Model{Tensors: []model.Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}, {Name: "b", Shape: []int{3}, Data: []float32{3, 4, 5}}}}
	if x := flatten(apart); len(x) != 5 || x[2] != 3 || &x[0] == &apart.Tensors[0].Data[0] {
		t.Fatalf("tensors apart: %v", x)
	}
	gap := &model.Model{Tensors: []model.Tensor{{Name: "a", Shape: []int{2}, Data: all[:2]}, {Name: "b", Shape: []int{2}, Data: all[3:5]}}}
	if x := flatten(gap); len(x) != 4 || x[2] != 4 {
		t.Fatalf("tensors with a gap between them: %v", x)
	}
	capped := &model.Model{Tensors: []model.Tensor{{Name: "a", Shape: []int{2}, Data: all[:2:2]}, {Name: "b", Shape: []int{3}, Data: all[2:5]}}}
	if x := flatten(capped); len(x) != 5 || &x[0] == &all[0] {
		t.Fatalf("tensors whose array cannot be told: taken without a copy")
	}
}
