package trainer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins"
	trainerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/trainer/v1"
)

// Bounds on what crosses the contract (go-plugin's limit is 4 MB a
// message; a site's records take a plugin's figures only this small).
const (
	// MaxArgs bounds the job's trainer arguments, in bytes.
	MaxArgs = 64 << 10
	// MaxLayoutTensors bounds the tensors of a trainer's model.
	MaxLayoutTensors = 65536
	// MaxLayoutBytes bounds the encoded size of a layout: its names and
	// shapes.
	MaxLayoutBytes = 2 << 20
	// MaxSamples bounds a sample count a trainer answers.
	MaxSamples = 1 << 40
	// MaxMetrics bounds the number of a round's metrics, MaxMetricName
	// the length of a metric's name in bytes.
	MaxMetrics    = 32
	MaxMetricName = 64
	// maxDims bounds a tensor's number of dimensions on the wire.
	maxDims = 32
	// maxNameLen bounds a tensor's name.
	maxNameLen = 1024
)

var (
	// ErrContract is a trainer's answer outside the contract (a layout
	// that does not decode, a count, loss, accuracy or metric beyond its
	// bounds); the error names what. A trained model's layout other than
	// the global's is model.ErrLayout.
	ErrContract = errors.New("trainer answer outside the contract")
	// ErrNonFinite is a model value a trainer wrote that is not a finite
	// float32.
	ErrNonFinite = errors.New("trainer wrote a value that is not finite")
	// ErrMemoryLimit is a trainer that reached its memory limit (its
	// address space, RLIMIT_AS): it said so, and ended its process.
	ErrMemoryLimit = errors.New("trainer reached its memory limit")
)

// littleEndian says whether this host stores float32 as the shared
// memory files hold them.
func littleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// layoutToWire is a layout on the wire, refused beyond the bounds.
func layoutToWire(layout []model.TensorShape) ([]*trainerv1.TensorShape, error) {
	if n := len(layout); n > MaxLayoutTensors {
		return nil, fmt.Errorf("trainer: a model of %d tensors, a trainer plugin takes at most %d", n, MaxLayoutTensors)
	}
	out := make([]*trainerv1.TensorShape, len(layout))
	size := 0
	for i, t := range layout {
		if len(t.Shape) > maxDims {
			return nil, fmt.Errorf("trainer: tensor %q has %d dimensions, at most %d", plugins.Clip(t.Name, 128), len(t.Shape), maxDims)
		}
		dims := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			dims[j] = int64(d)
		}
		if size += len(t.Name) + 10*len(dims) + 8; size > MaxLayoutBytes {
			return nil, fmt.Errorf("trainer: the model's layout is more than %d bytes", MaxLayoutBytes)
		}
		out[i] = &trainerv1.TensorShape{Name: t.Name, Shape: dims}
	}
	return out, nil
}

