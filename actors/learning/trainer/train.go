package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// momentum is the heavy-ball coefficient of the optimizer.
const momentum = 0.9

// evalChunk is the number of samples Evaluate pushes through at once.
const evalChunk = 512

// Result summarizes one Train call.
type Result struct {
	// Samples is the number of local samples trained on, the weight of this
	// update in FedAvg.
	Samples int
	// Loss is the mean cross-entropy over the last epoch, each batch's loss
	// taken before its step (the L2 penalty excluded). Under DP-SGD it is
	// that of the samples drawn, and not covered by the privacy guarantee.
	Loss float64
	// DP is the mechanism DP-SGD ran (sampling rate, noise multiplier,
	// steps), for the site's accountant to add; nil without Spec.DP.
	DP *dp.Mechanism
}

// Metrics is the quality of a model on a dataset.
type Metrics struct {
	Samples  int     // number of samples evaluated
	Loss     float64 // mean cross-entropy
	Accuracy float64 // share of samples whose most likely class is the label
}

// Train runs spec.Epochs epochs of mini-batch SGD with momentum over data,
// starting from m, and returns the trained model; m itself is left
// untouched. Each epoch visits the samples in an order drawn from
// spec.Seed, so equal inputs give equal outputs; with spec.DP it runs
// DP-SGD instead (DPSpec), whose sampling and noise are secret and so
// differ from call to call unless DPSpec.Seed is set. Train checks the
// spec, the data, and that m has the layout spec prescribes for data's
// features and classes; it stops between batches with ctx's error once
// ctx is done, and reports a model that diverged to NaN or infinity as an
// error.
func Train(ctx context.Context, spec Spec, m *model.Model, data *dataset.Set) (*model.Model, Result, error) {
	if ctx == nil {
		return nil, Result{}, fmt.Errorf("train: nil context")
	}
	if err := data.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("train: %w", err)
	}
	if spec.Kind == KindNoop {
		return trainNoop(spec, m, data)
	}
	out := m.Clone()
	net, err := bind(spec, out, data.Features, data.Classes)
	if err != nil {
		return nil, Result{}, fmt.Errorf("train: %w", err)
	}
	if spec.DP != nil {
		return trainDPSGD(ctx, spec, out, net, data)
	}
	rows, features, outputs := data.Rows(), data.Features, net.outputs()
	batch := min(spec.BatchSize, rows)
	buf := net.newBuffers(batch)
	xb := make([]float32, batch*features)
	yb := make([]int, batch)
	opt := newSGD(net, spec)
	perm := make([]int, rows)
	for i := range perm {
		perm[i] = i
	}
	r := rand.New(rand.NewPCG(uint64(spec.Seed), streamTrain))
	var loss float64
	for range spec.Epochs {
		r.Shuffle(rows, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		loss = 0
		for start := 0; start < rows; start += batch {
			if err := ctx.Err(); err != nil {
				return nil, Result{}, fmt.Errorf("train: %w", err)
			}
			idx := perm[start:min(start+batch, rows)]
			n := len(idx)
			for k, i := range idx {
				copy(xb[k*features:(k+1)*features], data.Row(i))
				yb[k] = data.Y[i]
			}
			logits := net.forward(xb[:n*features], n, buf)
			l, _ := net.lossGrad(logits, yb[:n], buf.grad[len(net.layers)-1][:n*outputs], 1/float32(n))
			loss += l
			net.backward(xb[:n*features], n, buf, opt.gw, opt.gb)
			opt.step(net)
		}
	}
	if err := out.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("train: diverged (learning rate %v too high?): %w", spec.LearningRate, err)
	}
	return out, Result{Samples: rows, Loss: loss / float64(rows)}, nil
}

// Evaluate measures m on data: mean cross-entropy and accuracy. It checks
// the spec, the data and m's layout as Train does.
func Evaluate(spec Spec, m *model.Model, data *dataset.Set) (Metrics, error) {
	if err := data.Validate(); err != nil {
		return Metrics{}, fmt.Errorf("evaluate: %w", err)
	}
	if spec.Kind == KindNoop {
		return Metrics{Samples: data.Rows()}, nil
	}
	net, err := bind(spec, m, data.Features, data.Classes)
	if err != nil {
		return Metrics{}, fmt.Errorf("evaluate: %w", err)
	}
	rows, features, outputs := data.Rows(), data.Features, net.outputs()
	chunk := min(evalChunk, rows)
	buf := net.newBuffers(chunk)
	var loss float64
	correct := 0
	for start := 0; start < rows; start += chunk {
		n := min(chunk, rows-start)
		logits := net.forward(data.X[start*features:(start+n)*features], n, buf)
		l, c := net.lossGrad(logits, data.Y[start:start+n], buf.grad[len(net.layers)-1][:n*outputs], 1/float32(n))
		loss += l
		correct += c
	}
	return Metrics{Samples: rows, Loss: loss / float64(rows), Accuracy: float64(correct) / float64(rows)}, nil
}

// sgd holds the gradients and momentum buffers of one Train call.
type sgd struct {
	lr, l2 float32
	gw, gb [][]float32 // gradients, per layer
	vw, vb [][]float32 // momentum buffers, per layer
}

func newSGD(net *network, spec Spec) *sgd {
	o := &sgd{lr: float32(spec.LearningRate), l2: float32(spec.L2)}
	for _, l := range net.layers {
		o.gw = append(o.gw, make([]float32, len(l.w)))
		o.vw = append(o.vw, make([]float32, len(l.w)))
		o.gb = append(o.gb, make([]float32, len(l.b)))
		o.vb = append(o.vb, make([]float32, len(l.b)))
	}
	return o
}

// step applies one momentum update from the gradients in o.gw and o.gb,
// adding the L2 term for the weights.
func (o *sgd) step(net *network) {
	for i, l := range net.layers {
		momentumUpdate(l.w, o.gw[i], o.vw[i], o.lr, o.l2)
		momentumUpdate(l.b, o.gb[i], o.vb[i], o.lr, 0)
	}
}

// momentumUpdate moves the parameters p by one heavy-ball step:
// v = momentum*v + g + l2*p, then p -= lr*v.
func momentumUpdate(p, g, v []float32, lr, l2 float32) {
	for j := range p {
		v[j] = momentum*v[j] + g[j] + l2*p[j]
		p[j] -= lr * v[j]
	}
}
