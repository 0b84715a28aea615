package quantize

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestFloat16BitPatterns(t *testing.T) {
	tests := []struct {
		name    string
		x       float32
		bits    uint16
		rounded bool // x is not a binary16 value, so bits do not decode to it
	}{
		{name: "zero", x: 0, bits: 0x0000},
		{name: "negative zero", x: float32(math.Copysign(0, -1)), bits: 0x8000},
		{name: "one", x: 1, bits: 0x3c00},
		{name: "minus two", x: -2, bits: 0xc000},
		{name: "one third", x: 1.0 / 3, bits: 0x3555, rounded: true},
		{name: "largest finite", x: 65504, bits: 0x7bff},
		{name: "smallest normal", x: 0x1p-14, bits: 0x0400},
		{name: "largest subnormal", x: 0x3ffp-24, bits: 0x03ff},
		{name: "smallest subnormal", x: 0x1p-24, bits: 0x0001},
		{name: "pi", x: math.Pi, bits: 0x4248, rounded: true},
		{name: "infinity", x: float32(math.Inf(1)), bits: 0x7c00},
		{name: "minus infinity", x: float32(math.Inf(-1)), bits: 0xfc00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ToFloat16(tt.x); got != tt.bits {
				t.Fatalf("ToFloat16(%v) = %#04x, want %#04x", tt.x, got, tt.bits)
			}
			if got := FromFloat16(tt.bits); !tt.rounded && math.Float32bits(got) != math.Float32bits(tt.x) {
				t.Fatalf("FromFloat16(%#04x) = %v, want %v", tt.bits, got, tt.x)
			}
		})
	}
}

func TestFloat16Rounding(t *testing.T) {
	tests := []struct {
		name string
		x    float32
		bits uint16
	}{
		{name: "tie to even down", x: 1 + 0x1p-11, bits: 0x3c00},                 // halfway between 1 and 1+2^-10
		{name: "tie to even up", x: 1 + 3*0x1p-11, bits: 0x3c02},                 // halfway between 1+2^-10 and 1+2^-9
		{name: "just above a tie", x: 1 + 0x1p-11 + 0x1p-23, bits: 0x3c01},       // nearest is up
		{name: "65519 stays finite", x: 65519, bits: 0x7bff},                     // below the midpoint 65520
		{name: "65520 overflows", x: 65520, bits: 0x7c00},                        // the midpoint, ties to even: infinity
		{name: "large overflows", x: 1e10, bits: 0x7c00},                         // far above
		{name: "largest float32", x: math.MaxFloat32, bits: 0x7c00},              //
		{name: "negative overflow", x: -70000, bits: 0xfc00},                     //
		{name: "half the smallest subnormal", x: 0x1p-25, bits: 0x0000},          // a tie, to even: zero
		{name: "above half the smallest", x: 0x1p-25 + 0x1p-40, bits: 0x0001},    //
		{name: "1.5 subnormal steps", x: 0x3p-25, bits: 0x0002},                  // tie, to even
		{name: "rounds up into the normals", x: 0x1p-14 - 0x1p-26, bits: 0x0400}, // above the midpoint of 0x03ff and 0x0400
		{name: "float32 subnormal", x: 0x1p-140, bits: 0x0000},
		{name: "negative subnormal", x: -0x5p-24, bits: 0x8005},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ToFloat16(tt.x); got != tt.bits {
				t.Fatalf("ToFloat16(%v) = %#04x, want %#04x", tt.x, got, tt.bits)
			}
		})
	}
}

func TestFloat16NaN(t *testing.T) {
	tests := []struct {
		name string
		bits uint32
		want uint16
	}{
		{name: "quiet", bits: 0x7fc00000, want: 0x7e00},
		{name: "negative quiet", bits: 0xffc00000, want: 0xfe00},
		{name: "payload kept", bits: 0x7fc02000 | 0x155<<13, want: 0x7e00 | 0x155},
		{name: "signalling, low payload", bits: 0x7f800001, want: 0x7e00}, // quieted: never an infinity
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToFloat16(math.Float32frombits(tt.bits))
			if got != tt.want {
				t.Fatalf("ToFloat16(%#08x) = %#04x, want %#04x", tt.bits, got, tt.want)
			}
			if back := FromFloat16(got); !isNaN32(back) || math.Signbit(float64(back)) != (tt.bits>>31 == 1) {
				t.Fatalf("FromFloat16(%#04x) = %v", got, back)
			}
		})
	}
}

