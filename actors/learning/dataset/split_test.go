package dataset

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// indexed returns a set whose single feature is each sample's index, so
// that a partition can be checked sample by sample.
func indexed(labels []int, classes int) *Set {
	s := &Set{Y: slices.Clone(labels), Classes: classes, Features: 1, Name: "indexed"}
	for i := range labels {
		s.X = append(s.X, float32(i))
	}
	return s
}

func optdigitsTrain(t *testing.T) *Set {
	t.Helper()
	train, _, err := Load("optdigits")
	if err != nil {
		t.Fatal(err)
	}
	return train
}

// checkPartition fails unless parts hold every sample of s exactly once,
// each with its own label, and every part has at least MinPerSite samples.
func checkPartition(t *testing.T, s *Set, parts []*Set) {
	t.Helper()
	seen := make([]int, s.Rows())
	for k, p := range parts {
		if err := p.Validate(); err != nil {
			t.Fatalf("site %d: %v", k, err)
		}
		if p.Rows() < MinPerSite {
			t.Fatalf("site %d has %d samples, fewer than %d", k, p.Rows(), MinPerSite)
		}
		if p.Classes != s.Classes || p.Features != s.Features || p.Name != s.Name {
			t.Fatalf("site %d changed the set's shape or name", k)
		}
		for i := range p.Rows() {
			idx := int(p.Row(i)[0])
			seen[idx]++
			if p.Y[i] != s.Y[idx] {
				t.Fatalf("site %d: sample %d has label %d, want %d", k, idx, p.Y[i], s.Y[idx])
			}
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("sample %d appears %d times", i, n)
		}
	}
}

func TestDirichletSplitPartitions(t *testing.T) {
	train := optdigitsTrain(t)
	s := indexed(train.Y, train.Classes)
	for _, tc := range []struct {
		sites int
		alpha float64
	}{{1, 0.5}, {5, 0.5}, {5, 0.05}, {10, 0.01}, {50, 0.1}, {3, 1000}, {382, 0.5}} {
		parts, err := DirichletSplit(s, tc.sites, tc.alpha, 11)
		if err != nil {
			t.Fatalf("sites %d alpha %v: %v", tc.sites, tc.alpha, err)
		}
		if len(parts) != tc.sites {
			t.Fatalf("sites %d alpha %v: %d parts", tc.sites, tc.alpha, len(parts))
		}
		checkPartition(t, s, parts)
	}
}

func TestDirichletSplitDeterministic(t *testing.T) {
	train := optdigitsTrain(t)
	a, err := DirichletSplit(train, 5, 0.5, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DirichletSplit(train, 5, 0.5, 3)
	c, _ := DirichletSplit(train, 5, 0.5, 4)
	same := func(x, y []*Set) bool {
		for k := range x {
			if !slices.Equal(x[k].Y, y[k].Y) || !slices.Equal(x[k].X, y[k].X) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("the same seed gave different splits")
	}
	if same(a, c) {
		t.Fatal("another seed gave the same split")
	}
}

// With one big class and tiny alpha, draws that starve a site are common;
// the split must still give every site MinPerSite samples.
func TestDirichletSplitMinimum(t *testing.T) {
	labels := make([]int, 60)
	labels[59] = 1
	s := indexed(labels, 2)
	for seed := range int64(20) {
		parts, err := DirichletSplit(s, 6, 0.01, seed)
		if err != nil {
			t.Fatal(err)
		}
		checkPartition(t, s, parts)
	}
}

// Smaller alpha gives more label skew, measured as the mean total variation
// distance between each site's label mix and the pooled one.
func TestDirichletSplitSkew(t *testing.T) {
	train := optdigitsTrain(t)
	var prev float64 = -1
	for _, alpha := range []float64{1000, 10, 1, 0.5, 0.1} {
		sum := 0.0
		for seed := range int64(5) {
			parts, err := DirichletSplit(train, 5, alpha, seed)
			if err != nil {
				t.Fatal(err)
			}
			sum += LabelSkew(parts)
		}
		skew := sum / 5
		t.Logf("alpha %-6v mean label skew %.3f", alpha, skew)
		if skew <= prev {
			t.Fatalf("alpha %v: skew %.3f not above the previous %.3f", alpha, skew, prev)
		}
		prev = skew
	}
}

func TestDirichletSplitRefusals(t *testing.T) {
	s := indexed(make([]int, 49), 2)
	cases := []struct {
		name  string
		sites int
		alpha float64
		want  string
	}{
		{"no sites", 0, 0.5, "at least 1"},
		{"negative sites", -2, 0.5, "at least 1"},
		{"zero alpha", 2, 0, "alpha"},
		{"negative alpha", 2, -1, "alpha"},
		{"nan alpha", 2, math.NaN(), "alpha"},
		{"inf alpha", 2, math.Inf(1), "alpha"},
		{"too few samples", 5, 0.5, "49 samples cannot give 5 sites 10 each"},
		{"absurd sites", 1 << 62, 0.5, "cannot give"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DirichletSplit(s, tc.sites, tc.alpha, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DirichletSplit = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := DirichletSplit(&Set{Classes: 2, Features: 1}, 1, 1, 1); err == nil {
		t.Fatal("split of an empty set succeeded")
	}
}

func TestLabelSkew(t *testing.T) {
	a := &Set{Y: []int{0, 0}, Classes: 2}
	b := &Set{Y: []int{1, 1}, Classes: 2}
	mixed := &Set{Y: []int{0, 1}, Classes: 2}
	if got := LabelSkew([]*Set{mixed, mixed}); got != 0 {
		t.Errorf("identical mixes: skew %v, want 0", got)
	}
	if got := LabelSkew([]*Set{a, b}); got != 0.5 {
		t.Errorf("disjoint halves: skew %v, want 0.5", got)
	}
	if got := LabelSkew([]*Set{a, nil, b}); got != 0.5 {
		t.Errorf("nil part: skew %v, want 0.5", got)
	}
	if got := LabelSkew(nil); got != 0 {
		t.Errorf("no parts: skew %v, want 0", got)
	}
}

func TestLargestRemainder(t *testing.T) {
	got := largestRemainder([]float64{1, 1, 1}, 3, 10)
	if !slices.Equal(got, []int{4, 3, 3}) {
		t.Fatalf("largestRemainder = %v, want [4 3 3]", got)
	}
	got = largestRemainder([]float64{0.7, 0.2, 0.1}, 1, 7)
	if sum := got[0] + got[1] + got[2]; sum != 7 {
		t.Fatalf("largestRemainder = %v sums to %d", got, sum)
	}
}