// layoutFromWire is a layout from the wire, with its number of values,
// refused when it is beyond the bounds, a dimension is not positive, a
// name is empty, repeated or not UTF-8, or the sizes do not multiply out
// (model.ShapeSize's bounds).
func layoutFromWire(w []*trainerv1.TensorShape) ([]model.TensorShape, int, error) {
	if len(w) == 0 {
		return nil, 0, fmt.Errorf("%w: an empty layout", ErrContract)
	}
	if len(w) > MaxLayoutTensors {
		return nil, 0, fmt.Errorf("%w: a layout of %d tensors (at most %d)", ErrContract, len(w), MaxLayoutTensors)
	}
	out := make([]model.TensorShape, len(w))
	seen := make(map[string]bool, len(w))
	total, size := 0, 0
	for i, t := range w {
		name := t.GetName()
		if name == "" || seen[name] || len(name) > maxNameLen || !utf8.ValidString(name) {
			return nil, 0, fmt.Errorf("%w: tensor %d of the layout: an empty, repeated, overlong or malformed name %q", ErrContract, i, plugins.Clip(name, 128))
		}
		seen[name] = true
		if len(t.GetShape()) > maxDims {
			return nil, 0, fmt.Errorf("%w: tensor %q: %d dimensions (at most %d)", ErrContract, plugins.Clip(name, 128), len(t.GetShape()), maxDims)
		}
		if size += len(name) + 10*len(t.GetShape()) + 8; size > MaxLayoutBytes {
			return nil, 0, fmt.Errorf("%w: a layout of more than %d bytes", ErrContract, MaxLayoutBytes)
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

// sameLayout says how a plugin's answered layout differs from want, nil
// when it does not.
func sameLayout(want []model.TensorShape, got []*trainerv1.TensorShape) error {
	if len(got) != len(want) {
		return fmt.Errorf("%w: the trainer wrote %d tensors, the model has %d", model.ErrLayout, len(got), len(want))
	}
	for i, t := range want {
		g := got[i]
		same := g.GetName() == t.Name && len(g.GetShape()) == len(t.Shape)
		for j := 0; same && j < len(t.Shape); j++ {
			same = g.GetShape()[j] == int64(t.Shape[j])
		}
		if !same {
			return fmt.Errorf("%w: the trainer wrote tensor %d as %q, the model has %q %v",
				model.ErrLayout, i, plugins.Clip(g.GetName(), 128), plugins.Clip(t.Name, 128), t.Shape)
		}
	}
	return nil
}

// finiteNonNegative says whether v is a finite number not below 0.
func finiteNonNegative(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

// resultFromWire is a round's outcome as a plugin answered it, refused
// beyond its bounds.
func resultFromWire(m *trainerv1.TrainResponse) (Result, error) {
	r := Result{Samples: int(m.GetSamples()), Loss: m.GetLoss()}
	switch {
	case m.GetSamples() < 1 || m.GetSamples() > MaxSamples:
		return Result{}, fmt.Errorf("%w: %d samples (want 1..%d)", ErrContract, m.GetSamples(), int64(MaxSamples))
	case !finiteNonNegative(m.GetLoss()):
		return Result{}, fmt.Errorf("%w: a training loss of %v", ErrContract, m.GetLoss())
	case len(m.GetMetrics()) > MaxMetrics:
		return Result{}, fmt.Errorf("%w: %d metrics (at most %d)", ErrContract, len(m.GetMetrics()), MaxMetrics)
	}
	if len(m.GetMetrics()) > 0 {
		r.Metrics = make(map[string]float64, len(m.GetMetrics()))
	}
	for k, v := range m.GetMetrics() {
		if k == "" || len(k) > MaxMetricName || !utf8.ValidString(k) {
			return Result{}, fmt.Errorf("%w: a metric named %q", ErrContract, plugins.Clip(k, MaxMetricName))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Result{}, fmt.Errorf("%w: metric %q is %v", ErrContract, k, v)
		}
		r.Metrics[k] = v
	}
	return r, nil
}

// resultToWire is r on the wire (the plugin side).
func resultToWire(r Result, layout []*trainerv1.TensorShape) *trainerv1.TrainResponse {
	return &trainerv1.TrainResponse{Layout: layout, Samples: int64(r.Samples), Loss: r.Loss, Metrics: r.Metrics}
}

// metricsFromWire is an evaluation as a plugin answered it, refused
// beyond its bounds.
func metricsFromWire(m *trainerv1.EvaluateResponse) (Metrics, error) {
	switch {
	case m.GetSamples() < 1 || m.GetSamples() > MaxSamples:
		return Metrics{}, fmt.Errorf("%w: %d samples evaluated (want 1..%d)", ErrContract, m.GetSamples(), int64(MaxSamples))
	case !finiteNonNegative(m.GetLoss()):
		return Metrics{}, fmt.Errorf("%w: an evaluation loss of %v", ErrContract, m.GetLoss())
	case !(m.GetAccuracy() >= 0 && m.GetAccuracy() <= 1):
		return Metrics{}, fmt.Errorf("%w: an accuracy of %v", ErrContract, m.GetAccuracy())
	}
	return Metrics{Samples: int(m.GetSamples()), Loss: m.GetLoss(), Accuracy: m.GetAccuracy()}, nil
}

// checkFinite refuses a model holding a value that is not finite.
func checkFinite(m *model.Model) error {
	for _, t := range m.Tensors {
		for j, v := range t.Data {
			if v-v != 0 {
				return fmt.Errorf("%w: tensor %q, value %d is %v", ErrNonFinite, plugins.Clip(t.Name, 128), j, v)
			}
		}
	}
	return nil
}

// layoutValues is the number of values of a layout that layoutFromWire
// or model.LayoutOf made.
func layoutValues(layout []model.TensorShape) int {
	n := 0
	for _, t := range layout {
		s, _ := model.ShapeSize(t.Shape)
		n += s
	}
	return n
}
