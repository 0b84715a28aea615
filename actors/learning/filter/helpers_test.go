package filter_test

import (
	"math"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// tensor is a named tensor of the given shape and values.
func tensor(name string, shape []int, data ...float32) model.Tensor {
	return model.Tensor{Name: name, Shape: shape, Data: data}
}

// mdl is a model of the given tensors.
func mdl(ts ...model.Tensor) *model.Model { return &model.Model{Tensors: ts} }

// seed is a fixed seed for the filters that draw randomness.
var seed = [32]byte{1, 2, 3}

// build is filter.New that fails the test on error, seeded.
func build(t testing.TB, c filter.Config) filter.Filter {
	t.Helper()
	f, err := filter.New(c, filter.WithSeed(seed))
	if err != nil {
		t.Fatalf("New(%#v): %v", c, err)
	}
	return f
}

// apply runs f and fails the test on error; it also checks that the
// inputs came back unchanged and that the output shares no memory with
// them.
func apply(t testing.TB, f filter.Filter, global, local *model.Model) (*model.Model, filter.Report) {
	t.Helper()
	g0, l0 := global.Clone(), local.Clone()
	out, rep, err := f.Apply(global, local)
	if err != nil {
		t.Fatalf("%s.Apply: %v", f.Name(), err)
	}
	if !equalBits(global, g0) || !equalBits(local, l0) {
		t.Fatalf("%s.Apply changed its inputs", f.Name())
	}
	if err := out.SameLayout(local); err != nil {
		t.Fatalf("%s.Apply: output layout: %v", f.Name(), err)
	}
	if err := out.Validate(); err != nil {
		t.Fatalf("%s.Apply: output: %v", f.Name(), err)
	}
	for i := range out.Tensors {
		o := out.Tensors[i].Data
		if len(o) == 0 {
			continue
		}
		same := &o[0] == &local.Tensors[i].Data[0] || (global != nil && &o[0] == &global.Tensors[i].Data[0])
		if same {
			t.Fatalf("%s.Apply: output tensor %q shares memory with an input", f.Name(), out.Tensors[i].Name)
		}
	}
	if rep.Filter != f.Name() {
		t.Errorf("Report.Filter = %q, want %q", rep.Filter, f.Name())
	}
	return out, rep
}

// equalBits says whether two models hold the same layout and bits.
func equalBits(a, b *model.Model) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.SameLayout(b) != nil {
		return false
	}
	for i := range a.Tensors {
		for j, v := range a.Tensors[i].Data {
			if math.Float32bits(v) != math.Float32bits(b.Tensors[i].Data[j]) {
				return false
			}
		}
	}
	return true
}

// wantData checks out's tensor values exactly.
func wantData(t *testing.T, out *model.Model, want map[string][]float32) {
	t.Helper()
	for name, w := range want {
		got, ok := out.Tensor(name)
		if !ok {
			t.Fatalf("no tensor %q", name)
		}
		if len(got.Data) != len(w) {
			t.Fatalf("%s: %d values, want %d", name, len(got.Data), len(w))
		}
		for j := range w {
			if got.Data[j] != w[j] {
				t.Errorf("%s[%d] = %v, want %v (all: %v)", name, j, got.Data[j], w[j], got.Data)
			}
		}
	}
}

// ramp is a model of n values spread over a few tensors, the local
// values global + a spread of diffs: the benchmark and property tests'
// input.
func ramp(n int) (global, local *model.Model) {
	sizes := []int{n / 2, n / 4, n - n/2 - n/4}
	global, local = &model.Model{}, &model.Model{}
	k := 0
	for i, s := range sizes {
		g, l := make([]float32, s), make([]float32, s)
		for j := range s {
			g[j] = float32(math.Sin(float64(k)))
			l[j] = g[j] + float32(0.01*math.Sin(float64(k)*1.7)*math.Cos(float64(k)*0.013))
			k++
		}
		name := []string{"layer1.weight", "layer1.bias", "head.weight"}[i]
		global.Tensors = append(global.Tensors, tensor(name, []int{s}, g...))
		local.Tensors = append(local.Tensors, tensor(name, []int{s}, l...))
	}
	return global, local
}
