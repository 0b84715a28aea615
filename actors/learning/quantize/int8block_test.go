package quantize

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

// blockScales returns the scale of every block of an int8 chunk.
func blockScales(enc []byte, block int) []float32 {
	var s []float32
	for len(enc) > 0 {
		s = append(s, math.Float32frombits(binary.LittleEndian.Uint32(enc)))
		enc = enc[min(len(enc), 4+block):]
	}
	return s
}

// checkInt8Bound asserts the package doc's promise for every value of x
// and its round trip y: the block's scale s is max|x|/127 rounded up by at
// most 2^-16 of it, or by at most 2^-149 (float32's smallest subnormal),
// and |x - y| <= s/2 exactly. Every product and difference here is exact in
// float64.
func checkInt8Bound(t *testing.T, c Int8Block, x, y []float32, enc []byte) {
	t.Helper()
	b := c.BlockSize()
	for k, s := range blockScales(enc, b) {
		blk := x[k*b : min(len(x), (k+1)*b)]
		top := 0.0
		for _, v := range blk {
			top = max(top, math.Abs(float64(v)))
		}
		if s64 := float64(s); 127*s64 < top || 127*s64 > max(top+top*0x1p-16, top+127*0x1p-149) {
			t.Fatalf("block %d: scale %v for max|x| %v: 127*scale is not in [max, max*(1+2^-16)] nor [max, max+127*2^-149]", k, s, top)
		}
		for i, v := range blk {
			j := k*b + i
			if err := math.Abs(float64(v) - float64(y[j])); err > float64(s)/2 {
				t.Fatalf("value %d: %v came back as %v, error %v above scale/2 = %v", j, v, y[j], err, float64(s)/2)
			}
		}
	}
}

func TestInt8BlockErrorBound(t *testing.T) {
	for _, size := range []int{64, 256, 4096} {
		c, err := NewInt8Block(size)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			x    []float32
		}{
			{name: "model update", x: randomVector(3, 262144, 0.01)},
			{name: "large values", x: randomVector(4, 10000, 1e30)},
			{name: "tiny normal values", x: randomVector(5, 10000, 1e-36)},
			{name: "subnormal values", x: randomVector(6, 10000, 1e-42)},
			{name: "random bits", x: encodable(randomBits(9, 100000))},
			{name: "partial last block", x: randomVector(10, 3*size+17, 1)},
			{name: "one value", x: []float32{-0.25}},
			{name: "half steps", x: halfSteps(size)},
		}
		for _, tt := range tests {
			t.Run(c.Name()+"/"+tt.name, func(t *testing.T) {
				enc, y := roundTrip(t, c, tt.x)
				checkInt8Bound(t, c, tt.x, y, enc)
			})
		}
	}
}

// halfSteps returns blocks whose values lie exactly halfway between two
// codes (127 is the max, so the scale is 1): the worst case, error exactly
// scale/2, each rounded to the even code.
func halfSteps(size int) []float32 {
	x := make([]float32, size)
	x[0] = 127
	for i := 1; i < size; i++ {
		x[i] = float32(i%254) - 126.5
	}
	return x
}

func TestInt8BlockHalfStepsGoToEven(t *testing.T) {
	x := halfSteps(64)
	enc, y := roundTrip(t, Int8Block{}, x)
	if s := blockScales(enc, 64)[0]; s != 1 {
		t.Fatalf("scale %v, want 1", s)
	}
	for i := 1; i < len(x); i++ {
		if math.Abs(float64(x[i]-y[i])) != 0.5 || int(y[i])%2 != 0 {
			t.Fatalf("%v came back as %v, not the even neighbour", x[i], y[i])
		}
	}
}

