package quantize

import (
	"encoding/binary"
	"math"
)

// BFloat16 is the bfloat16 codec, 2 bytes a value: the upper half of the
// binary32 encoding, rounded to nearest, ties to even, NaNs kept (see the
// package doc).
type BFloat16 struct{}

var _ Codec = BFloat16{}

// Name returns "bfloat16".
func (BFloat16) Name() string { return NameBFloat16 }

// EncodedSize returns 2n.
func (BFloat16) EncodedSize(n int) int { return 2 * n }

// DecodedLen returns size/2; an odd size is malformed.
func (BFloat16) DecodedLen(size int) (int, error) { return fixedLen(NameBFloat16, size, 2) }

// Encode appends src rounded to bfloat16; it never fails.
func (BFloat16) Encode(dst []byte, src []float32) ([]byte, error) {
	start := len(dst)
	dst = grow(dst, 2*len(src))
	out := dst[start:]
	for i, x := range src {
		binary.LittleEndian.PutUint16(out[2*i:], ToBFloat16(x))
	}
	return dst, nil
}

// Decode appends the bfloat16 values src holds, exactly.
func (BFloat16) Decode(dst []float32, src []byte) ([]float32, error) {
	n, err := fixedLen(NameBFloat16, len(src), 2)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	for i := range out {
		out[i] = FromBFloat16(binary.LittleEndian.Uint16(src[2*i:]))
	}
	return dst, nil
}

// ToBFloat16 returns the bfloat16 encoding of x: its upper 16 bits, rounded
// to nearest, ties to even. A NaN stays a NaN (quiet, same sign); a finite
// value that rounds past bfloat16's largest becomes an infinity.
func ToBFloat16(x float32) uint16 {
	bits := math.Float32bits(x)
	if bits&^0x80000000 > f32Inf {
		return uint16((bits | f32Quiet) >> 16)
	}
	bits += 0x7fff + (bits>>16)&1
	return uint16(bits >> 16)
}

// FromBFloat16 returns the value of the bfloat16 encoding b, exactly.
func FromBFloat16(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }
