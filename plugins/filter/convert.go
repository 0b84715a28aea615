package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins"
	filterv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/filter/v1"
)

// Bounds on the contract's metadata, which travels in gRPC messages
// (go-plugin's limit is 4 MB a message).
const (
	// MaxLayoutTensors bounds the tensors of a model a plugin filters.
	MaxLayoutTensors = 65536
	// MaxLayoutBytes bounds the encoded size of a layout: its names and
	// shapes.
	MaxLayoutBytes = 2 << 20
	// maxDims bounds a tensor's number of dimensions on the wire.
	maxDims = 32
)

// ErrContract is a plugin's answer outside the contract (a report beyond
// its bounds, a layout that does not decode); the error names what.
// Output layouts and values have their own reasons (model.ErrLayout,
// actors/learning/filter.ErrNonFinite).
var ErrContract = errors.New("plugin filter answer outside the contract")

// littleEndian says whether this host stores float32 as the shared
// memory files hold them.
func littleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// directionToWire is d's wire value.
func directionToWire(d Direction) (filterv1.Direction, bool) {
	switch d {
	case DirectionIn:
		return filterv1.Direction_DIRECTION_IN, true
	case DirectionOut:
		return filterv1.Direction_DIRECTION_OUT, true
	}
	return filterv1.Direction_DIRECTION_UNSPECIFIED, false
}

// directionFromWire is the direction w stands for.
func directionFromWire(w filterv1.Direction) (Direction, bool) {
	switch w {
	case filterv1.Direction_DIRECTION_IN:
		return DirectionIn, true
	case filterv1.Direction_DIRECTION_OUT:
		return DirectionOut, true
	}
	return 0, false
}

// layoutToWire is m's layout on the wire, refused beyond the bounds.
func layoutToWire(m *model.Model) ([]*filterv1.TensorShape, error) {
	if n := len(m.Tensors); n > MaxLayoutTensors {
		return nil, fmt.Errorf("filter: a model of %d tensors, a plugin filter takes at most %d", n, MaxLayoutTensors)
	}
	out := make([]*filterv1.TensorShape, len(m.Tensors))
	size := 0
	for i, t := range m.Tensors {
		if len(t.Shape) > maxDims {
			return nil, fmt.Errorf("filter: tensor %q has %d dimensions, a plugin filter takes at most %d", plugins.Clip(t.Name, 128), len(t.Shape), maxDims)
		}
		dims := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			dims[j] = int64(d)
		}
		if size += len(t.Name) + 10*len(dims) + 8; size > MaxLayoutBytes {
			return nil, fmt.Errorf("filter: the model's layout is more than %d bytes, beyond what a plugin filter takes", MaxLayoutBytes)
		}
		out[i] = &filterv1.TensorShape{Name: t.Name, Shape: dims}
	}
	return out, nil
}

// layoutFromWire is a layout from the wire, with its number of values,
// refused when a dimension is not positive, a name is empty or repeated,
// or the sizes do not multiply out (model.ShapeSize's bounds).
func layoutFromWire(w []*filterv1.TensorShape) ([]model.TensorShape, int, error) {
	if len(w) > MaxLayoutTensors {
		return nil, 0, fmt.Errorf("%w: a layout of %d tensors (at most %d)", ErrContract, len(w), MaxLayoutTensors)
	}
	out := make([]model.TensorShape, len(w))
	seen := make(map[string]bool, len(w))
	total := 0
	for i, t := range w {
		name := t.GetName()
		if name == "" || seen[name] {
			return nil, 0, fmt.Errorf("%w: tensor %d of the layout: an empty or repeated name %q", ErrContract, i, plugins.Clip(name, 128))
		}
		seen[name] = true
		if len(t.GetShape()) > maxDims {
			return nil, 0, fmt.Errorf("%w: tensor %q: %d dimensions (at most %d)", ErrContract, plugins.Clip(name, 128), len(t.GetShape()), maxDims)
		}
		shape := make([]int, len(t.GetShape()))
		for j, d := range t.GetShape() {
			if d < 1 || d > math.MaxInt32 {
				return nil, 0, fmt.Errorf("%w: tensor %q: dimension %d is %d", ErrContract, plugins.Clip(name, 128), j, d)
			}
			shape[j] = int(d)
		}
		n, err := model.ShapeSize(shape)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: tensor %q: %w", ErrContract, plugins.Clip(name, 128), err)
		}
		if total += n; total > math.MaxInt32*4 {
			return nil, 0, fmt.Errorf("%w: a layout of more than %d values", ErrContract, math.MaxInt32*4)
		}
		out[i] = model.TensorShape{Name: name, Shape: shape}
	}
	return out, total, nil
}

