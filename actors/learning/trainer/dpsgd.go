package trainer

import (
	"context"
	"fmt"
	"math"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// maxClipNorm bounds DPSpec.ClipNorm, far above any useful gradient norm.
const maxClipNorm = 1e6

// DPSpec makes Train run DP-SGD (Abadi et al. 2016) with record-level
// differential privacy, a guarantee about each sample of the local data:
//
//   - Sampling: each step is a Poisson sample of the local data, every
//     sample included independently with probability q = BatchSize/N
//     (1 when BatchSize ≥ N), the sampling dp's accountant assumes. An
//     epoch is ceil(N/BatchSize) steps, so that it visits N samples in
//     expectation; a step whose sample is empty still steps (on noise).
//   - Clipping: each sample's gradient, over all parameters together, is
//     scaled to L2 norm at most ClipNorm (dp.ClipFactor). The per-sample
//     norms come from the activations and deltas of the batch (a dense
//     layer's per-sample weight gradient is the outer product a⊗δ, of
//     norm |a|·|δ|), without materializing per-sample gradients.
//   - Noise: the clipped gradients are summed, N(0, (NoiseMultiplier ·
//     ClipNorm)²) noise is added to every coordinate, and the result is
//     divided by the expected batch size q·N. The momentum and the L2
//     penalty then act on that noisy gradient and the parameters only.
//
// The sample and the noise come from a dp.Source seeded from crypto/rand,
// never from Spec.Seed, which the job manifest makes public; Spec.Seed
// still makes the initial model. Result.DP reports the mechanism run,
// which the site's dp.Accountant adds. Result.Loss is computed on the
// private samples and is not covered by the guarantee.
type DPSpec struct {
	// NoiseMultiplier σ: the noise's standard deviation over ClipNorm, in
	// [dp.MinNoiseMultiplier, dp.MaxNoiseMultiplier].
	NoiseMultiplier float64
	// ClipNorm C: the largest L2 norm of one sample's gradient, in
	// (0, 1e6].
	ClipNorm float64
	// Seed, when not nil, makes the sampling and the noise a function of
	// it: for tests and for replaying a run only. Anyone who knows it can
	// subtract the noise, so it never comes from a job manifest.
	Seed *[32]byte
}

// validate reports the first thing wrong with d; the error wraps ErrSpec.
func (d *DPSpec) validate() error {
	switch {
	case !(d.NoiseMultiplier >= dp.MinNoiseMultiplier && d.NoiseMultiplier <= dp.MaxNoiseMultiplier):
		return fmt.Errorf("%w: dp noise multiplier %v is not in [%g, %g]", ErrSpec, d.NoiseMultiplier, dp.MinNoiseMultiplier, dp.MaxNoiseMultiplier)
	case !(d.ClipNorm > 0 && d.ClipNorm <= maxClipNorm):
		return fmt.Errorf("%w: dp clip norm %v is not in (0, %g]", ErrSpec, d.ClipNorm, float64(maxClipNorm))
	}
	return nil
}

// source returns the randomness of one Train call.
func (d *DPSpec) source() *dp.Source {
	if d.Seed != nil {
		return dp.NewSeededSource(*d.Seed)
	}
	return dp.NewSource()
}

// DPMechanism is the mechanism that Train with spec (which must have DP
// set) runs on rows local samples: q = min(1, BatchSize/rows), and
// Epochs·ceil(rows/BatchSize) steps. A site can ask its accountant about
// it before it trains.
func DPMechanism(spec Spec, rows int) (dp.Mechanism, error) {
	if spec.DP == nil {
		return dp.Mechanism{}, fmt.Errorf("%w: no dp section", ErrSpec)
	}
	if err := spec.Validate(); err != nil {
		return dp.Mechanism{}, err
	}
	if rows < 1 {
		return dp.Mechanism{}, fmt.Errorf("dp mechanism of %d samples", rows)
	}
	perEpoch := (rows + spec.BatchSize - 1) / spec.BatchSize
	m := dp.Mechanism{
		SamplingRate:    min(1, float64(spec.BatchSize)/float64(rows)),
		NoiseMultiplier: spec.DP.NoiseMultiplier,
		Steps:           int64(spec.Epochs) * int64(perEpoch),
	}
	return m, m.Validate()
}

// trainDPSGD is Train for a spec with DP set: out is m's clone bound to
// net; see DPSpec for the algorithm.
func trainDPSGD(ctx context.Context, spec Spec, out *model.Model, net *network, data *dataset.Set) (*model.Model, Result, error) {
	mech, err := DPMechanism(spec, data.Rows())
	if err != nil {
		return nil, Result{}, fmt.Errorf("train: %w", err)
	}
	rows, features, outputs := data.Rows(), data.Features, net.outputs()
	chunk := min(spec.BatchSize, rows)
	buf := net.newBuffers(chunk)
	xb := make([]float32, chunk*features)
	yb := make([]int, chunk)
	opt := newSGD(net, spec)
	src := spec.DP.source()
	q := mech.SamplingRate
	expected := q * float64(rows)
	std := spec.DP.NoiseMultiplier * spec.DP.ClipNorm / expected
	perEpoch := int(mech.Steps) / spec.Epochs
	var sample []int
	var loss float64
	seen := 0
	for range spec.Epochs {
		loss, seen = 0, 0
		for range perEpoch {
			if err := ctx.Err(); err != nil {
				return nil, Result{}, fmt.Errorf("train: %w", err)
			}
			for i := range opt.gw {
				clear(opt.gw[i])
				clear(opt.gb[i])
			}
			sample = src.Sample(sample[:0], rows, q)
			for start := 0; start < len(sample); start += chunk {
				idx := sample[start:min(start+chunk, len(sample))]
				n := len(idx)
				for k, i := range idx {
					copy(xb[k*features:(k+1)*features], data.Row(i))
					yb[k] = data.Y[i]
				}
				x := xb[:n*features]
				logits := net.forward(x, n, buf)
				l, _ := net.lossGrad(logits, yb[:n], buf.grad[len(net.layers)-1][:n*outputs], 1)
				loss += l
				net.deltas(x, n, buf)
				net.clipRows(x, n, buf, spec.DP.ClipNorm, 1/expected)
				net.paramGrads(x, n, buf, opt.gw, opt.gb, true)
			}
			seen += len(sample)
			for i := range opt.gw {
				// std is finite and non-negative (validated), so these cannot fail.
				_ = src.AddGaussian(opt.gw[i], std)
				_ = src.AddGaussian(opt.gb[i], std)
			}
			opt.step(net)
		}
	}
	if err := out.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("train: diverged (learning rate %v too high?): %w", spec.LearningRate, err)
	}
	res := Result{Samples: rows, DP: &mech}
	if seen > 0 {
		res.Loss = loss / float64(seen)
	}
	return out, res, nil
}

// clipRows scales row r of every layer's deltas in buf.grad by
// scale·dp.ClipFactor(|g_r|, c), where g_r is sample r's gradient over
// all parameters: |g_r|² = Σ over layers of (|a_r|² + 1)·|δ_r|², a_r the
// layer's input row and δ_r its delta row (the weight gradient a_r⊗δ_r
// has norm |a_r|·|δ_r|, the bias gradient is δ_r). Every parameter
// gradient is linear in the delta rows, so after the scaling each sample
// contributes at most scale·c to the batch's gradient.
func (n *network) clipRows(x []float32, rows int, buf *buffers, c, scale float64) {
	for r := range rows {
		var sq float64
		for i, l := range n.layers {
			in := n.input(i, x, rows, buf)[r*l.in : (r+1)*l.in]
			d := buf.grad[i][r*l.out : (r+1)*l.out]
			sq += (sumSquares(in) + 1) * sumSquares(d)
		}
		f := float32(scale * dp.ClipFactor(math.Sqrt(sq), c))
		for i, l := range n.layers {
			d := buf.grad[i][r*l.out : (r+1)*l.out]
			for j := range d {
				d[j] *= f
			}
		}
	}
}

// sumSquares is Σ v², accumulated in float64.
func sumSquares(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}
