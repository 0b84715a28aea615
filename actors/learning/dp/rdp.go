package dp

import (
	"errors"
	"fmt"
	"math"
)

// ErrParameter is wrapped by every error that reports an input out of its
// range: a sampling rate, noise multiplier, step count, δ, order, budget
// or clipping norm.
var ErrParameter = errors.New("dp: parameter out of range")

// ErrNoGuarantee is wrapped by the error of a computation for which no
// order gives a finite ε: the mechanism, as given, protects nothing that
// this accountant can state.
var ErrNoGuarantee = errors.New("dp: no finite privacy guarantee")

// Bounds on a Mechanism. They are far outside what training uses and keep
// every intermediate value finite (σ² never underflows; log q never
// reaches the denormals).
const (
	MinSamplingRate    = 1e-12
	MinNoiseMultiplier = 1e-6
	MaxNoiseMultiplier = 1e6
	MaxSteps           = 1 << 40
)

// maxOrder bounds an RDP order: the integer series has α+1 terms.
const maxOrder = 10000

// maxOrders bounds the length of a list of orders.
const maxOrders = 1000

// maxSeriesTerms bounds the fractional-order series. It converges in a
// few dozen terms for the parameters of training; an order that needs more
// is given up (its RDP is +Inf), which only makes ε larger.
const maxSeriesTerms = 100000

// logTermCutoff ends a fractional-order series: a term below e^-30 against
// a sum of at least 1 (A_α ≥ 1) is dropped with the rest of the tail, as
// TensorFlow Privacy and Opacus do.
const logTermCutoff = -30

// Mechanism is Steps applications of the Poisson-subsampled Gaussian
// mechanism: each step samples every record independently with probability
// SamplingRate and adds Gaussian noise of standard deviation NoiseMultiplier
// times the L2 sensitivity (the clipping norm) to every coordinate.
type Mechanism struct {
	SamplingRate    float64 // q, in [MinSamplingRate, 1]
	NoiseMultiplier float64 // σ, in [MinNoiseMultiplier, MaxNoiseMultiplier]
	Steps           int64   // T, in [0, MaxSteps]
}

// Validate reports the first parameter of m out of its range; the error
// wraps ErrParameter.
func (m Mechanism) Validate() error {
	switch {
	case !(m.SamplingRate >= MinSamplingRate && m.SamplingRate <= 1):
		return fmt.Errorf("%w: sampling rate %v is not in [%g, 1]", ErrParameter, m.SamplingRate, MinSamplingRate)
	case !(m.NoiseMultiplier >= MinNoiseMultiplier && m.NoiseMultiplier <= MaxNoiseMultiplier):
		return fmt.Errorf("%w: noise multiplier %v is not in [%g, %g]", ErrParameter, m.NoiseMultiplier, MinNoiseMultiplier, MaxNoiseMultiplier)
	case m.Steps < 0 || m.Steps > MaxSteps:
		return fmt.Errorf("%w: %d steps, want 0..%d", ErrParameter, m.Steps, int64(MaxSteps))
	}
	return nil
}

// DefaultOrders returns TensorFlow Privacy's RDP orders (a fresh slice):
// 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, the integers 5 to 63, and
// 128, 256 and 512.
func DefaultOrders() []float64 {
	orders := []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5}
	for a := 5; a < 64; a++ {
		orders = append(orders, float64(a))
	}
	return append(orders, 128, 256, 512)
}

// validateOrders checks a list of orders: 1 to maxOrders of them, each
// finite, above 1 and at most maxOrder.
func validateOrders(orders []float64) error {
	if len(orders) == 0 || len(orders) > maxOrders {
		return fmt.Errorf("%w: %d orders, want 1..%d", ErrParameter, len(orders), maxOrders)
	}
	for _, a := range orders {
		if !(a > 1 && a <= maxOrder) {
			return fmt.Errorf("%w: order %v is not in (1, %d]", ErrParameter, a, maxOrder)
		}
	}
	return nil
}

