package job

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hearthfl/hearth/actors/learning/model"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// MaxModelParams bounds a model received from the wire (64 Mi parameters).
const MaxModelParams = 64 << 20

// ToWire converts a model to its wire form (float32, little-endian).
func ToWire(m *model.Model) *hearthv1.Model {
	out := &hearthv1.Model{Tensors: make([]*hearthv1.Tensor, len(m.Tensors))}
	for i, t := range m.Tensors {
		shape := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = int64(d)
		}
		data := make([]byte, 4*len(t.Data))
		for j, v := range t.Data {
			binary.LittleEndian.PutUint32(data[4*j:], math.Float32bits(v))
		}
		out.Tensors[i] = &hearthv1.Tensor{Name: t.Name, Shape: shape, Data: data}
	}
	return out
}

// FromWire converts a wire model and validates it: shapes match the data,
// names are unique, values are finite, and the size is bounded.
func FromWire(w *hearthv1.Model) (*model.Model, error) {
	if w == nil || len(w.Tensors) == 0 {
		return nil, fmt.Errorf("model: no tensors")
	}
	m := &model.Model{Tensors: make([]model.Tensor, len(w.Tensors))}
	total := 0
	for i, t := range w.Tensors {
		n := 1
		shape := make([]int, len(t.Shape))
		for j, d := range t.Shape {
			if d < 1 || d > MaxModelParams {
				return nil, fmt.Errorf("model: tensor %q: dimension %d out of range", t.Name, d)
			}
			shape[j] = int(d)
			n *= int(d)
			if n > MaxModelParams {
				return nil, fmt.Errorf("model: tensor %q larger than %d parameters", t.Name, MaxModelParams)
			}
		}
		if len(t.Data) != 4*n {
			return nil, fmt.Errorf("model: tensor %q: %d data bytes for shape %v (want %d)", t.Name, len(t.Data), t.Shape, 4*n)
		}
		if total += n; total > MaxModelParams {
			return nil, fmt.Errorf("model: more than %d parameters", MaxModelParams)
		}
		data := make([]float32, n)
		for j := range data {
			data[j] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*j:]))
		}
		m.Tensors[i] = model.Tensor{Name: t.Name, Shape: shape, Data: data}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return m, nil
}

// InlineLimit is the largest model (in bytes of float32 data) sent inline in
// one envelope; larger models travel as chunked streams.
const InlineLimit = 1 << 20

// LayoutToWire converts a model layout to its wire form.
func LayoutToWire(l []model.TensorShape) *hearthv1.ModelLayout {
	out := &hearthv1.ModelLayout{}
	for _, t := range l {
		shape := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int64(d)
		}
		out.Tensors = append(out.Tensors, &hearthv1.TensorLayout{Name: t.Name, Shape: shape})
	}
	return out
}

// LayoutFromWire converts and checks a wire layout; it returns the layout and
// its size in bytes.
func LayoutFromWire(w *hearthv1.ModelLayout) ([]model.TensorShape, int64, error) {
	if w == nil || len(w.Tensors) == 0 {
		return nil, 0, fmt.Errorf("model layout: no tensors")
	}
	var out []model.TensorShape
	total := int64(0)
	for _, t := range w.Tensors {
		shape := make([]int, len(t.Shape))
		n := int64(1)
		for i, d := range t.Shape {
			if d < 1 || d > 1<<30 {
				return nil, 0, fmt.Errorf("model layout: tensor %q: dimension %d out of range", t.Name, d)
			}
			shape[i] = int(d)
			if n *= d; n > 1<<30 {
				return nil, 0, fmt.Errorf("model layout: tensor %q too large", t.Name)
			}
		}
		if total += n; total > 1<<30 {
			return nil, 0, fmt.Errorf("model layout: more than %d parameters", 1<<30)
		}
		out = append(out, model.TensorShape{Name: t.Name, Shape: shape})
	}
	return out, 4 * total, nil
}

// LayoutDigest is the SHA-256 of a model's layout: each tensor's name and
// shape, length-prefixed, in order. Sites report it for their trainer's
// model when they join a job that brings its own (JobJoined.layout_sha256).
func LayoutDigest(layout []model.TensorShape) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	put := func(n uint64) {
		binary.BigEndian.PutUint64(b[:], n)
		h.Write(b[:])
	}
	put(uint64(len(layout)))
	for _, t := range layout {
		put(uint64(len(t.Name)))
		h.Write([]byte(t.Name))
		put(uint64(len(t.Shape)))
		for _, d := range t.Shape {
			put(uint64(d))
		}
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