func TestInt8BlockExactCases(t *testing.T) {
	neg0 := float32(math.Copysign(0, -1))
	tests := []struct {
		name  string
		x     []float32
		want  []float32
		scale []float32 // per block
	}{
		{name: "zeros", x: []float32{0, neg0, 0}, want: []float32{0, 0, 0}, scale: []float32{0}},
		{name: "codes are the values when max is 127", x: []float32{127, -127, 3, -0.4, 0.6}, want: []float32{127, -127, 3, 0, 1}, scale: []float32{1}},
		{name: "smallest subnormal", x: []float32{0x1p-149, -0x1p-149, 0}, want: []float32{0x1p-149, -0x1p-149, 0}, scale: []float32{0x1p-149}},
		{name: "int8's largest", x: []float32{MaxInt8Block, -MaxInt8Block, 1e38}, scale: []float32{maxScale}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, y := roundTrip(t, Int8Block{}, tt.x)
			if s := blockScales(enc, 64); len(s) != len(tt.scale) || s[0] != tt.scale[0] {
				t.Fatalf("scales %v, want %v", s, tt.scale)
			}
			for i := range tt.want {
				if math.Float32bits(y[i]) != math.Float32bits(tt.want[i]) {
					t.Fatalf("values %v, want %v", y, tt.want)
				}
			}
			checkInt8Bound(t, Int8Block{}, tt.x, y, enc)
		})
	}
}

// TestInt8BlockRefusesNonFinite: a quantizer must not turn a NaN or an
// infinity into a number, nor a finite value it cannot hold into an
// infinity; the error names the value, and dst is returned unchanged.
func TestInt8BlockRefusesNonFinite(t *testing.T) {
	tests := []struct {
		name  string
		bad   float32
		want  error
		shown string
	}{
		{name: "NaN", bad: float32(math.NaN()), want: ErrNonFinite, shown: "value 70 is NaN"},
		{name: "infinity", bad: float32(math.Inf(1)), want: ErrNonFinite, shown: "value 70 is +Inf"},
		{name: "minus infinity", bad: float32(math.Inf(-1)), want: ErrNonFinite, shown: "value 70 is -Inf"},
		{name: "largest float32", bad: math.MaxFloat32, want: ErrRange, shown: "value 70 is 3.4028235e+38"},
		{name: "just above int8's largest", bad: -math.Nextafter32(MaxInt8Block, math.MaxFloat32), want: ErrRange, shown: "value 70"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := randomVector(11, 100, 1)
			x[70] = tt.bad
			enc, err := Int8Block{}.Encode([]byte("keep"), x)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.shown) {
				t.Fatalf("Encode: %v; want %v naming %q", err, tt.want, tt.shown)
			}
			if string(enc) != "keep" {
				t.Fatalf("dst became %q", enc)
			}
		})
	}
}

func TestScaleFor(t *testing.T) {
	tests := []struct {
		name string
		top  float32
		want float32
	}{
		{name: "zero", top: 0, want: 0},
		{name: "127", top: 127, want: 1},
		{name: "one", top: 1, want: math.Float32frombits(0x3c010280)}, // 1/127 = 0x3c010204 rounded up to 17 bits
		{name: "int8's largest", top: MaxInt8Block, want: maxScale},
		{name: "smallest subnormal", top: 0x1p-149, want: 0x1p-149},
		{name: "subnormal scale grid", top: 127 * 0x3p-149, want: 0x3p-149},
		{name: "boundary of the subnormal grid", top: 127 * 0x1p-132, want: 0x1p-132},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scaleFor(tt.top)
			if got != tt.want {
				t.Fatalf("scaleFor(%v) = %v (%#08x), want %v", tt.top, got, math.Float32bits(got), tt.want)
			}
			if err := checkScale(math.Float32bits(got)); err != nil {
				t.Fatalf("the decoder refuses the encoder's scale: %v", err)
			}
		})
	}
	for _, x := range encodable(randomBits(12, 100000)) { // every scale the encoder makes, the decoder takes
		a := float32(math.Abs(float64(x)))
		s := scaleFor(a)
		if err := checkScale(math.Float32bits(s)); err != nil || 127*float64(s) < float64(a) {
			t.Fatalf("scaleFor(%v) = %v: %v", a, s, err)
		}
	}
}

// encodable returns the values of v that the int8 codecs encode: finite,
// of magnitude at most MaxInt8Block.
func encodable(v []float32) []float32 {
	out := v[:0:0]
	for _, x := range v {
		if x >= -MaxInt8Block && x <= MaxInt8Block { // false for NaNs
			out = append(out, x)
		}
	}
	return out
}
