package dataset

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// adultColumns is the number of comma-separated fields in an adult.data
// line: 14 attributes and the income label.
const adultColumns = 15

// Columns of adult.data used as numbers.
const (
	adultAge          = 0
	adultFnlwgt       = 2
	adultEducationNum = 4
	adultCapitalGain  = 10
	adultCapitalLoss  = 11
	adultHoursPerWeek = 12
)

// adultNumeric lists the numeric columns of adult.data, in the order they
// take in a feature vector.
func adultNumeric() [6]int {
	return [6]int{adultAge, adultFnlwgt, adultEducationNum, adultCapitalGain, adultCapitalLoss, adultHoursPerWeek}
}

// adultTransform is the fixed transform a numeric column gets before
// z-scoring: fnlwgt (a census weight spanning four orders of magnitude) is
// log-transformed, capital gain and loss (mostly zero, heavy-tailed)
// log1p-transformed, the rest kept. It reports false for a value the
// transform cannot take.
func adultTransform(col int, v float64) (float64, bool) {
	switch {
	case v < 0 || math.IsNaN(v) || math.IsInf(v, 0):
		return 0, false
	case col == adultFnlwgt:
		return math.Log(v), v > 0
	case col == adultCapitalGain || col == adultCapitalLoss:
		return math.Log1p(v), true
	}
	return v, true
}

// adultCategorical lists the categorical columns of adult.data: workclass,
// education, marital-status, occupation, relationship, race, sex and
// native-country.
func adultCategorical() [8]int { return [8]int{1, 3, 5, 6, 7, 8, 9, 13} }

// adultMissing is how adult.data writes an unknown value.
const adultMissing = "?"

// parseAdult splits adult.data into fields per row and the income labels
// (1 for >50K). Numeric fields are checked here.
func parseAdult() (rows [][]string, y []int, err error) {
	err = eachLine("adult.data", func(_ int, line string) error {
		fields := strings.Split(line, ",")
		if len(fields) != adultColumns {
			return fmt.Errorf("%d fields, want %d", len(fields), adultColumns)
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		switch strings.TrimSuffix(fields[adultColumns-1], ".") {
		case ">50K":
			y = append(y, 1)
		case "<=50K":
			y = append(y, 0)
		default:
			return fmt.Errorf("income %q, want >50K or <=50K", fields[adultColumns-1])
		}
		for _, col := range adultNumeric() {
			v, err := strconv.ParseFloat(fields[col], 64)
			if _, ok := adultTransform(col, v); err != nil || !ok {
				return fmt.Errorf("column %d: %q is not a valid value", col, fields[col])
			}
		}
		rows = append(rows, fields)
		return nil
	})
	return rows, y, err
}

// adultEncoder one-hot encodes categorical columns over the categories of
// the train split; its offsets place each column's block after the numeric
// features.
type adultEncoder struct {
	categories [8][]string // indexed like adultCategorical()
	offsets    [8]int
	features   int
}

// newAdultEncoder collects, per categorical column, the sorted distinct
// values seen in the given (train) rows, leaving out the missing marker.
func newAdultEncoder(rows [][]string) *adultEncoder {
	e := &adultEncoder{features: len(adultNumeric())}
	for k, col := range adultCategorical() {
		seen := map[string]bool{}
		for _, r := range rows {
			if v := r[col]; v != adultMissing && !seen[v] {
				seen[v] = true
				e.categories[k] = append(e.categories[k], v)
			}
		}
		slices.Sort(e.categories[k])
		e.offsets[k] = e.features
		e.features += len(e.categories[k])
	}
	return e
}

// encode turns rows into a set: transformed numerics first, in adultNumeric()
// order, then one one-hot block per categorical column. The numerics are
// left unstandardized.
func (e *adultEncoder) encode(rows [][]string, y []int) *Set {
	s := &Set{X: make([]float32, len(rows)*e.features), Y: y, Classes: 2, Features: e.features, Name: "adult"}
	for i, r := range rows {
		x := s.Row(i)
		for j, col := range adultNumeric() {
			v, _ := strconv.ParseFloat(r[col], 64) // checked by parseAdult
			v, _ = adultTransform(col, v)
			x[j] = float32(v)
		}
		for k, col := range adultCategorical() {
			if c, ok := slices.BinarySearch(e.categories[k], r[col]); ok {
				x[e.offsets[k]+c] = 1
			}
		}
	}
	return s
}

func loadAdult() (train, test *Set, err error) {
	rows, y, err := parseAdult()
	if err != nil {
		return nil, nil, err
	}
	trainIdx, testIdx := stratifiedSplit(y, 2, SplitSeed)
	pick := func(idx []int) ([][]string, []int) {
		r, l := make([][]string, len(idx)), make([]int, len(idx))
		for k, i := range idx {
			r[k], l[k] = rows[i], y[i]
		}
		return r, l
	}
	trainRows, trainY := pick(trainIdx)
	testRows, testY := pick(testIdx)
	enc := newAdultEncoder(trainRows)
	train, test = enc.encode(trainRows, trainY), enc.encode(testRows, testY)
	numeric := make([]int, len(adultNumeric()))
	for j := range numeric {
		numeric[j] = j
	}
	standardize(train, numeric, train, test)
	return train, test, nil
}
