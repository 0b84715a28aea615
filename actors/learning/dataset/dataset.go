// Package dataset provides the real, public datasets Hearth's built-in
// trainers learn on, embedded into the binary so that a fresh clone needs
// nothing but Go: optdigits, WDBC, MNIST (the t10k set) and Adult. The files
// and their attribution and licenses are in files/ (see files/README.md).
//
// Load parses a dataset, splits it into train and test and scales its
// features, using only fixed transforms or statistics of the train split:
//
//   - optdigits: train = optdigits.tra (3823 rows), test = optdigits.tes
//     (1797); 64 features, pixel counts 0..16 divided by 16; 10 classes.
//   - wdbc: 569 rows, stratified 80/20 split with SplitSeed; 30 features,
//     each z-scored with constants (wdbc_stats.go) that are the train
//     split's mean and standard deviation; class 1 = malignant. In
//     federation every site scales with these same shipped constants, never
//     with its own local statistics: under label skew a site's local mean
//     is pulled towards its majority class, so local standardization would
//     feed the global model differently shifted inputs at each site and
//     erase part of the very signal that separates the classes.
//   - mnist: the 10000-image t10k set, stratified 80/20 split with
//     SplitSeed; 784 features, pixel values divided by 255; 10 classes.
//   - adult: adult.data (32561 rows), stratified 80/20 split with
//     SplitSeed; class 1 = income >50K. Categorical columns are one-hot
//     encoded over the categories seen in the train split, sorted; an
//     unknown or missing ("?") value encodes as all zeros. Numeric columns
//     (fnlwgt log-transformed, capital gain and loss log1p-transformed) are
//     z-scored with the train split's mean and standard deviation. The
//     result has 105 features.
//
// A Set is plain data; DirichletSplit partitions one across simulated sites
// with label skew, and Write and Read keep a site's partition in a
// checksummed binary file.
package dataset

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

//go:embed files/optdigits.tra files/optdigits.tes files/wdbc.data
//go:embed files/mnist-t10k-images-idx3-ubyte.gz files/mnist-t10k-labels-idx1-ubyte.gz
//go:embed files/adult.data
var files embed.FS

// SplitSeed seeds the stratified 80/20 train/test split of wdbc, mnist and
// adult. It is fixed so that every process, and every site, sees the same
// split.
const SplitSeed int64 = 20240601

// testFraction is the share of each class that goes to the test split.
const testFraction = 0.2

// ErrInvalid is wrapped by every error that reports a malformed Set or a
// malformed set file.
var ErrInvalid = errors.New("invalid dataset")

// Set is a labelled dataset held in memory. X is row-major and flat: sample
// i is X[i*Features : (i+1)*Features], and there are len(Y) samples, so
// len(X) == len(Y)*Features. Labels are 0..Classes-1. Name is the dataset's
// name (as in Names) and is kept by the partitions made from a set.
type Set struct {
	X        []float32
	Y        []int
	Classes  int
	Features int
	Name     string
}

// Rows is the number of samples; 0 for a nil set.
func (s *Set) Rows() int {
	if s == nil {
		return 0
	}
	return len(s.Y)
}

// Row returns the features of sample i, 0 <= i < Rows(). The slice aliases
// s.X.
func (s *Set) Row(i int) []float32 { return s.X[i*s.Features : (i+1)*s.Features] }

// ClassCounts returns how many samples carry each label, indexed by label.
// Labels outside 0..Classes-1 are not counted; a nil set has no counts.
func (s *Set) ClassCounts() []int {
	if s == nil {
		return nil
	}
	counts := make([]int, max(s.Classes, 0))
	for _, y := range s.Y {
		if y >= 0 && y < len(counts) {
			counts[y]++
		}
	}
	return counts
}

