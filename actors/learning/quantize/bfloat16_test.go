package quantize

import (
	"math"
	"testing"
)

func TestBFloat16BitPatterns(t *testing.T) {
	tests := []struct {
		name    string
		x       float32
		bits    uint16
		rounded bool // x is not a bfloat16 value
	}{
		{name: "zero", x: 0, bits: 0x0000},
		{name: "negative zero", x: float32(math.Copysign(0, -1)), bits: 0x8000},
		{name: "one", x: 1, bits: 0x3f80},
		{name: "minus two", x: -2, bits: 0xc000},
		{name: "pi", x: math.Pi, bits: 0x4049, rounded: true},
		{name: "one third", x: 1.0 / 3, bits: 0x3eab, rounded: true},
		{name: "largest finite", x: 0x1.fep127, bits: 0x7f7f},
		{name: "largest float32 overflows", x: math.MaxFloat32, bits: 0x7f80, rounded: true},
		{name: "smallest normal", x: 0x1p-126, bits: 0x0080},
		{name: "smallest subnormal", x: 0x1p-133, bits: 0x0001},
		{name: "tie to even down", x: math.Float32frombits(0x3f808000), bits: 0x3f80, rounded: true},
		{name: "tie to even up", x: math.Float32frombits(0x3f818000), bits: 0x3f82, rounded: true},
		{name: "just above a tie", x: math.Float32frombits(0x3f808001), bits: 0x3f81, rounded: true},
		{name: "subnormal tie", x: math.Float32frombits(0x00008000), bits: 0x0000, rounded: true},
		{name: "infinity", x: float32(math.Inf(1)), bits: 0x7f80},
		{name: "minus infinity", x: float32(math.Inf(-1)), bits: 0xff80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ToBFloat16(tt.x); got != tt.bits {
				t.Fatalf("ToBFloat16(%v) = %#04x, want %#04x", tt.x, got, tt.bits)
			}
			if got := FromBFloat16(tt.bits); !tt.rounded && math.Float32bits(got) != math.Float32bits(tt.x) {
				t.Fatalf("FromBFloat16(%#04x) = %v, want %v", tt.bits, got, tt.x)
			}
		})
	}
}

func TestBFloat16NaNStaysNaN(t *testing.T) {
	tests := []struct {
		name string
		bits uint32
		want uint16
	}{
		{name: "quiet", bits: 0x7fc00000, want: 0x7fc0},
		{name: "negative quiet", bits: 0xffc00000, want: 0xffc0},
		{name: "payload kept", bits: 0x7fd50000, want: 0x7fd5},
		{name: "signalling, low payload", bits: 0x7f800001, want: 0x7fc0}, // would truncate to an infinity
		{name: "all ones", bits: 0xffffffff, want: 0xffff},                // must not carry into the sign
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToBFloat16(math.Float32frombits(tt.bits))
			if got != tt.want || !isNaN32(FromBFloat16(got)) {
				t.Fatalf("ToBFloat16(%#08x) = %#04x, want %#04x (a NaN)", tt.bits, got, tt.want)
			}
		})
	}
}

func TestBFloat16EveryValueAndMidpoint(t *testing.T) {
	for h := range 1 << 16 {
		b := uint16(h)
		x := FromBFloat16(b)
		if math.Float32bits(x) != uint32(b)<<16 {
			t.Fatalf("FromBFloat16(%#04x) = %#08x", b, math.Float32bits(x))
		}
		if isNaN32(x) {
			if !isNaN32(FromBFloat16(ToBFloat16(x))) {
				t.Fatalf("NaN %#04x lost", b)
			}
			continue
		}
		if got := ToBFloat16(x); got != b {
			t.Fatalf("ToBFloat16(FromBFloat16(%#04x)) = %#04x", b, got)
		}
		if b&0x7fff >= 0x7f7f { // the largest finite and the infinity have no finite upper neighbour
			continue
		}
		mid := uint32(b)<<16 | 0x8000 // the midpoint to the next encoding away from zero
		even := b
		if b&1 == 1 {
			even = b + 1
		}
		for _, c := range []struct {
			bits uint32
			want uint16
		}{{mid, even}, {mid - 1, b}, {mid + 1, b + 1}} {
			if got := ToBFloat16(math.Float32frombits(c.bits)); got != c.want {
				t.Fatalf("ToBFloat16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
			}
		}
	}
}

func TestBFloat16MatchesReferenceOnRandomBits(t *testing.T) {
	for _, x := range randomBits(8, 200000) {
		if isNaN32(x) {
			continue
		}
		if got, want := ToBFloat16(x), nearestBFloat16(x); got != want {
			t.Fatalf("ToBFloat16(%v = %#08x) = %#04x, reference %#04x", x, math.Float32bits(x), got, want)
		}
	}
}
