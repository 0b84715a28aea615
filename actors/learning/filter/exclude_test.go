package filter_test

import (
	"slices"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

func TestExcludeVars(t *testing.T) {
	global := mdl(
		tensor("conv1.weight", []int{2}, 1, 2),
		tensor("conv1.bias", []int{1}, 3),
		tensor("fc.weight", []int{2}, 4, 5),
		tensor("fc.bias", []int{1}, 6),
	)
	local := mdl(
		tensor("conv1.weight", []int{2}, 1.5, 2.5),
		tensor("conv1.bias", []int{1}, 3.5),
		tensor("fc.weight", []int{2}, 4.5, 5.5),
		tensor("fc.bias", []int{1}, 6.5),
	)
	tests := []struct {
		name      string
		cfg       filter.ExcludeVars
		global    *model.Model
		want      map[string][]float32
		excluded  []string
		mask      []bool
		unmatched []string
	}{
		{
			name:     "names",
			cfg:      filter.ExcludeVars{Names: []string{"fc.weight", "conv1.bias", "no.such"}},
			global:   global,
			want:     map[string][]float32{"conv1.weight": {1.5, 2.5}, "conv1.bias": {3}, "fc.weight": {4, 5}, "fc.bias": {6.5}},
			excluded: []string{"conv1.bias", "fc.weight"}, mask: []bool{false, true, true, false},
			unmatched: []string{"no.such"},
		},
		{
			// re.search semantics: anywhere in the name.
			name:     "pattern matches anywhere",
			cfg:      filter.ExcludeVars{Pattern: `bias`},
			global:   global,
			want:     map[string][]float32{"conv1.weight": {1.5, 2.5}, "conv1.bias": {3}, "fc.weight": {4.5, 5.5}, "fc.bias": {6}},
			excluded: []string{"conv1.bias", "fc.bias"}, mask: []bool{false, true, false, true},
		},
		{
			name:     "anchored pattern",
			cfg:      filter.ExcludeVars{Pattern: `^fc\.`},
			global:   global,
			want:     map[string][]float32{"conv1.weight": {1.5, 2.5}, "conv1.bias": {3.5}, "fc.weight": {4, 5}, "fc.bias": {6}},
			excluded: []string{"fc.weight", "fc.bias"}, mask: []bool{false, false, true, true},
		},
		{
			name:      "pattern matching nothing",
			cfg:       filter.ExcludeVars{Pattern: `^bn\d`},
			global:    global,
			want:      map[string][]float32{"conv1.weight": {1.5, 2.5}, "conv1.bias": {3.5}, "fc.weight": {4.5, 5.5}, "fc.bias": {6.5}},
			mask:      []bool{false, false, false, false},
			unmatched: []string{`^bn\d`},
		},
		{
			// Task data with no reference: the excluded tensors are zeros.
			name:     "nil global",
			cfg:      filter.ExcludeVars{Names: []string{"fc.bias"}},
			want:     map[string][]float32{"conv1.weight": {1.5, 2.5}, "fc.bias": {0}},
			excluded: []string{"fc.bias"}, mask: []bool{false, false, false, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, rep := apply(t, build(t, tt.cfg), tt.global, local)
			wantData(t, out, tt.want)
			if !slices.Equal(rep.Excluded, tt.excluded) || !slices.Equal(rep.Mask, tt.mask) || !slices.Equal(rep.Unmatched, tt.unmatched) {
				t.Errorf("report: excluded %q mask %v unmatched %q; want %q %v %q", rep.Excluded, rep.Mask, rep.Unmatched, tt.excluded, tt.mask, tt.unmatched)
			}
			zeroed := 0
			for i, m := range tt.mask {
				if m {
					zeroed += len(local.Tensors[i].Data)
				}
			}
			if rep.Values != 6 || rep.Zeroed != zeroed {
				t.Errorf("report: values %d zeroed %d, want 6 and %d", rep.Values, rep.Zeroed, zeroed)
			}
		})
	}
}

// Patterns are RE2: what Python's re accepts and RE2 does not fails at
// New, never silently.
func TestExcludeVarsRefusesPythonOnlySyntax(t *testing.T) {
	for _, p := range []string{`(a)\1`, `conv(?=1)`, `(?<!fc)\.bias`, `bias\Z`, `a*+`, `(?x) fc \. bias`} {
		if _, err := filter.New(filter.ExcludeVars{Pattern: p}); err == nil {
			t.Errorf("pattern %q compiled", p)
		}
	}
}
