// Package model holds Hearth's unit of learning: an ordered list of named
// float32 tensors, and WeightedSum, the streaming FedAvg accumulator.
//
// A Model is plain data with no behaviour attached, so that any trainer
// (built-in or plugin) and any wire format can produce and consume it. The
// methods here only copy, count and check: Validate says whether a model is
// well formed and SameLayout whether two models can be averaged.
package model

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalid is wrapped by every error that reports a malformed model: a
// shape that disagrees with its data, a duplicate or empty name, a NaN or
// an infinity.
var ErrInvalid = errors.New("invalid model")

// ErrLayout is wrapped by every error that reports two models whose tensor
// names, shapes or order differ.
var ErrLayout = errors.New("model layout mismatch")

// maxParams bounds the number of parameters of one model (4 GiB of float32)
// so that size arithmetic cannot overflow on hostile shapes.
const maxParams = 1 << 30

// Tensor is one named, dense, row-major float32 array. The product of Shape
// is len(Data); a Shape of length zero is a scalar holding one value.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Model is an ordered list of tensors whose names are unique. The order is
// part of the layout: two models average only if names, shapes and order
// all agree.
type Model struct {
	Tensors []Tensor
}

// Clone returns a deep copy: no slice is shared with m. Cloning a nil model
// returns nil.
func (m *Model) Clone() *Model {
	if m == nil {
		return nil
	}
	out := &Model{Tensors: make([]Tensor, len(m.Tensors))}
	for i, t := range m.Tensors {
		out.Tensors[i] = Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
	}
	return out
}

// NumParams is the total number of float32 values held, len(Data) summed
// over the tensors.
func (m *Model) NumParams() int {
	if m == nil {
		return 0
	}
	n := 0
	for _, t := range m.Tensors {
		n += len(t.Data)
	}
	return n
}

// Bytes is the size of the parameters on the wire: 4 * NumParams.
func (m *Model) Bytes() int { return 4 * m.NumParams() }

// Tensor returns the tensor with the given name, or false if there is none.
// The returned pointer aliases m.
func (m *Model) Tensor(name string) (*Tensor, bool) {
	if m == nil {
		return nil, false
	}
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i], true
		}
	}
	return nil, false
}

// Validate reports the first way in which m is malformed: a nil model, an
// empty or duplicate name, a non-positive dimension, a shape whose product
// differs from len(Data), or a NaN or infinite value. The error wraps
// ErrInvalid and names the tensor.
func (m *Model) Validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil model", ErrInvalid)
	}
	seen := make(map[string]bool, len(m.Tensors))
	total := 0
	for i, t := range m.Tensors {
		if t.Name == "" {
			return fmt.Errorf("%w: tensor %d has an empty name", ErrInvalid, i)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: duplicate tensor name %q", ErrInvalid, t.Name)
		}
		seen[t.Name] = true
		n, err := ShapeSize(t.Shape)
		if err != nil {
			return fmt.Errorf("%w: tensor %q: %w", ErrInvalid, t.Name, err)
		}
		if n != len(t.Data) {
			return fmt.Errorf("%w: tensor %q: shape %v holds %d values, data has %d", ErrInvalid, t.Name, t.Shape, n, len(t.Data))
		}
		if total += n; total > maxParams {
			return fmt.Errorf("%w: more than %d parameters", ErrInvalid, maxParams)
		}
		for j, v := range t.Data {
			if v-v != 0 { // NaN or ±Inf; cheaper than math.IsNaN || math.IsInf
				return fmt.Errorf("%w: tensor %q: value %d is %v", ErrInvalid, t.Name, j, v)
			}
		}
	}
	return nil
}

// SameLayout reports whether o has the same tensor names and shapes as m, in
// the same order. The error wraps ErrLayout and names the first difference.
// Data lengths and values are not compared; see Validate.
func (m *Model) SameLayout(o *Model) error {
	if m == nil || o == nil {
		return fmt.Errorf("%w: nil model", ErrLayout)
	}
	for i := range min(len(m.Tensors), len(o.Tensors)) {
		a, b := m.Tensors[i], o.Tensors[i]
		if a.Name != b.Name {
			return fmt.Errorf("%w: tensor %d is named %q here and %q there", ErrLayout, i, a.Name, b.Name)
		}
		if !slices.Equal(a.Shape, b.Shape) {
			return fmt.Errorf("%w: tensor %q has shape %v here and %v there", ErrLayout, a.Name, a.Shape, b.Shape)
		}
	}
	if len(m.Tensors) != len(o.Tensors) {
		return fmt.Errorf("%w: %d tensors here and %d there", ErrLayout, len(m.Tensors), len(o.Tensors))
	}
	return nil
}

// ShapeSize is the number of values a tensor of the given shape holds: the
// product of its dimensions, 1 for a scalar. It refuses non-positive
// dimensions and products beyond the size one model may have.
func ShapeSize(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is not positive", shape, d)
		}
		if n > maxParams/d {
			return 0, fmt.Errorf("shape %v: more than %d values", shape, maxParams)
		}
		n *= d
	}
	return n, nil
}
