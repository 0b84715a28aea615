package quantize

import (
	"errors"
	"math"
	"testing"
)

// TestRoundTrip runs named vectors through every codec: float32 gives back
// the same bits; float16 and bfloat16 give back exactly the nearest value
// of their format (the test's own reference rounding), infinities and NaNs
// as such, and on the random vector each value within half a unit in the
// last place; the int8 codecs keep every value within scale/2 of its block,
// and refuse what they cannot encode.
func TestRoundTrip(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name    string
		x       []float32
		int8Err error // what the int8 codecs refuse the vector with, if they do
	}{
		{name: "zeros", x: make([]float32, 300)},
		{name: "negative zero", x: []float32{float32(math.Copysign(0, -1))}},
		{name: "ones", x: []float32{1, 1, 1, -1, -1}},
		{name: "largest finite", x: []float32{math.MaxFloat32, -math.MaxFloat32}, int8Err: ErrRange},
		{name: "int8's largest", x: []float32{MaxInt8Block, -MaxInt8Block, 1}},
		{name: "smallest normal", x: []float32{0x1p-126, -0x1p-126}},
		{name: "float32 subnormals", x: []float32{0x1p-149, 0x1p-140, -0x1.8p-130, 0x1.fffffcp-127}},
		{name: "float16 subnormals", x: []float32{0x1p-24, 0x3ffp-24, 0x1p-25, 0x1.8p-24, -0x5p-24}},
		{name: "float16 limits", x: []float32{65504, 65519, 65520, -1e5, 1e-8}},
		{name: "infinities", x: []float32{inf, -inf, 1}, int8Err: ErrNonFinite},
		{name: "NaN", x: []float32{2, nan, -nan}, int8Err: ErrNonFinite},
		{name: "random", x: randomVector(2, 5000, 0.05)},
		{name: "random bits", x: randomBits(3, 5000), int8Err: ErrNonFinite},
	}
	for _, c := range allCodecs(t) {
		for _, tt := range tests {
			t.Run(c.Name()+"/"+tt.name, func(t *testing.T) {
				if i8, ok := c.(Int8Block); ok {
					if tt.int8Err != nil {
						if _, err := c.Encode(nil, tt.x); !errors.Is(err, tt.int8Err) {
							t.Fatalf("Encode: %v, want %v", err, tt.int8Err)
						}
						return
					}
					enc, y := roundTrip(t, c, tt.x)
					checkInt8Bound(t, i8, tt.x, y, enc)
					return
				}
				_, y := roundTrip(t, c, tt.x)
				for i, x := range tt.x {
					checkValue(t, c.Name(), x, y[i], tt.name == "random")
				}
			})
		}
	}
}

// checkValue asserts what a float codec does to one value x, which came
// back as y; with ulp set, it also asserts the error bound of the package
// doc for normal values.
func checkValue(t *testing.T, codec string, x, y float32, ulp bool) {
	t.Helper()
	if isNaN32(x) {
		if !isNaN32(y) || math.Signbit(float64(x)) != math.Signbit(float64(y)) {
			t.Fatalf("%s: NaN %#08x came back as %v", codec, math.Float32bits(x), y)
		}
		return
	}
	var want float32
	halfULP := 0.0 // 0: no bound to check
	_, exp := math.Frexp(math.Abs(float64(x)))
	switch codec {
	case NameFloat32:
		want = x
	case NameFloat16:
		want = FromFloat16(nearestFloat16(x))
		if a := math.Abs(float64(x)); a >= 0x1p-14 && a < 65504 {
			halfULP = math.Ldexp(1, exp-1-11)
		}
	case NameBFloat16:
		want = FromBFloat16(nearestBFloat16(x))
		if a := math.Abs(float64(x)); a >= 0x1p-126 && a < 0x1.fep127 {
			halfULP = math.Ldexp(1, exp-1-8)
		}
	default:
		t.Fatalf("no check for %s", codec)
	}
	if math.Float32bits(y) != math.Float32bits(want) {
		t.Fatalf("%s: %v came back as %v, want %v", codec, x, y, want)
	}
	if ulp && halfULP > 0 && math.Abs(float64(x)-float64(y)) > halfULP {
		t.Fatalf("%s: %v came back as %v, error above half a unit in the last place (%v)", codec, x, y, halfULP)
	}
}
