package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Streams of the seeded PCG generator, so that Init and Train draw from
// unrelated sequences for the same Seed.
const (
	streamInit  = 0x1f0e3c5a7b9d2468
	streamTrain = 0x6a09e667f3bcc908
)

// sgemm computes c = alpha*op(a)*op(b) + beta*c with gonum's pure-Go
// float32 BLAS (which splits large products across goroutines).
func sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// dense is one fully connected layer; w and b alias a model's tensors.
type dense struct {
	in, out int
	w       []float32 // in x out, row-major
	b       []float32 // out
}

// network is a model bound to its layers. The last layer is the output:
// one logit (sigmoid) when binary, otherwise one per class (softmax); the
// layers before it apply ReLU.
type network struct {
	layers []dense
	binary bool
}

// weightName and biasName name the tensors of layer i.
func weightName(i int) string { return fmt.Sprintf("dense%d/weight", i) }
func biasName(i int) string   { return fmt.Sprintf("dense%d/bias", i) }

// layout returns a zero model with the tensors spec prescribes for data of
// the given shape.
func layout(spec Spec, features, classes int) (*model.Model, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if features < 1 || features > maxFeatures || classes < 2 || classes > maxClasses {
		return nil, fmt.Errorf("data with %d features and %d classes cannot be trained on (want 1..%d features, 2..%d classes)",
			features, classes, maxFeatures, maxClasses)
	}
	w := spec.widths(features, classes)
	m := &model.Model{}
	total := 0
	for i := range len(w) - 1 {
		if total += w[i]*w[i+1] + w[i+1]; total > 1<<28 {
			return nil, fmt.Errorf("%w: more than %d parameters", ErrSpec, 1<<28)
		}
		m.Tensors = append(m.Tensors,
			model.Tensor{Name: weightName(i), Shape: []int{w[i], w[i+1]}, Data: make([]float32, w[i]*w[i+1])},
			model.Tensor{Name: biasName(i), Shape: []int{w[i+1]}, Data: make([]float32, w[i+1])},
		)
	}
	return m, nil
}

// Init returns the starting model of spec for data with the given number of
// features and classes, a function of spec.Seed alone. Biases start at
// zero; a logreg's weights start at zero (its loss is convex); an mlp's
// hidden weights are drawn He-uniform and its output weights
// Glorot-uniform.
func Init(spec Spec, features, classes int) (*model.Model, error) {
	if spec.Kind == KindNoop {
		return initNoop(spec)
	}
	m, err := layout(spec, features, classes)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if spec.Kind == "logreg" {
		return m, nil
	}
	r := rand.New(rand.NewPCG(uint64(spec.Seed), streamInit))
	layers := len(m.Tensors) / 2
	for i := range layers {
		w := m.Tensors[2*i]
		in, out := w.Shape[0], w.Shape[1]
		limit := math.Sqrt(6 / float64(in)) // He-uniform, for ReLU
		if i == layers-1 {
			limit = math.Sqrt(6 / float64(in+out)) // Glorot-uniform
		}
		for j := range w.Data {
			w.Data[j] = float32((2*r.Float64() - 1) * limit)
		}
	}
	return m, nil
}

// bind checks that m is a valid model with the layout spec prescribes for
// data of the given shape, and returns the network over m's tensors.
func bind(spec Spec, m *model.Model, features, classes int) (*network, error) {
	want, err := layout(spec, features, classes)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := want.SameLayout(m); err != nil {
		return nil, fmt.Errorf("model does not fit spec %q and data of %d features, %d classes: %w", spec.Kind, features, classes, err)
	}
	n := &network{binary: classes == 2}
	for i := 0; i < len(m.Tensors); i += 2 {
		w, b := m.Tensors[i], m.Tensors[i+1]
		n.layers = append(n.layers, dense{in: w.Shape[0], out: w.Shape[1], w: w.Data, b: b.Data})
	}
	return n, nil
}

// outputs is the width of the output layer.
func (n *network) outputs() int { return n.layers[len(n.layers)-1].out }

// buffers holds the activations and gradients of one batch of up to rows
// samples, reused across batches.
type buffers struct {
	rows int
	act  [][]float32 // act[i]: output of layer i (after ReLU for hidden layers), rows x out
	grad [][]float32 // grad[i]: loss gradient wrt layer i's pre-activation, rows x out
}

func (n *network) newBuffers(rows int) *buffers {
	b := &buffers{rows: rows}
	for _, l := range n.layers {
		b.act = append(b.act, make([]float32, rows*l.out))
		b.grad = append(b.grad, make([]float32, rows*l.out))
	}
	return b
}

