package quantize

import (
	"math"
	"math/rand/v2"
	"testing"
)

// allCodecs returns every codec ByName knows.
func allCodecs(t testing.TB) []Codec {
	t.Helper()
	var out []Codec
	for _, name := range Names() {
		c, err := ByName(name)
		if err != nil {
			t.Fatalf("ByName(%q): %v", name, err)
		}
		out = append(out, c)
	}
	return out
}

// roundTrip encodes and decodes src with c, failing the test on an error.
func roundTrip(t testing.TB, c Codec, src []float32) ([]byte, []float32) {
	t.Helper()
	enc, err := c.Encode(nil, src)
	if err != nil {
		t.Fatalf("%s: Encode: %v", c.Name(), err)
	}
	if len(enc) != c.EncodedSize(len(src)) {
		t.Fatalf("%s: %d values encoded to %d bytes, EncodedSize says %d", c.Name(), len(src), len(enc), c.EncodedSize(len(src)))
	}
	dec, err := c.Decode(nil, enc)
	if err != nil {
		t.Fatalf("%s: Decode: %v", c.Name(), err)
	}
	if len(dec) != len(src) {
		t.Fatalf("%s: %d values came back as %d", c.Name(), len(src), len(dec))
	}
	return enc, dec
}

// randomVector returns n values like a model update's: mostly normal with
// standard deviation sd, with a few outliers 100 times larger.
func randomVector(seed uint64, n int, sd float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	v := make([]float32, n)
	for i := range v {
		x := r.NormFloat64() * sd
		if r.IntN(1000) == 0 {
			x *= 100
		}
		v[i] = float32(x)
	}
	return v
}

// nearest is the test's own rounding to a 16-bit format, independent of
// the codec's bit tricks: the encoding of the finite format value nearest
// to x (ties to the even encoding), found by binary search over the
// positive encodings 0..maxFinite, whose values decode increases; a
// magnitude at or past the midpoint between the largest finite value and
// next (the value the format would have one step further) is an infinity,
// infBits. x must not be a NaN.
func nearest(x float32, decode func(uint16) float32, maxFinite, infBits uint16, next float64) uint16 {
	sign := uint16(0)
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	a := math.Abs(float64(x))
	if a >= (float64(decode(maxFinite))+next)/2 {
		return sign | infBits
	}
	lo, hi := uint16(0), maxFinite // decode(lo) <= a < decode(hi+1) after the search
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if float64(decode(mid)) <= a {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == maxFinite { // a in [max, midpoint): max
		return sign | lo
	}
	below, above := a-float64(decode(lo)), float64(decode(lo+1))-a
	switch {
	case below < above, below == above && lo&1 == 0:
		return sign | lo
	default:
		return sign | (lo + 1)
	}
}

// nearestFloat16 and nearestBFloat16 are nearest for the two formats.
func nearestFloat16(x float32) uint16 { return nearest(x, FromFloat16, 0x7bff, 0x7c00, 65536) }

func nearestBFloat16(x float32) uint16 { return nearest(x, FromBFloat16, 0x7f7f, 0x7f80, 0x1p128) }

// isNaN32 reports whether x is a NaN.
func isNaN32(x float32) bool { return x != x }

// randomBits returns n float32 values of random bits, with their exponents
// drawn so that every range (subnormal, normal, near the formats' limits,
// special) is well covered.
func randomBits(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n)
	for i := range v {
		bits := r.Uint32()
		if r.IntN(2) == 0 { // concentrate around float16's range: exponents 127-30..127+20
			exp := uint32(97 + r.IntN(51))
			bits = bits&0x807fffff | exp<<23
		}
		v[i] = math.Float32frombits(bits)
	}
	return v
}
