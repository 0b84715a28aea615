package dp

import (
	cryptorand "crypto/rand"
	"fmt"
	"math"
	"math/rand/v2"
)

// clipMargin is the relative slack ClipFactor leaves below the clipping
// norm, so that float32 rounding of the scaled values (relative error
// 2^-24 each) cannot push a clipped vector's norm above it.
const clipMargin = 1e-6

// ClipFactor is the factor that scales a vector of L2 norm norm to norm at
// most c: 1 when it already is (with clipMargin to spare), otherwise
// c/(norm·(1+clipMargin)); 0 for an infinite norm. c must be positive.
func ClipFactor(norm, c float64) float64 {
	limit := norm * (1 + clipMargin)
	if limit <= c {
		return 1
	}
	return c / limit
}

// ClipL2 scales v in place so that its L2 norm is at most c, and returns its
// norm before clipping. It refuses (leaving v as it was) a clipping norm
// that is not finite and positive, and a v holding a NaN or an infinity:
// such a vector has no norm to clip to, and passing it on would leak it.
func ClipL2(v []float32, c float64) (float64, error) {
	if !(c > 0) || math.IsInf(c, 1) {
		return 0, fmt.Errorf("%w: clipping norm %v is not a finite positive number", ErrParameter, c)
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	norm := math.Sqrt(sum)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return 0, fmt.Errorf("%w: the vector to clip holds a NaN or an infinity", ErrParameter)
	}
	if f := ClipFactor(norm, c); f < 1 {
		for i, x := range v {
			v[i] = float32(float64(x) * f)
		}
	}
	return norm, nil
}

// Source is the secret randomness of a mechanism: which records a step
// samples and the noise it adds. It is a ChaCha8 generator (math/rand/v2, a
// cryptographically strong stream) seeded with 32 bytes; the guarantee
// holds only while the seed is secret. A Source is not safe for concurrent
// use.
type Source struct {
	r *rand.Rand
}

// NewSource returns a Source seeded from crypto/rand: the one to use
// whenever privacy matters.
func NewSource() *Source {
	var seed [32]byte
	cryptorand.Read(seed[:]) // never fails (crypto/rand since Go 1.24)
	return NewSeededSource(seed)
}

// NewSeededSource returns a Source whose draws are a function of seed: for
// tests and for replaying a run. Anyone who knows the seed knows the sample
// and can subtract the noise, so a seed never comes from a job manifest or
// anywhere else outside the site.
func NewSeededSource(seed [32]byte) *Source {
	return &Source{r: rand.New(rand.NewChaCha8(seed))}
}

// AddGaussian adds independent N(0, std²) noise to every element of v, the
// Gaussian mechanism with std = σ·C for sensitivity C. It refuses a std
// that is negative or not finite, leaving v as it was.
func (s *Source) AddGaussian(v []float32, std float64) error {
	if !(std >= 0) || math.IsInf(std, 1) {
		return fmt.Errorf("%w: noise standard deviation %v is not a finite non-negative number", ErrParameter, std)
	}
	for i := range v {
		v[i] += float32(std * s.r.NormFloat64())
	}
	return nil
}

// Sample appends to dst, in increasing order, the indices in [0, n) of a
// Poisson sample at rate q (each index independently with probability q,
// the sampling the accountant assumes) and returns dst. It draws the gaps
// between sampled indices, which are geometric, so that its cost is that of
// the sample (about q·n draws), not of n. A q outside (0, 1] samples
// nothing.
func (s *Source) Sample(dst []int, n int, q float64) []int {
	switch {
	case !(q > 0) || q > 1 || n <= 0:
		return dst
	case q == 1:
		for i := range n {
			dst = append(dst, i)
		}
		return dst
	}
	logKeep := math.Log1p(-q) // < 0
	for i := -1; ; {
		u := 1 - s.r.Float64() // (0, 1]
		// P(gap ≥ k) = P(u ≤ (1-q)^k) = (1-q)^k: k records skipped, each
		// left out with probability 1-q.
		gap := math.Floor(math.Log(u) / logKeep)
		if gap >= float64(n-1-i) {
			return dst
		}
		i += int(gap) + 1
		dst = append(dst, i)
	}
}