// forward computes the logits of the rows x in batch x into buf.act, and
// returns them.
func (n *network) forward(x []float32, rows int, buf *buffers) []float32 {
	in := x
	for i, l := range n.layers {
		z := buf.act[i][:rows*l.out]
		for r := range rows {
			copy(z[r*l.out:(r+1)*l.out], l.b)
		}
		sgemm(blas.NoTrans, blas.NoTrans, rows, l.out, l.in, 1, in, l.in, l.w, l.out, 1, z, l.out)
		if i < len(n.layers)-1 {
			for j, v := range z {
				if v < 0 {
					z[j] = 0
				}
			}
		}
		in = z
	}
	return in
}

// lossGrad turns the logits of a batch into the summed cross-entropy of
// labels y, and writes scale times d(loss of each sample)/d(logit) into
// grad: scale 1/len(y) gives the gradient of the mean loss, scale 1 each
// sample's own. It also counts the correct predictions.
func (n *network) lossGrad(logits []float32, y []int, grad []float32, scale float32) (loss float64, correct int) {
	if n.binary {
		for r, label := range y {
			z := float64(logits[r])
			t := float64(label)
			loss += math.Max(z, 0) - z*t + math.Log1p(math.Exp(-math.Abs(z)))
			p := 1 / (1 + math.Exp(-z))
			grad[r] = float32(p-t) * scale
			if (z > 0) == (label == 1) {
				correct++
			}
		}
		return loss, correct
	}
	k := n.outputs()
	for r, label := range y {
		z := logits[r*k : (r+1)*k]
		g := grad[r*k : (r+1)*k]
		best, zmax := 0, z[0]
		for c, v := range z {
			if v > zmax {
				best, zmax = c, v
			}
		}
		sum := 0.0
		for c, v := range z {
			e := math.Exp(float64(v - zmax))
			g[c] = float32(e)
			sum += e
		}
		loss += math.Log(sum) - float64(z[label]-zmax)
		for c := range g {
			g[c] = g[c] / float32(sum) * scale
		}
		g[label] -= scale
		if best == label {
			correct++
		}
	}
	return loss, correct
}

// backward propagates buf.grad of the output layer (set by lossGrad) down
// the network for the batch x, writing each layer's weight and bias
// gradients (without the L2 term) into gw and gb.
func (n *network) backward(x []float32, rows int, buf *buffers, gw, gb [][]float32) {
	n.deltas(x, rows, buf)
	n.paramGrads(x, rows, buf, gw, gb, false)
}

// input is what layer i reads for the batch x: x itself, or the previous
// layer's activations.
func (n *network) input(i int, x []float32, rows int, buf *buffers) []float32 {
	if i == 0 {
		return x[:rows*n.layers[0].in]
	}
	return buf.act[i-1][:rows*n.layers[i].in]
}

// deltas propagates buf.grad of the output layer down the network, so that
// buf.grad[i] holds the loss gradient wrt layer i's pre-activation for
// every layer. Row r of every buf.grad[i] depends on sample r alone.
func (n *network) deltas(x []float32, rows int, buf *buffers) {
	for i := len(n.layers) - 1; i > 0; i-- {
		l := n.layers[i]
		dz := buf.grad[i][:rows*l.out]
		in := n.input(i, x, rows, buf)
		// Gradient wrt the previous layer's output, then through its ReLU.
		prev := buf.grad[i-1][:rows*l.in]
		sgemm(blas.NoTrans, blas.Trans, rows, l.in, l.out, 1, dz, l.out, l.w, l.out, 0, prev, l.in)
		for j, a := range in {
			if a <= 0 {
				prev[j] = 0
			}
		}
	}
}

// paramGrads writes (or, with accumulate, adds) the weight and bias
// gradients of the batch, summed over its rows, from the deltas in
// buf.grad into gw and gb.
func (n *network) paramGrads(x []float32, rows int, buf *buffers, gw, gb [][]float32, accumulate bool) {
	var beta float32
	if accumulate {
		beta = 1
	}
	for i, l := range n.layers {
		dz := buf.grad[i][:rows*l.out]
		in := n.input(i, x, rows, buf)
		sgemm(blas.Trans, blas.NoTrans, l.in, l.out, rows, 1, in, l.in, dz, l.out, beta, gw[i], l.out)
		db := gb[i]
		if !accumulate {
			clear(db)
		}
		for r := range rows {
			row := dz[r*l.out : (r+1)*l.out]
			for j, v := range row {
				db[j] += v
			}
		}
	}
}
