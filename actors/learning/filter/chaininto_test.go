package filter_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// intoFilter is a FilterInto that halves the diff, and counts how it was
// called: Apply (which checks its inputs) or ApplyInto (on inputs the
// chain checked), and into which buffer.
type intoFilter struct {
	applies, intos int
	dsts           []*model.Model
}

func (f *intoFilter) Name() string              { return "halve" }
func (f *intoFilter) Params() map[string]string { return nil }

func (f *intoFilter) Apply(global, local *model.Model) (*model.Model, filter.Report, error) {
	f.applies++
	if err := filter.CheckInputs("halve", global, local); err != nil {
		return nil, filter.Report{Filter: "halve"}, err
	}
	out := local.Clone()
	f.halve(global, local, out)
	return out, filter.Report{Filter: "halve"}, nil
}

func (f *intoFilter) ApplyInto(global, local, dst *model.Model) (filter.Report, error) {
	f.intos++
	f.dsts = append(f.dsts, dst)
	f.halve(global, local, dst)
	return filter.Report{Filter: "halve"}, nil
}

func (f *intoFilter) halve(global, local, dst *model.Model) {
	for i, t := range local.Tensors {
		for j, v := range t.Data {
			g := float32(0)
			if global != nil {
				g = global.Tensors[i].Data[j]
			}
			dst.Tensors[i].Data[j] = g + (v-g)/2
		}
	}
}

