package filter

import (
	"fmt"
	"math"
	"sync"

	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// Gaussian configures gaussian_privacy, client-level differential privacy
// on the update: the whole diff is clipped to L2 norm ClipNorm (C) and
// N(0, (NoiseMultiplier*C)^2) noise is added to every value. NoiseMultiplier
// (sigma) is in [dp.MinNoiseMultiplier, dp.MaxNoiseMultiplier] and C finite
// and positive; both are required, for a default would be a guarantee
// nobody chose.
type Gaussian struct {
	NoiseMultiplier float64
	ClipNorm        float64
}

// Name returns "gaussian_privacy".
func (Gaussian) Name() string { return NameGaussianPrivacy }

// Validate checks the ranges above.
func (c Gaussian) Validate() error {
	if err := c.mechanism().Validate(); err != nil {
		return &ArgError{Filter: NameGaussianPrivacy, Arg: "noise_multiplier",
			Msg: fmt.Sprintf("%v is not a number from %v to %v", c.NoiseMultiplier, dp.MinNoiseMultiplier, dp.MaxNoiseMultiplier)}
	}
	if !positive(c.ClipNorm) {
		return &ArgError{Filter: NameGaussianPrivacy, Arg: "clip_norm", Msg: fmt.Sprintf("%v is not a finite positive number", c.ClipNorm)}
	}
	return nil
}

// mechanism is one application as the accountant sees it: one step at
// sampling rate 1.
func (c Gaussian) mechanism() dp.Mechanism {
	return dp.Mechanism{SamplingRate: 1, NoiseMultiplier: c.NoiseMultiplier, Steps: 1}
}

// Params are noise_multiplier and clip_norm.
func (c Gaussian) Params() map[string]string {
	return map[string]string{"noise_multiplier": formatFloat(c.NoiseMultiplier), "clip_norm": formatFloat(c.ClipNorm)}
}

func (c Gaussian) build(o *options) (Filter, error) {
	src := dp.NewSource()
	if o.seed != nil {
		src = dp.NewSeededSource(*o.seed)
	}
	return &gaussianFilter{cfg: c, src: src}, nil
}

var (
	_ Config = Gaussian{}
	_ Filter = (*gaussianFilter)(nil)
)

type gaussianFilter struct {
	cfg Gaussian
	mu  sync.Mutex // guards src
	src *dp.Source
}

func (f *gaussianFilter) Name() string              { return NameGaussianPrivacy }
func (f *gaussianFilter) Params() map[string]string { return f.cfg.Params() }

// Apply clips the diff to L2 norm C (dp.ClipFactor: the scale leaves room
// for float32 rounding), rounds it to float32, adds the noise tensor by
// tensor in the model's order (dp.Source.AddGaussian) and adds the global.
func (f *gaussianFilter) Apply(global, local *model.Model) (*model.Model, Report, error) {
	rep := Report{Filter: NameGaussianPrivacy, ClipNorm: f.cfg.ClipNorm}
	if err := CheckInputs(NameGaussianPrivacy, global, local); err != nil {
		return nil, rep, err
	}
	rep.Values = local.NumParams()
	var sum float64
	for i, t := range local.Tensors {
		g := globalData(global, i)
		for j, v := range t.Data {
			d := float64(v) - ref(g, j)
			sum += d * d
		}
	}
	rep.Norm = math.Sqrt(sum)
	scale := dp.ClipFactor(rep.Norm, f.cfg.ClipNorm)
	rep.NormClipped = scale < 1
	std := f.cfg.NoiseMultiplier * f.cfg.ClipNorm
	rep.NoiseStd = std
	out := newLike(local)
	for i, t := range local.Tensors {
		g, o := globalData(global, i), out.Tensors[i].Data
		for j, v := range t.Data {
			o[j] = float32((float64(v) - ref(g, j)) * scale)
		}
	}
	f.mu.Lock()
	for _, t := range out.Tensors {
		if err := f.src.AddGaussian(t.Data, std); err != nil { // cannot happen: std was validated
			f.mu.Unlock()
			return nil, rep, fmt.Errorf("%s: %w", NameGaussianPrivacy, err)
		}
	}
	f.mu.Unlock()
	for i, t := range out.Tensors {
		g := globalData(global, i)
		for j, d := range t.Data {
			y, err := toFloat32(NameGaussianPrivacy, t.Name, j, ref(g, j)+float64(d))
			if err != nil {
				return nil, rep, err
			}
			t.Data[j] = y
		}
	}
	m := f.cfg.mechanism()
	rep.Privacy = &Privacy{Accountant: AccountantRDP, Mechanism: &m}
	return out, rep, nil
}
