package quantize

import (
	"fmt"
	"math"
)

// Effect is what a codec does to a vector, for a job's summary.
type Effect struct {
	Codec string // the codec's canonical name
	// Values is the length of the vector, Bytes the size of its encoding
	// (chunk by chunk) and BytesPerValue their ratio (4 for float32).
	Values        int
	Bytes         int64
	BytesPerValue float64
	// MaxAbsError is max |x[i] - y[i]| over the vector x and its round trip
	// y; RelL2Error is ||x - y||_2 / ||x||_2 (0 for a zero vector that comes
	// back as zeros). Both are +Inf where a value overflowed the format
	// (float16 above 65504).
	MaxAbsError float64
	RelL2Error  float64
}

// Measure encodes values with c in chunks of chunkValues (the stream's
// chunk, 262,144 values for bus/stream's 1 MiB), decodes every chunk and
// reports the size and the error. values must be finite (a model is:
// model.Validate refuses NaNs and infinities); a NaN or an infinity is
// refused with ErrNonFinite, and so is whatever the codec refuses.
func Measure(c Codec, values []float32, chunkValues int) (Effect, error) {
	if chunkValues <= 0 {
		return Effect{}, fmt.Errorf("measure %s: chunk of %d values", c.Name(), chunkValues)
	}
	e := Effect{Codec: c.Name(), Values: len(values)}
	enc := make([]byte, 0, c.EncodedSize(min(chunkValues, len(values))))
	dec := make([]float32, 0, min(chunkValues, len(values)))
	var errSq, normSq float64
	for k := 0; k < len(values); k += chunkValues {
		chunk := values[k:min(k+chunkValues, len(values))]
		var err error
		if enc, err = c.Encode(enc[:0], chunk); err != nil {
			return Effect{}, fmt.Errorf("measure %s: chunk at value %d: %w", c.Name(), k, err)
		}
		if dec, err = c.Decode(dec[:0], enc); err != nil {
			return Effect{}, fmt.Errorf("measure %s: chunk at value %d: %w", c.Name(), k, err)
		}
		e.Bytes += int64(len(enc))
		for i, x := range chunk {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return Effect{}, fmt.Errorf("%w: measure %s: value %d is %v", ErrNonFinite, c.Name(), k+i, x)
			}
			d := math.Abs(float64(x) - float64(dec[i]))
			e.MaxAbsError = max(e.MaxAbsError, d)
			errSq += d * d
			normSq += float64(x) * float64(x)
		}
	}
	if len(values) > 0 {
		e.BytesPerValue = float64(e.Bytes) / float64(len(values))
	}
	switch {
	case normSq > 0:
		e.RelL2Error = math.Sqrt(errSq / normSq)
	case errSq > 0:
		e.RelL2Error = math.Inf(1)
	}
	return e, nil
}

// String reads e.g. "int8-block64: 1.0625 B/value, max |error| 0.0039, relative L2 error 0.0021".
func (e Effect) String() string {
	return fmt.Sprintf("%s: %.5g B/value, max |error| %.3g, relative L2 error %.3g", e.Codec, e.BytesPerValue, e.MaxAbsError, e.RelL2Error)
}