// sameLayout says how a plugin's output layout differs from the input's
// (local), nil when it does not.
func sameLayout(local *model.Model, got []*filterv1.TensorShape) error {
	if len(got) != len(local.Tensors) {
		return fmt.Errorf("%w: the plugin wrote %d tensors, the model has %d", model.ErrLayout, len(got), len(local.Tensors))
	}
	for i, t := range local.Tensors {
		g := got[i]
		same := g.GetName() == t.Name && len(g.GetShape()) == len(t.Shape)
		for j := 0; same && j < len(t.Shape); j++ {
			same = g.GetShape()[j] == int64(t.Shape[j])
		}
		if !same {
			return fmt.Errorf("%w: the plugin wrote tensor %d as %q %v, the model has %q %v",
				model.ErrLayout, i, plugins.Clip(g.GetName(), 128), clipDims(g.GetShape()), plugins.Clip(t.Name, 128), t.Shape)
		}
	}
	return nil
}

// clipName bounds a tensor's name for a message.
func clipName(s string) string { return plugins.Clip(s, 128) }

// clipDims bounds a plugin's dimensions for a message.
func clipDims(d []int64) []int64 {
	if len(d) > 8 {
		return d[:8]
	}
	return d
}

// reportToWire is r on the wire.
func reportToWire(r Report) *filterv1.Report {
	return &filterv1.Report{Zeroed: int64(r.Zeroed), Clipped: int64(r.Clipped), NoiseStd: r.NoiseStd, Mask: r.Mask}
}

// reportFromWire is the report a plugin answered for local, refused
// beyond its bounds, as an actors/learning/filter Report.
func reportFromWire(m *filterv1.Report, local *model.Model) (learnfilter.Report, error) {
	values := local.NumParams()
	rep := learnfilter.Report{Filter: NamePlugin, Values: values}
	switch {
	case m.GetZeroed() < 0 || m.GetZeroed() > int64(values):
		return rep, fmt.Errorf("%w: zeroed %d of a model of %d values", ErrContract, m.GetZeroed(), values)
	case m.GetClipped() < 0 || m.GetClipped() > int64(values):
		return rep, fmt.Errorf("%w: clipped %d of a model of %d values", ErrContract, m.GetClipped(), values)
	case !(m.GetNoiseStd() >= 0) || math.IsInf(m.GetNoiseStd(), 1):
		return rep, fmt.Errorf("%w: a noise scale of %v", ErrContract, m.GetNoiseStd())
	case len(m.GetMask()) != 0 && len(m.GetMask()) != len(local.Tensors):
		return rep, fmt.Errorf("%w: a mask of %d tensors for a model of %d", ErrContract, len(m.GetMask()), len(local.Tensors))
	}
	rep.Zeroed, rep.Clipped, rep.NoiseStd = int(m.GetZeroed()), int(m.GetClipped()), m.GetNoiseStd()
	if mask := m.GetMask(); slices.Contains(mask, true) {
		rep.Mask = slices.Clone(mask)
		for i, excluded := range mask {
			if excluded {
				rep.Excluded = append(rep.Excluded, local.Tensors[i].Name)
			}
		}
	}
	return rep, nil
}