// Validate reports the first way in which s is malformed: fewer than two
// classes, no features, no samples, len(X) != len(Y)*Features, a label out
// of range, or a NaN or infinite feature. The error wraps ErrInvalid.
func (s *Set) Validate() error {
	switch {
	case s == nil:
		return fmt.Errorf("%w: nil set", ErrInvalid)
	case s.Classes < 2:
		return fmt.Errorf("%w: %q has %d classes, need at least 2", ErrInvalid, s.Name, s.Classes)
	case s.Features < 1:
		return fmt.Errorf("%w: %q has %d features", ErrInvalid, s.Name, s.Features)
	case len(s.Y) == 0:
		return fmt.Errorf("%w: %q has no samples", ErrInvalid, s.Name)
	case len(s.X)/s.Features != len(s.Y) || len(s.X)%s.Features != 0:
		return fmt.Errorf("%w: %q has %d values for %d samples of %d features", ErrInvalid, s.Name, len(s.X), len(s.Y), s.Features)
	}
	for i, y := range s.Y {
		if y < 0 || y >= s.Classes {
			return fmt.Errorf("%w: %q sample %d has label %d, want 0..%d", ErrInvalid, s.Name, i, y, s.Classes-1)
		}
	}
	for i, v := range s.X {
		if v-v != 0 { // NaN or ±Inf; cheaper than math.IsNaN || math.IsInf
			return fmt.Errorf("%w: %q sample %d feature %d is %v", ErrInvalid, s.Name, i/s.Features, i%s.Features, v)
		}
	}
	return nil
}

// subset returns a new set holding the given samples of s, in that order.
func (s *Set) subset(idx []int) *Set {
	out := &Set{
		X:        make([]float32, 0, len(idx)*s.Features),
		Y:        make([]int, 0, len(idx)),
		Classes:  s.Classes,
		Features: s.Features,
		Name:     s.Name,
	}
	for _, i := range idx {
		out.X = append(out.X, s.Row(i)...)
		out.Y = append(out.Y, s.Y[i])
	}
	return out
}

// Names lists the datasets Load knows, in a fixed order.
func Names() []string { return []string{"optdigits", "wdbc", "mnist", "adult"} }

// Load parses the named dataset from the embedded files and returns its
// train and test splits, scaled as the package documentation describes.
// Each call returns fresh sets that the caller owns. An unknown name is an
// error that lists the valid ones.
func Load(name string) (train, test *Set, err error) {
	switch name {
	case "optdigits":
		train, test, err = loadOptdigits()
	case "wdbc":
		train, test, err = loadWDBC()
	case "mnist":
		train, test, err = loadMNIST()
	case "adult":
		train, test, err = loadAdult()
	default:
		return nil, nil, fmt.Errorf("unknown dataset %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", name, err)
	}
	return train, test, nil
}

// stratifiedSplit returns the indices of the train and test samples: in each
// class a seeded shuffle sends round(testFraction*n) samples to test. Both
// index lists are sorted, so the sets keep the file's order.
func stratifiedSplit(y []int, classes int, seed int64) (train, test []int) {
	r := newRand(seed)
	byClass := make([][]int, classes)
	for i, c := range y {
		byClass[c] = append(byClass[c], i)
	}
	for _, idx := range byClass {
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		nTest := int(math.Round(testFraction * float64(len(idx))))
		test = append(test, idx[:nTest]...)
		train = append(train, idx[nTest:]...)
	}
	slices.Sort(train)
	slices.Sort(test)
	return train, test
}

// standardize z-scores the given columns of every set in place with the mean
// and (population) standard deviation that train has in those columns. A
// constant column is only centred.
func standardize(train *Set, cols []int, sets ...*Set) {
	for _, c := range cols {
		var sum, sq float64
		for i := range train.Rows() {
			sum += float64(train.X[i*train.Features+c])
		}
		mean := sum / float64(train.Rows())
		for i := range train.Rows() {
			d := float64(train.X[i*train.Features+c]) - mean
			sq += d * d
		}
		std := math.Sqrt(sq / float64(train.Rows()))
		if std == 0 {
			std = 1
		}
		for _, s := range sets {
			for i := range s.Rows() {
				v := &s.X[i*s.Features+c]
				*v = float32((float64(*v) - mean) / std)
			}
		}
	}
}
