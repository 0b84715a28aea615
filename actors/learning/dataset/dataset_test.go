package dataset

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	cases := []struct {
		name                  string
		trainRows, testRows   int
		features, classes     int
		minValue, maxValue    float32 // bounds every feature must respect
		trainCounts, tesCount []int
	}{
		{"optdigits", 3823, 1797, 64, 10, 0, 1,
			[]int{376, 389, 380, 389, 387, 376, 377, 387, 380, 382},
			[]int{178, 182, 177, 183, 181, 182, 181, 179, 174, 180}},
		{"wdbc", 456, 113, 30, 2, -10, 15, []int{286, 170}, []int{71, 42}},
		{"mnist", 8000, 2000, 784, 10, 0, 1,
			[]int{784, 908, 826, 808, 786, 714, 766, 822, 779, 807},
			[]int{196, 227, 206, 202, 196, 178, 192, 206, 195, 202}},
		{"adult", 26049, 6512, 105, 2, -10, 15, []int{19776, 6273}, []int{4944, 1568}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			train, test, err := Load(tc.name)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for _, s := range []*Set{train, test} {
				if err := s.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if s.Name != tc.name || s.Features != tc.features || s.Classes != tc.classes {
					t.Fatalf("set is %q, %d features, %d classes", s.Name, s.Features, s.Classes)
				}
				for i, v := range s.X {
					if v < tc.minValue || v > tc.maxValue {
						t.Fatalf("value %d = %v outside [%v, %v]", i, v, tc.minValue, tc.maxValue)
					}
				}
			}
			if train.Rows() != tc.trainRows || test.Rows() != tc.testRows {
				t.Fatalf("rows = %d/%d, want %d/%d", train.Rows(), test.Rows(), tc.trainRows, tc.testRows)
			}
			if !slices.Equal(train.ClassCounts(), tc.trainCounts) || !slices.Equal(test.ClassCounts(), tc.tesCount) {
				t.Fatalf("class counts %v / %v, want %v / %v", train.ClassCounts(), test.ClassCounts(), tc.trainCounts, tc.tesCount)
			}
			// Load is deterministic and returns fresh sets.
			again, _, err := Load(tc.name)
			if err != nil || !slices.Equal(again.X, train.X) || !slices.Equal(again.Y, train.Y) {
				t.Fatalf("second Load differs (err %v)", err)
			}
			again.X[0] = 42
			if train.X[0] == 42 {
				t.Fatal("two Loads share memory")
			}
		})
	}
}

func TestLoadUnknown(t *testing.T) {
	_, _, err := Load("iris")
	if err == nil || !strings.Contains(err.Error(), "optdigits, wdbc, mnist, adult") {
		t.Fatalf("Load(iris) = %v, want an error listing the valid names", err)
	}
}

// The shipped WDBC constants are the train split's statistics, so the
// scaled train split has mean 0 and standard deviation 1 in every feature.
func TestWDBCConstants(t *testing.T) {
	train, _, err := Load("wdbc")
	if err != nil {
		t.Fatal(err)
	}
	for c := range train.Features {
		var sum, sq float64
		for i := range train.Rows() {
			sum += float64(train.Row(i)[c])
		}
		mean := sum / float64(train.Rows())
		for i := range train.Rows() {
			d := float64(train.Row(i)[c]) - mean
			sq += d * d
		}
		std := math.Sqrt(sq / float64(train.Rows()))
		if math.Abs(mean) > 1e-4 || math.Abs(std-1) > 1e-4 {
			t.Errorf("feature %d: scaled train mean %v, std %v; want 0, 1", c, mean, std)
		}
	}
}

func TestStratifiedSplit(t *testing.T) {
	y := make([]int, 1000)
	for i := range y {
		y[i] = i % 3
		if i >= 900 {
			y[i] = 2
		}
	}
	train, test := stratifiedSplit(y, 3, 7)
	all := append(slices.Clone(train), test...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("split is not a partition: position %d holds %d", i, v)
		}
	}
	perClass := make([]int, 3)
	for _, i := range test {
		perClass[y[i]]++
	}
	// 300, 300 and 400 samples per class: 20% of each.
	if !slices.Equal(perClass, []int{60, 60, 80}) {
		t.Fatalf("test per class = %v, want [60 60 80]", perClass)
	}
	train2, test2 := stratifiedSplit(y, 3, 7)
	if !slices.Equal(train, train2) || !slices.Equal(test, test2) {
		t.Fatal("split is not deterministic")
	}
	if _, test3 := stratifiedSplit(y, 3, 8); slices.Equal(test, test3) {
		t.Fatal("another seed gave the same split")
	}
}

func TestValidate(t *testing.T) {
	good := func() *Set {
		return &Set{X: []float32{1, 2, 3, 4}, Y: []int{0, 1}, Classes: 2, Features: 2, Name: "t"}
	}
	cases := []struct {
		name  string
		edit  func(s *Set)
		error string
	}{
		{"valid", func(*Set) {}, ""},
		{"one class", func(s *Set) { s.Classes = 1 }, "need at least 2"},
		{"no features", func(s *Set) { s.Features = 0 }, "0 features"},
		{"no samples", func(s *Set) { s.X, s.Y = nil, nil }, "no samples"},
		{"ragged", func(s *Set) { s.X = s.X[:3] }, "3 values for 2 samples"},
		{"label too big", func(s *Set) { s.Y[1] = 2 }, "label 2"},
		{"negative label", func(s *Set) { s.Y[0] = -1 }, "label -1"},
		{"nan", func(s *Set) { s.X[2] = float32(math.NaN()) }, "feature 0 is NaN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.edit(s)
			err := s.Validate()
			if tc.error == "" && err != nil || tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)) {
				t.Fatalf("Validate = %v, want %q", err, tc.error)
			}
		})
	}
	if err := (*Set)(nil).Validate(); err == nil {
		t.Fatal("nil set validated")
	}
}
