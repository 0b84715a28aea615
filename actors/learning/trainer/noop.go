package trainer

import (
	"fmt"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// KindNoop is a trainer that learns nothing: its model is one tensor of
// Spec.Params zeros and training returns the model unchanged. It exists to
// measure what the platform itself costs (moving and aggregating models of
// any size) with no training in the way.
const KindNoop = "noop"

// NoopValues writes a fixed pattern of values into a noop model: small,
// of varied magnitude from one block of 64 to the next, as a trained
// model's are. A benchmark's global model holds them rather than zeros, so
// that what the platform does to values (quantizing them for the wire,
// adding them up) costs what it costs on a real model's.
func NoopValues(dst []float32) {
	for i := range dst {
		v := float32(int(uint32(i)*2654435761>>16)%2001-1000) / 1000 // in [-1, 1]
		dst[i] = v * float32(1+(i>>6)%7) / 7
	}
}

// noopTensor is the noop model's only tensor.
const noopTensor = "noop/weights"

// maxNoopParams is the largest noop model: 4 GiB of float32.
const maxNoopParams = 1 << 30

func (s Spec) validateNoop() error {
	if len(s.Hidden) != 0 {
		return fmt.Errorf("%w: noop takes no hidden layers, got %v", ErrSpec, s.Hidden)
	}
	if s.Params < 1 || s.Params > maxNoopParams {
		return fmt.Errorf("%w: noop needs params in 1..%d, got %d", ErrSpec, maxNoopParams, s.Params)
	}
	return nil
}

// Layout is the shape of the model spec trains on data with the given
// number of features and classes, without allocating it.
func Layout(spec Spec, features, classes int) ([]model.TensorShape, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Kind == KindNoop {
		return []model.TensorShape{{Name: noopTensor, Shape: []int{spec.Params}}}, nil
	}
	if features < 1 || features > maxFeatures || classes < 2 || classes > maxClasses {
		return nil, fmt.Errorf("data with %d features and %d classes cannot be trained on", features, classes)
	}
	w := spec.widths(features, classes)
	var out []model.TensorShape
	for i := range len(w) - 1 {
		out = append(out, model.TensorShape{Name: weightName(i), Shape: []int{w[i], w[i+1]}},
			model.TensorShape{Name: biasName(i), Shape: []int{w[i+1]}})
	}
	return out, nil
}

func initNoop(spec Spec) (*model.Model, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return &model.Model{Tensors: []model.Tensor{{Name: noopTensor, Shape: []int{spec.Params}, Data: make([]float32, spec.Params)}}}, nil
}

func trainNoop(spec Spec, m *model.Model, data *dataset.Set) (*model.Model, Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("train: %w", err)
	}
	if len(m.Tensors) != 1 || m.Tensors[0].Name != noopTensor || len(m.Tensors[0].Data) != spec.Params {
		return nil, Result{}, fmt.Errorf("train: %w: not a noop model of %d parameters", model.ErrLayout, spec.Params)
	}
	return m.Clone(), Result{Samples: data.Rows()}, nil
}
