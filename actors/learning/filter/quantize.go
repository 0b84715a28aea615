package filter

import (
	"fmt"
	"math"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/quantize"
)

// ChunkValues is the number of values quantize encodes at a time: bus/stream's
// default chunk of 1 MiB of float32, the unit in which an encoded update
// will travel. Every block size of the int8 codecs divides it, so the
// blocks fall on the same values whatever the chunking.
const ChunkValues = 1 << 18

// Quantize configures quantize: the diff, as float32 in the model's order,
// is encoded with Codec (a canonical name of actors/learning/quantize:
// float32, float16, bfloat16, int8-blockB) chunk by chunk and decoded
// again, so that the filtered model carries the precision the wire will.
type Quantize struct {
	Codec string
}

// Name returns "quantize".
func (Quantize) Name() string { return NameQuantize }

// Validate checks that Codec is a codec's canonical name.
func (c Quantize) Validate() error {
	if _, err := quantize.ByName(c.Codec); err != nil {
		return &ArgError{Filter: NameQuantize, Arg: "codec", Msg: fmt.Sprintf("%q is not a codec (want one of %v, or int8-blockB for B a power of two from %d to %d)",
			c.Codec, quantize.Names(), quantize.MinBlock, quantize.MaxBlock)}
	}
	return nil
}

// Params are the codec's name.
func (c Quantize) Params() map[string]string { return map[string]string{"codec": c.Codec} }

func (c Quantize) build(*options) (Filter, error) {
	codec, err := quantize.ByName(c.Codec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", NameQuantize, err)
	}
	return &quantizeFilter{cfg: c, codec: codec}, nil
}

var (
	_ Config = Quantize{}
	_ Filter = (*quantizeFilter)(nil)
)

type quantizeFilter struct {
	cfg   Quantize
	codec quantize.Codec
}

func (f *quantizeFilter) Name() string              { return NameQuantize }
func (f *quantizeFilter) Params() map[string]string { return f.cfg.Params() }

// Apply encodes and decodes the float32 diff and returns global plus the
// decoded diff; Report.Effect has the encoded size and the error against
// the float32 diff. A diff beyond float32's range, or beyond the codec's
// (float16 above 65504: it would decode as an infinity), is ErrNonFinite,
// and so is whatever the codec refuses.
func (f *quantizeFilter) Apply(global, local *model.Model) (*model.Model, Report, error) {
	rep := Report{Filter: NameQuantize}
	if err := CheckInputs(NameQuantize, global, local); err != nil {
		return nil, rep, err
	}
	n := local.NumParams()
	rep.Values = n
	out := newLike(local)
	// The float32 diff goes into out first; chunks are gathered from it
	// across tensor boundaries, and each decoded chunk replaces its part.
	for i, t := range local.Tensors {
		g, o := globalData(global, i), out.Tensors[i].Data
		for j, v := range t.Data {
			d, err := toFloat32(NameQuantize, t.Name, j, float64(v)-ref(g, j))
			if err != nil {
				return nil, rep, fmt.Errorf("%w (the diff is beyond float32)", err)
			}
			o[j] = d
		}
	}
	eff := quantize.Effect{Codec: f.codec.Name(), Values: n}
	var errSq, normSq float64
	chunk := make([]float32, 0, min(n, ChunkValues))
	enc := make([]byte, 0, f.codec.EncodedSize(cap(chunk)))
	dec := make([]float32, 0, cap(chunk))
	flat := flatView(out)
	for start := 0; start < n; start += ChunkValues {
		chunk = flat.gather(chunk[:0], start, min(ChunkValues, n-start))
		var err error
		if enc, err = f.codec.Encode(enc[:0], chunk); err != nil {
			return nil, rep, fmt.Errorf("%s: %w: %w", NameQuantize, ErrNonFinite, err)
		}
		eff.Bytes += int64(len(enc))
		if dec, err = f.codec.Decode(dec[:0], enc); err != nil {
			return nil, rep, fmt.Errorf("%s: %w", NameQuantize, err)
		}
		for k, y := range dec {
			x := float64(chunk[k])
			if y-y != 0 {
				t, j := flat.at(start + k)
				return nil, rep, fmt.Errorf("%s: %w: tensor %q value %d: the diff %v is beyond %s's range", NameQuantize, ErrNonFinite, out.Tensors[t].Name, j, x, f.codec.Name())
			}
			e := math.Abs(x - float64(y))
			eff.MaxAbsError = max(eff.MaxAbsError, e)
			errSq += e * e
			normSq += x * x
		}
		flat.scatter(dec, start)
	}
	if n > 0 {
		eff.BytesPerValue = float64(eff.Bytes) / float64(n)
	}
	if normSq > 0 {
		eff.RelL2Error = math.Sqrt(errSq / normSq)
	}
	rep.Effect = &eff
	for i, t := range out.Tensors {
		g, l := globalData(global, i), local.Tensors[i].Data
		for j, d := range t.Data {
			if float64(d) == float64(l[j])-ref(g, j) { // the codec carried the diff exactly
				t.Data[j] = l[j]
				continue
			}
			y, err := toFloat32(NameQuantize, t.Name, j, ref(g, j)+float64(d))
			if err != nil {
				return nil, rep, err
			}
			t.Data[j] = y
		}
	}
	return out, rep, nil
}

// flat is a model's values seen as one sequence in the model's order.
type flat struct {
	m     *model.Model
	start []int // start[i] is tensor i's first position
}

func flatView(m *model.Model) flat {
	f := flat{m: m, start: make([]int, len(m.Tensors))}
	n := 0
	for i, t := range m.Tensors {
		f.start[i] = n
		n += len(t.Data)
	}
	return f
}

// at is the tensor and index of position p.
func (f flat) at(p int) (tensor, j int) {
	for i := len(f.start) - 1; i >= 0; i-- {
		if f.start[i] <= p && len(f.m.Tensors[i].Data) > 0 {
			return i, p - f.start[i]
		}
	}
	return 0, p
}

// gather appends the n values from position p.
func (f flat) gather(dst []float32, p, n int) []float32 {
	for i, t := range f.m.Tensors {
		lo, hi := f.start[i], f.start[i]+len(t.Data)
		if hi <= p || lo >= p+n {
			continue
		}
		dst = append(dst, t.Data[max(p, lo)-lo:min(p+n, hi)-lo]...)
	}
	return dst
}

// scatter writes src over the values from position p.
func (f flat) scatter(src []float32, p int) {
	n := len(src)
	for i, t := range f.m.Tensors {
		lo, hi := f.start[i], f.start[i]+len(t.Data)
		if hi <= p || lo >= p+n {
			continue
		}
		copy(t.Data[max(p, lo)-lo:min(p+n, hi)-lo], src[max(p, lo)-p:])
	}
}
