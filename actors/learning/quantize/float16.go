package quantize

import (
	"encoding/binary"
	"math"
	"sync"
)

// Float16 is the IEEE 754 binary16 codec, 2 bytes a value: round to
// nearest, ties to even, with subnormals, overflow to infinity and NaNs
// kept (see the package doc for the exact rules).
type Float16 struct{}

var _ Codec = Float16{}

// Name returns "float16".
func (Float16) Name() string { return NameFloat16 }

// EncodedSize returns 2n.
func (Float16) EncodedSize(n int) int { return 2 * n }

// DecodedLen returns size/2; an odd size is malformed.
func (Float16) DecodedLen(size int) (int, error) { return fixedLen(NameFloat16, size, 2) }

// Encode appends src rounded to binary16; it never fails.
func (Float16) Encode(dst []byte, src []float32) ([]byte, error) {
	start := len(dst)
	dst = grow(dst, 2*len(src))
	out := dst[start:]
	for i, x := range src {
		h := f16Normal(math.Float32bits(x))
		if h == 0 { // not in binary16's normal range: the rare cases
			h = ToFloat16(x)
		}
		binary.LittleEndian.PutUint16(out[2*i:], h)
	}
	return dst, nil
}

// Decode appends the binary16 values src holds, exactly.
func (Float16) Decode(dst []float32, src []byte) ([]float32, error) {
	n, err := fixedLen(NameFloat16, len(src), 2)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	table := float16Table()
	src = src[:2*len(out)]
	for i := range out {
		out[i] = math.Float32frombits(table[uint16(src[2*i])|uint16(src[2*i+1])<<8])
	}
	return dst, nil
}

// float16Table holds FromFloat16's bits for every binary16 encoding
// (256 KiB, made on first use): Decode looks each value up, about twice
// as fast as converting it.
var float16Table = sync.OnceValue(func() *[1 << 16]uint32 {
	t := new([1 << 16]uint32)
	for h := range t {
		t[h] = math.Float32bits(FromFloat16(uint16(h)))
	}
	return t
})

// binary16 and binary32 constants, as bit patterns of magnitudes.
const (
	f32Inf      = 0x7f800000
	f32Quiet    = 0x00400000
	f16Quiet    = 0x0200
	f16InfBits  = 0x7c00
	f16MinNorm  = 113 << 23 // 2^-14 as a float32's bits: binary16's smallest normal
	f16Overflow = 143 << 23 // 2^16: every magnitude from here is infinite in binary16
)

// ToFloat16 returns the binary16 encoding of x rounded to nearest, ties to
// even. It works on bits (after F. Giesen's float_to_half_fast3_rtne): a
// subnormal result comes from one float32 addition that aligns its bits,
// a normal one from adding the rounding bias to the bits.
func ToFloat16(x float32) uint16 {
	bits := math.Float32bits(x)
	sign := uint16(bits>>16) & 0x8000
	abs := bits &^ 0x80000000
	switch {
	case abs > f32Inf: // NaN: quiet, the top payload bits kept
		return sign | f16InfBits | f16Quiet | uint16(abs>>13)&0x3ff
	case abs >= f16Overflow: // infinite, or finite and rounding past 65504
		return sign | f16InfBits
	case abs < f16MinNorm: // subnormal or zero in binary16
		// Adding 0.5 (whose float32 unit in the last place is 2^-24,
		// binary16's subnormal step) rounds abs to that step, ties to
		// even, leaving the binary16 bits in the float32's low bits.
		const half = 126 << 23
		f := math.Float32frombits(abs) + math.Float32frombits(half)
		return sign | uint16(math.Float32bits(f)-half)
	default:
		return f16Normal(bits)
	}
}

// f16Normal is ToFloat16 for the values that binary16 holds as normal
// numbers or that round to its infinity from below 2^16 (bits of magnitude
// from 2^-14 up to 2^16); for any other bits it returns 0, which no such
// value has. Small enough to inline, it is Encode's fast path.
func f16Normal(bits uint32) uint16 {
	abs := bits &^ 0x80000000
	if abs-f16MinNorm >= f16Overflow-f16MinNorm {
		return 0
	}
	// Rebias the exponent and add the rounding bias (ties to even); a
	// carry out of the mantissa may reach infinity, which is right.
	abs = abs - (127-15)<<23 + 0xfff + (abs>>13)&1
	return uint16(bits>>16)&0x8000 | uint16(abs>>13)
}

// FromFloat16 returns the value of the binary16 encoding h, exactly. A NaN
// keeps its sign and payload bits.
func FromFloat16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	bits := uint32(h&0x7fff) << 13
	switch exp := bits & (f16InfBits << 13); exp {
	case f16InfBits << 13: // infinity or NaN
		bits += (255 - 31) << 23
	case 0: // zero or subnormal: renormalize through one float32 subtraction
		bits += (1 + 127 - 15) << 23
		bits = math.Float32bits(math.Float32frombits(bits) - math.Float32frombits(f16MinNorm))
	default:
		bits += (127 - 15) << 23
	}
	return math.Float32frombits(sign | bits)
}
