package model

import "gonum.org/v1/gonum/blas/blas32"

// FirstNonFinite is the index of xs's first NaN or infinity, or -1. x*0 is
// NaN exactly when x is NaN or infinite, so a span's dot product with
// zeros is 0 exactly when all of it is finite: gonum's vectorised Dot
// checks a span at about three times a scalar test's speed, and only a
// span that fails is searched value by value.
func FirstNonFinite(xs []float32) int {
	for lo := 0; lo < len(xs); lo += len(zeros) {
		span := xs[lo:min(lo+len(zeros), len(xs))]
		if blas32.Dot(blas32.Vector{N: len(span), Inc: 1, Data: span}, blas32.Vector{N: len(span), Inc: 1, Data: zeros[:len(span)]}) == 0 {
			continue
		}
		for i, x := range span {
			if x-x != 0 {
				return lo + i
			}
		}
	}
	return -1
}

// zeros is FirstNonFinite's span of zeros (64 KiB, never written).
var zeros = make([]float32, 16<<10)
