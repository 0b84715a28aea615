package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// InitLayout makes round 0 of a job whose trainer is its own script: the
// server knows only the model's layout (the tensors' names and shapes that
// the sites' trainers agree on), never values a site chose, and
// initializes it as PyTorch initializes its layers by default, seeded by
// the job:
//
//   - a tensor of two or more dimensions (a Linear's or a convolution's
//     weight, [out, in, ...]) uniform in ±1/√fan_in, fan_in the product of
//     all but its first dimension: PyTorch's kaiming_uniform with a = √5;
//   - a one-dimensional "...bias" uniform in ±1/√fan_in of the weight
//     beside it (same name with "weight"), else 0;
//   - a one-dimensional "...weight" (a normalization layer's scale) 1;
//   - "...running_var" 1, "...running_mean" 0, anything else 0.
//
// An embedding's weight gets the first rule, not PyTorch's N(0, 1). A
// script's own initialization in its build() is not used: round 0 must not
// carry anything of one site's.
func InitLayout(layout []model.TensorShape, seed int64) (*model.Model, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6865617274682e31)) // "hearth.1"
	fanIn := map[string]int{}                                      // a weight's fan-in by its name's prefix
	m := &model.Model{Tensors: make([]model.Tensor, len(layout))}
	for i, t := range layout {
		n, err := model.ShapeSize(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("initial model: tensor %q: %w", t.Name, err)
		}
		if len(t.Shape) >= 2 {
			fanIn[strings.TrimSuffix(t.Name, "weight")] = n / t.Shape[0]
		}
		m.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: make([]float32, n)}
	}
	for i, t := range layout {
		data := m.Tensors[i].Data
		switch {
		case len(t.Shape) >= 2:
			uniform(rng, data, 1/math.Sqrt(float64(len(data)/t.Shape[0])))
		case strings.HasSuffix(t.Name, "running_var"), len(t.Shape) == 1 && strings.HasSuffix(t.Name, "weight"):
			for j := range data {
				data[j] = 1
			}
		case strings.HasSuffix(t.Name, "bias"):
			if f := fanIn[strings.TrimSuffix(t.Name, "bias")]; f > 0 {
				uniform(rng, data, 1/math.Sqrt(float64(f)))
			}
		}
	}
	return m, nil
}

// uniform fills dst uniformly in (-bound, bound).
func uniform(rng *rand.Rand, dst []float32, bound float64) {
	for i := range dst {
		dst[i] = float32((2*rng.Float64() - 1) * bound)
	}
}