// TestFloat16DecodesEveryValueExactly checks all 65,536 encodings against
// the format's definition.
func TestFloat16DecodesEveryValueExactly(t *testing.T) {
	for h := range 1 << 16 {
		sign, exp, mant := h>>15, (h>>10)&0x1f, h&0x3ff
		got := FromFloat16(uint16(h))
		var want float64
		switch exp {
		case 0:
			want = math.Ldexp(float64(mant), -24)
		case 31:
			bits := uint32(sign)<<31 | f32Inf | uint32(mant)<<13
			if math.Float32bits(got) != bits {
				t.Fatalf("FromFloat16(%#04x) = %#08x, want %#08x", h, math.Float32bits(got), bits)
			}
			continue
		default:
			want = math.Ldexp(float64(1024+mant), exp-25)
		}
		if sign == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign == 1) {
			t.Fatalf("FromFloat16(%#04x) = %v, want %v", h, got, want)
		}
		if back := ToFloat16(got); back != uint16(h) {
			t.Fatalf("ToFloat16(FromFloat16(%#04x)) = %#04x", h, back)
		}
	}
}

// TestFloat16DecodeTableIsTheDefinition: Decode's table lookup gives
// FromFloat16's bits for all 65,536 encodings at once, appended after what
// dst held.
func TestFloat16DecodeTableIsTheDefinition(t *testing.T) {
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(src[2*h:], uint16(h))
	}
	got, err := Float16{}.Decode([]float32{42}, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+1<<16 || got[0] != 42 {
		t.Fatalf("Decode appended %d values after %v, want 65536 after 42", len(got)-1, got[0])
	}
	for h := range 1 << 16 {
		if g, w := math.Float32bits(got[1+h]), math.Float32bits(FromFloat16(uint16(h))); g != w {
			t.Fatalf("Decode(%#04x) = %#08x, want %#08x", h, g, w)
		}
	}
}

// TestFloat16RoundsEveryMidpoint: between every two neighbouring finite
// binary16 values, the midpoint goes to the even one, and the float32 just
// below and just above it to the nearer one; so do the midpoints of the
// overflow boundary and of zero.
func TestFloat16RoundsEveryMidpoint(t *testing.T) {
	for _, sign := range []uint16{0, 0x8000} {
		for lo := uint16(0); lo < 0x7bff; lo++ {
			a, b := float64(FromFloat16(sign|lo)), float64(FromFloat16(sign|(lo+1)))
			mid := float32((a + b) / 2) // exact: 12 significant bits at most
			if float64(mid) != (a+b)/2 {
				t.Fatalf("midpoint of %#04x not exact", lo)
			}
			even := lo
			if lo&1 == 1 {
				even = lo + 1
			}
			below := math.Nextafter32(mid, float32(a))
			above := math.Nextafter32(mid, float32(b))
			for _, c := range []struct {
				x    float32
				want uint16
			}{{mid, sign | even}, {below, sign | lo}, {above, sign | (lo + 1)}} {
				if got := ToFloat16(c.x); got != c.want {
					t.Fatalf("ToFloat16(%v) = %#04x, want %#04x", c.x, got, c.want)
				}
			}
		}
	}
}

func TestFloat16MatchesReferenceOnRandomBits(t *testing.T) {
	v := randomBits(7, 200000)
	for _, x := range v {
		if isNaN32(x) {
			continue
		}
		if got, want := ToFloat16(x), nearestFloat16(x); got != want {
			t.Fatalf("ToFloat16(%v = %#08x) = %#04x, reference %#04x", x, math.Float32bits(x), got, want)
		}
	}
}
