package quantize

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Float32 is the identity codec: values as little-endian IEEE 754 binary32,
// 4 bytes each, bit for bit (NaN payloads included).
type Float32 struct{}

var _ Codec = Float32{}

// Name returns "float32".
func (Float32) Name() string { return NameFloat32 }

// EncodedSize returns 4n.
func (Float32) EncodedSize(n int) int { return 4 * n }

// DecodedLen returns size/4; a size that is not a multiple of 4 is
// malformed.
func (Float32) DecodedLen(size int) (int, error) { return fixedLen(NameFloat32, size, 4) }

// Encode appends src's bits; it never fails.
func (Float32) Encode(dst []byte, src []float32) ([]byte, error) {
	start := len(dst)
	dst = grow(dst, 4*len(src))
	out := dst[start:]
	for i, x := range src {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return dst, nil
}

// Decode appends the values src holds.
func (Float32) Decode(dst []float32, src []byte) ([]float32, error) {
	n, err := fixedLen(NameFloat32, len(src), 4)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
	return dst, nil
}

// fixedLen is DecodedLen for a codec of width bytes a value.
func fixedLen(name string, size, width int) (int, error) {
	if size < 0 || size%width != 0 {
		return 0, fmt.Errorf("%w: %s: %d bytes is not a multiple of %d", ErrMalformed, name, size, width)
	}
	return size / width, nil
}
