package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrEmpty is returned by WeightedSum.Mean when nothing has been added.
var ErrEmpty = errors.New("weighted sum is empty")

// WeightedSum is the streaming FedAvg accumulator: it keeps sum(w_i * m_i)
// and sum(w_i) in float64, one model's worth of memory however many models
// are added, so an aggregator can fold updates in as they arrive and drop
// each one at once. Every Add is checked against the layout given to
// NewWeightedSum; a refused Add leaves the sum unchanged.
//
// A WeightedSum is not safe for concurrent use; the aggregator that owns it
// serializes Adds.
type WeightedSum struct {
	layout []Tensor // names and shapes only; Data is nil
	acc    []float64
	count  int
	total  float64
	err    error // a malformed layout, reported by every Add and Mean
}

// NewWeightedSum returns an empty accumulator for models with the layout of
// the given one (its names, shapes and order; its values are ignored). A nil
// or malformed layout makes every later Add and Mean fail with the reason.
func NewWeightedSum(layout *Model) *WeightedSum {
	w := &WeightedSum{}
	if layout == nil {
		w.err = fmt.Errorf("%w: nil layout", ErrInvalid)
		return w
	}
	n := 0
	w.layout = make([]Tensor, len(layout.Tensors))
	for i, t := range layout.Tensors {
		size, err := ShapeSize(t.Shape)
		if err != nil {
			w.err = fmt.Errorf("%w: layout tensor %q: %w", ErrInvalid, t.Name, err)
			return w
		}
		if n += size; n > maxParams {
			w.err = fmt.Errorf("%w: layout has more than %d parameters", ErrInvalid, maxParams)
			return w
		}
		w.layout[i] = Tensor{Name: t.Name, Shape: slices.Clone(t.Shape)}
	}
	w.acc = make([]float64, n)
	return w
}

// Add folds weight*m into the sum. It refuses, leaving the sum unchanged, a
// model that is malformed (see Model.Validate, which also refuses NaN and
// infinite values), a model whose layout differs from the accumulator's, and
// a weight that is not a finite positive number. FedAvg weights by the
// number of samples a site trained on.
func (w *WeightedSum) Add(m *Model, weight float64) error {
	if w.err != nil {
		return fmt.Errorf("add to weighted sum: %w", w.err)
	}
	if math.IsNaN(weight) || math.IsInf(weight, 0) || weight <= 0 {
		return fmt.Errorf("add to weighted sum: weight %v is not a finite positive number", weight)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("add to weighted sum: %w", err)
	}
	if err := (&Model{Tensors: w.layout}).SameLayout(m); err != nil {
		return fmt.Errorf("add to weighted sum: %w", err)
	}
	total := w.total + weight
	if math.IsInf(total, 0) {
		return fmt.Errorf("add to weighted sum: total weight overflows")
	}
	off := 0
	for _, t := range m.Tensors {
		acc := w.acc[off : off+len(t.Data)]
		for i, v := range t.Data {
			acc[i] += weight * float64(v)
		}
		off += len(t.Data)
	}
	w.total = total
	w.count++
	return nil
}

// Count is the number of models added so far.
func (w *WeightedSum) Count() int { return w.count }

// TotalWeight is the sum of the weights added so far.
func (w *WeightedSum) TotalWeight() float64 { return w.total }

// Mean returns a new model, in the accumulator's layout, holding
// sum(w_i * m_i) / sum(w_i) rounded to float32. It fails with ErrEmpty if
// nothing has been added, and if a mean is not a finite float32 (huge
// weights times huge values overflow the float64 sums to infinity, or to
// NaN when they overflow both ways): a non-finite model never comes out.
func (w *WeightedSum) Mean() (*Model, error) {
	if w.err != nil {
		return nil, fmt.Errorf("weighted mean: %w", w.err)
	}
	if w.count == 0 {
		return nil, fmt.Errorf("weighted mean: %w", ErrEmpty)
	}
	out := &Model{Tensors: make([]Tensor, len(w.layout))}
	off := 0
	for i, t := range w.layout {
		n, _ := ShapeSize(t.Shape) // checked by NewWeightedSum
		data := make([]float32, n)
		for j := range data {
			v := float32(w.acc[off+j] / w.total)
			if v-v != 0 { // ±Inf, or NaN from sums that overflowed both ways
				return nil, fmt.Errorf("weighted mean: tensor %q value %d is %v: the sum overflowed", t.Name, j, v)
			}
			data[j] = v
		}
		off += n
		out.Tensors[i] = Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: data}
	}
	return out, nil
}
