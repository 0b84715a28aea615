package model

import (
	"math"
	"unsafe"
)

// FirstNonFinite is the index of xs's first NaN or infinity, or -1. It
// tests a float32's exponent bits, all ones exactly for those two, eight
// values at a time without a branch.
func FirstNonFinite(xs []float32) int {
	const exp = 0x7f800000
	i := 0
	for ; i+8 <= len(xs); i += 8 {
		b := (*[8]uint32)(unsafe.Pointer(&xs[i]))
		// e+0x00800000 carries into the sign bit exactly when e is all ones.
		acc := (b[0]&exp + 0x00800000) | (b[1]&exp + 0x00800000) | (b[2]&exp + 0x00800000) | (b[3]&exp + 0x00800000) |
			(b[4]&exp + 0x00800000) | (b[5]&exp + 0x00800000) | (b[6]&exp + 0x00800000) | (b[7]&exp + 0x00800000)
		if acc&0x80000000 != 0 {
			break
		}
	}
	for ; i < len(xs); i++ {
		if math.Float32bits(xs[i])&exp == exp {
			return i
		}
	}
	return -1
}