// TestRunChainInto: the chain's output lands in the caller's buffer; a
// FilterInto at the end writes it there itself, on inputs the chain
// checked once (its Apply, which checks again, is not called); before
// other filters it writes into memory of its own; exclusions and the
// order hold as in RunChain.
func TestRunChainInto(t *testing.T) {
	global := mdl(tensor("emb", []int{2}, 1, 1), tensor("w", []int{4}, 0, 0, 0, 0))
	local := mdl(tensor("emb", []int{2}, 9, -9), tensor("w", []int{4}, 0.5, 0.01, -0.3, 0.001))
	t.Run("a FilterInto at the end writes the buffer", func(t *testing.T) {
		f := &intoFilter{}
		dst := newZeroLike(local)
		g0, l0 := global.Clone(), local.Clone()
		rep, err := filter.RunChainInto([]filter.Filter{f}, global, local, dst)
		if err != nil {
			t.Fatal(err)
		}
		if f.applies != 0 || f.intos != 1 || f.dsts[0] != dst {
			t.Fatalf("Apply %d times, ApplyInto %d times into %p; want ApplyInto once into the buffer %p", f.applies, f.intos, f.dsts, dst)
		}
		wantData(t, dst, map[string][]float32{"emb": {5, -4}, "w": {0.25, 0.005, -0.15, 0.0005}})
		if len(rep.Reports) != 1 || rep.Excluded != nil || !equalBits(global, g0) || !equalBits(local, l0) {
			t.Fatalf("report %+v, or the inputs changed", rep)
		}
	})
	t.Run("RunChain gives a FilterInto new memory", func(t *testing.T) {
		f := &intoFilter{}
		out, _, err := filter.RunChain([]filter.Filter{f}, global, local)
		if err != nil || f.intos != 1 || f.applies != 0 || &out.Tensors[0].Data[0] == &local.Tensors[0].Data[0] {
			t.Fatalf("RunChain = %v, %v; ApplyInto %d, Apply %d", out, err, f.intos, f.applies)
		}
		wantData(t, out, map[string][]float32{"emb": {5, -4}})
	})
	t.Run("excluded first, then a FilterInto", func(t *testing.T) {
		f := &intoFilter{}
		dst := newZeroLike(local)
		rep, err := filter.RunChainInto([]filter.Filter{build(t, filter.ExcludeVars{Pattern: `^emb$`}), f}, global, local, dst)
		if err != nil {
			t.Fatal(err)
		}
		if f.dsts[0] == dst || len(f.dsts[0].Tensors) != 1 {
			t.Fatalf("the FilterInto after an exclusion wrote into %v, want a buffer of the tensors in play", f.dsts[0])
		}
		wantData(t, dst, map[string][]float32{"emb": {1, 1}, "w": {0.25, 0.005, -0.15, 0.0005}})
		if len(rep.Excluded) != 1 || rep.Excluded[0] != "emb" {
			t.Fatalf("excluded %v", rep.Excluded)
		}
	})
	t.Run("a FilterInto, then a built-in, in that order", func(t *testing.T) {
		f := &intoFilter{}
		dst := newZeroLike(local)
		if _, err := filter.RunChainInto([]filter.Filter{f, build(t, filter.Percentile{Percentile: 0, Gamma: 0.2, Steps: 1})}, global, local, dst); err != nil {
			t.Fatal(err)
		}
		if f.dsts[0] == dst {
			t.Fatal("the first filter wrote into the chain's buffer")
		}
		// Halved, then clipped to ±0.2: the other order gives ±0.1.
		wantData(t, dst, map[string][]float32{"emb": {1.2, 0.8}, "w": {0.2, 0.005, -0.15, 0.0005}})
	})
	t.Run("no filters copies into the buffer", func(t *testing.T) {
		dst := newZeroLike(local)
		if _, err := filter.RunChainInto(nil, global, local, dst); err != nil || !equalBits(dst, local) {
			t.Fatalf("got %v, %v", dst, err)
		}
	})
	t.Run("a buffer unlike the update is refused", func(t *testing.T) {
		short := newZeroLike(local)
		short.Tensors[1].Data = short.Tensors[1].Data[:3]
		for name, dst := range map[string]*model.Model{
			"other layout": mdl(tensor("emb", []int{2}, 0, 0)),
			"short data":   short,
			"none":         nil,
			"the update":   local,
			"the global's": global,
		} {
			if _, err := filter.RunChainInto([]filter.Filter{&intoFilter{}}, global, local, dst); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

// TestCheckInputsOnce: the inputs are checked before any filter runs, a
// NaN in either refused; a global that is the local's own memory is the
// same model, checked once, and still refused with its NaN.
func TestCheckInputsOnce(t *testing.T) {
	global := mdl(tensor("w", []int{2}, 1, float32(math.NaN())))
	local := mdl(tensor("w", []int{2}, 1, 2))
	f := &intoFilter{}
	dst := newZeroLike(local)
	if _, err := filter.RunChainInto([]filter.Filter{f}, global, local, dst); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "global") {
		t.Fatalf("a NaN in the global: %v, want ErrInvalid naming the global", err)
	}
	if _, err := filter.RunChainInto([]filter.Filter{f}, local, global, dst); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "local") {
		t.Fatalf("a NaN in the local: %v, want ErrInvalid naming the local", err)
	}
	if _, err := filter.RunChainInto([]filter.Filter{f}, global, global, dst); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("one model with a NaN as both: %v, want ErrInvalid", err)
	}
	if f.intos != 0 {
		t.Fatalf("a filter ran on refused inputs")
	}
	same := mdl(tensor("w", []int{2}, 3, 4))
	renamed := mdl(tensor("v", []int{2}, same.Tensors[0].Data...))
	if err := filter.CheckInputs("t", renamed, same); !errors.Is(err, model.ErrLayout) {
		t.Fatalf("the same memory under another name: %v, want ErrLayout", err)
	}
	if !filter.SameMemory(same, mdl(tensor("w", []int{2}, same.Tensors[0].Data...))) || filter.SameMemory(same, same.Clone()) {
		t.Fatal("SameMemory is wrong")
	}
}

// newZeroLike is a model of m's layout holding zeros.
func newZeroLike(m *model.Model) *model.Model {
	out := m.Clone()
	for _, t := range out.Tensors {
		clear(t.Data)
	}
	return out
}