// RDP returns m's Rényi DP at each of orders (DefaultOrders when nil): T
// times the RDP of one step. An order whose series could not be evaluated
// reliably is +Inf (the caller's conversion skips it); every other value is
// finite and non-negative.
func (m Mechanism) RDP(orders []float64) ([]float64, error) {
	if orders == nil {
		orders = DefaultOrders()
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := validateOrders(orders); err != nil {
		return nil, err
	}
	out := make([]float64, len(orders))
	if m.Steps == 0 {
		return out, nil
	}
	for k, a := range orders {
		r := stepRDP(m.SamplingRate, m.NoiseMultiplier, a) * float64(m.Steps)
		if math.IsNaN(r) || math.IsInf(r, 0) {
			r = math.Inf(1)
		}
		out[k] = r
	}
	return out, nil
}

// stepRDP is the RDP at order alpha of one step of the sampled Gaussian
// mechanism with rate q and noise multiplier sigma: never negative, +Inf
// when it cannot be evaluated.
func stepRDP(q, sigma, alpha float64) float64 {
	if q == 1 {
		return alpha / (2 * sigma * sigma)
	}
	var logA float64
	if alpha == math.Trunc(alpha) {
		logA = logAInt(q, sigma, int(alpha))
	} else {
		var ok bool
		if logA, ok = logAFrac(q, sigma, alpha); !ok {
			return math.Inf(1)
		}
	}
	// A_α ≥ 1; a rounding error below it would claim a negative divergence.
	return max(logA, 0) / (alpha - 1)
}

// logAInt is log(A_α) for an integer order α ≥ 2 and 0 < q < 1, by the
// binomial expansion.
func logAInt(q, sigma float64, alpha int) float64 {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	twoVar := 2 * sigma * sigma
	lgA := lgamma(float64(alpha) + 1)
	logA := math.Inf(-1)
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		logCoef := lgA - lgamma(fi+1) - lgamma(float64(alpha-i)+1)
		s := logCoef + fi*logQ + float64(alpha-i)*log1mQ + (fi*fi-fi)/twoVar
		logA = logAdd(logA, s)
	}
	return logA
}

// logAFrac is log(A_α) for a fractional order α and 0 < q < 1, by the
// series split at z0 (see the package doc). It reports false when the
// series did not converge within maxSeriesTerms terms or its alternating
// part would go negative.
func logAFrac(q, sigma, alpha float64) (float64, bool) {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	twoVar := 2 * sigma * sigma
	sqrt2Sigma := math.Sqrt2 * sigma
	z0 := sigma*sigma*(log1mQ-logQ) + 0.5
	logHalf := -math.Ln2
	a0, a1 := math.Inf(-1), math.Inf(-1)
	logCoef, positive := 0.0, true // C(α, 0) = 1
	for i := range maxSeriesTerms {
		fi := float64(i)
		j := alpha - fi
		s0 := logCoef + fi*logQ + j*log1mQ + (fi*fi-fi)/twoVar + logHalf + logErfc((fi-z0)/sqrt2Sigma)
		s1 := logCoef + j*logQ + fi*log1mQ + (j*j-j)/twoVar + logHalf + logErfc((z0-j)/sqrt2Sigma)
		if positive {
			a0, a1 = logAdd(a0, s0), logAdd(a1, s1)
		} else {
			var ok0, ok1 bool
			a0, ok0 = logSub(a0, s0)
			a1, ok1 = logSub(a1, s1)
			if !ok0 || !ok1 {
				return 0, false
			}
		}
		if max(s0, s1) < logTermCutoff {
			return logAdd(a0, a1), true
		}
		// C(α, i+1) = C(α, i)·(α-i)/(i+1): the sign flips where α-i < 0.
		r := (alpha - fi) / (fi + 1)
		if r < 0 {
			positive = !positive
		}
		logCoef += math.Log(math.Abs(r))
	}
	return 0, false
}

// lgamma is log|Γ(x)|.
func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// logAdd is log(e^x + e^y).
func logAdd(x, y float64) float64 {
	a, b := min(x, y), max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

// logSub is log(e^x - e^y), and false when y > x (a negative result).
func logSub(x, y float64) (float64, bool) {
	switch {
	case y > x:
		return 0, false
	case math.IsInf(y, -1):
		return x, true
	case x == y:
		return math.Inf(-1), true
	}
	if d := x - y; d < 1 {
		return math.Log(math.Expm1(d)) + y, true // accurate for small d
	}
	return x + math.Log1p(-math.Exp(y-x)), true // no overflow for large d
}

// logErfcSeriesFrom is where logErfc leaves math.Erfc (accurate to the
// last bits there, about 1e-273) for the asymptotic series, whose first
// omitted term is below 1e-12 from here on.
const logErfcSeriesFrom = 25

// logErfc is log(erfc(x)), accurate where erfc(x) underflows: beyond
// logErfcSeriesFrom it uses the Laurent series at infinity,
// log erfc(x) = -x² - log(x√π) - 1/(2x²) + 5/(8x⁴) - 37/(24x⁶) + 353/(64x⁸) + ...
func logErfc(x float64) float64 {
	if x < logErfcSeriesFrom {
		return math.Log(math.Erfc(x))
	}
	x2 := x * x
	u := 1 / x2
	return -0.5*math.Log(math.Pi) - math.Log(x) - x2 + u*(-0.5+u*(0.625+u*(-37.0/24+u*353.0/64)))
}
