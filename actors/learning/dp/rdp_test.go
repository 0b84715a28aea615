package dp

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

// relClose says whether got is within rel of want (relative), or within
// abs of it for values near zero.
func relClose(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= max(rel*math.Abs(want), abs)
}

// classicEpsilon is Mironov's 2017 conversion (Proposition 3),
// ε = min over α of ε_α - log δ/(α-1): the one Abadi et al. and TensorFlow
// Privacy's tutorial computed their published figures with. The package
// uses the tighter one; this test keeps the classic to compare.
func classicEpsilon(orders, rdp []float64, delta float64) (eps, order float64) {
	eps = math.Inf(1)
	for k, a := range orders {
		if e := rdp[k] - math.Log(delta)/(a-1); e < eps {
			eps, order = e, a
		}
	}
	return eps, order
}

// The two published figures the issue names. Each was computed with the
// classic conversion, which this accountant's RDP reproduces within half a
// unit of the published last digit (the tolerance); the conversion the
// package uses gives a smaller ε, pinned to Google's dp_accounting
// (rdp_privacy_accountant.py, run with SciPy 1.10) to 1e-9 relative.
func TestPublishedFigures(t *testing.T) {
	cases := []struct {
		name                 string
		m                    Mechanism
		published, tolerance float64
		classicOrder         float64
		reference, refOrder  float64 // dp_accounting compute_epsilon
	}{
		// Abadi et al. 2016, Section 5 (moments accountant): ε ≈ 1.26.
		{"abadi2016", Mechanism{0.01, 4, 10000}, 1.26, 0.005, 20, 1.035490066036133, 17},
		// TensorFlow Privacy's MNIST tutorial: batch 256 of 60,000, 60
		// epochs = ceil(60·60000/256) steps: ε ≈ 3.01.
		{"tfprivacy-mnist", Mechanism{256.0 / 60000, 1.1, 14063}, 3.01, 0.005, 9, 2.5970795196570942, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orders := DefaultOrders()
			rdp, err := tc.m.RDP(orders)
			if err != nil {
				t.Fatal(err)
			}
			classic, co := classicEpsilon(orders, rdp, 1e-5)
			g, err := tc.m.Epsilon(1e-5)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v δ=1e-5: classic ε = %.4f (order %v), published %v; this accountant ε = %.4f (order %v)",
				tc.m, classic, co, tc.published, g.Epsilon, g.Order)
			if math.Abs(classic-tc.published) > tc.tolerance || co != tc.classicOrder {
				t.Errorf("classic ε = %v at order %v, want %v ± %v at order %v", classic, co, tc.published, tc.tolerance, tc.classicOrder)
			}
			if !relClose(g.Epsilon, tc.reference, 1e-9, 0) || g.Order != tc.refOrder || g.Delta != 1e-5 {
				t.Errorf("ε = %+v, want %v at order %v (dp_accounting)", g, tc.reference, tc.refOrder)
			}
			if g.Epsilon > classic {
				t.Errorf("the improved conversion gave %v, above the classic %v", g.Epsilon, classic)
			}
		})
	}
}

// One step's RDP at single orders, against dp_accounting's
// _compute_rdp_poisson_subsampled_gaussian. Integer orders agree to
// rounding; fractional orders to 1e-8: both series stop at the same term,
// but differ in how they form the binomial coefficients, log(1-q) and
// erfc. (Against mpmath's 40-digit quadrature of the defining integral,
// at q=0.01, σ=4: dp_accounting is 2.7e-9 off at α=1.25, this package
// 1e-10.)
func TestRDPAgainstDPAccounting(t *testing.T) {
	cases := []struct {
		q, sigma, alpha, want float64
	}{
		{0.01, 4.0, 1.25, 4.0289215722422036e-06},
		{0.01, 4.0, 2.5, 8.0644097574615135e-06},
		{0.01, 4.0, 17, 5.5363268029544209e-05},
		{0.01, 4.0, 512, 11.385817739285285},
		{256.0 / 60000, 1.1, 1.75, 2.0432054925926681e-05},
		{256.0 / 60000, 1.1, 8, 9.8341061779958793e-05},
		{256.0 / 60000, 1.1, 4.5, 5.3691723410413026e-05},
		{0.5, 0.7, 1.5, 0.58214929234585766},
		{0.5, 0.7, 3, 2.0503607218796769},
		{0.9, 2.0, 2.25, 0.23409477353406341},
		{0.9, 2.0, 63, 7.767940142134373},
		{0.1, 0.5, 1.5, 0.14592708968069065},
		{0.1, 0.5, 128, 253.67928431572255},
		{0.02, 1.0, 3.5, 0.0013035915618466996},
		{0.02, 1.0, 10, 0.66067803955143689},
	}
	for _, tc := range cases {
		got, err := Mechanism{tc.q, tc.sigma, 1}.RDP([]float64{tc.alpha})
		if err != nil {
			t.Fatal(err)
		}
		rel := 1e-12
		if tc.alpha != math.Trunc(tc.alpha) {
			rel = 1e-8
		}
		if !relClose(got[0], tc.want, rel, 0) {
			t.Errorf("q=%v σ=%v α=%v: RDP %.17g, dp_accounting %.17g (relative %.1e)", tc.q, tc.sigma, tc.alpha, got[0], tc.want, math.Abs(got[0]/tc.want-1))
		}
	}
}

// Whole guarantees at δ, against dp_accounting over the same orders.
func TestEpsilonAgainstDPAccounting(t *testing.T) {
	cases := []struct {
		name        string
		m           Mechanism
		delta       float64
		want, order float64
	}{
		{"abadi", Mechanism{0.01, 4, 10000}, 1e-5, 1.035490066036133, 17},
		{"no sampling", Mechanism{1, 1, 1}, 1e-5, 4.7527283368198221, 5},
		{"no sampling, composed", Mechanism{1, 10, 100}, 1e-3, 3.5425935380636262, 4.5},
		{"half sampled, little noise", Mechanism{0.5, 0.7, 3}, 1e-5, 10.952773645681924, 3},
		{"delta 1e-6", Mechanism{0.02, 1, 5000}, 1e-6, 11.206584608399847, 3.5},
		{"optdigits batch 64, 20 epochs", Mechanism{64.0 / 3823, 0.9, 1200}, 1e-5, 4.9039664615300325, 4.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := tc.m.Epsilon(tc.delta)
			if err != nil {
				t.Fatal(err)
			}
			if !relClose(g.Epsilon, tc.want, 1e-9, 0) || g.Order != tc.order {
				t.Errorf("%+v at δ=%v: %+v, want ε %v at order %v", tc.m, tc.delta, g, tc.want, tc.order)
			}
		})
	}
}

// bigExp is e^x for x ≥ 0 at f's precision: e^(x/2^k) by its Taylor
// series, then squared k times.
func bigExp(x *big.Float) *big.Float {
	prec := x.Prec()
	y := new(big.Float).SetPrec(prec).Set(x)
	k := 0
	half := big.NewFloat(0.5)
	for y.Cmp(half) > 0 {
		y.Quo(y, big.NewFloat(2))
		k++
	}
	sum := new(big.Float).SetPrec(prec).SetInt64(1)
	term := new(big.Float).SetPrec(prec).SetInt64(1)
	for n := int64(1); n < 200; n++ {
		term.Mul(term, y)
		term.Quo(term, new(big.Float).SetInt64(n))
		sum.Add(sum, term)
	}
	for range k {
		sum.Mul(sum, sum)
	}
	return sum
}

// bigStepRDPInt evaluates the integer-order formula
// A_α = Σ C(α,i) q^i (1-q)^(α-i) exp((i²-i)/(2σ²)) directly, with exact
// binomial coefficients and 400-bit floats: no logarithms, no lgamma, no
// log-space sums. It returns log(A_α)/(α-1), taking the logarithm of
// A_α-1 with log1p so that A_α close to 1 loses nothing.
func bigStepRDPInt(q, sigma float64, alpha int) float64 {
	const prec = 400
	f := func(v float64) *big.Float { return new(big.Float).SetPrec(prec).SetFloat64(v) }
	bq := f(q)
	b1q := new(big.Float).SetPrec(prec).Sub(f(1), bq)
	twoVar := new(big.Float).SetPrec(prec).Mul(f(2), new(big.Float).SetPrec(prec).Mul(f(sigma), f(sigma)))
	pow := func(b *big.Float, n int) *big.Float {
		r := f(1)
		for range n {
			r.Mul(r, b)
		}
		return r
	}
	sum := f(0)
	for i := 0; i <= alpha; i++ {
		c := new(big.Float).SetPrec(prec).SetInt(new(big.Int).Binomial(int64(alpha), int64(i)))
		c.Mul(c, pow(bq, i))
		c.Mul(c, pow(b1q, alpha-i))
		e := new(big.Float).SetPrec(prec).Quo(f(float64(i*i-i)), twoVar)
		c.Mul(c, bigExp(e))
		sum.Add(sum, c)
	}
	am1, _ := sum.Sub(sum, f(1)).Float64()
	return math.Log1p(am1) / float64(alpha-1)
}

// The integer-order series against the same formula evaluated exactly.
func TestRDPIntegerExact(t *testing.T) {
	cases := []struct {
		q, sigma float64
		alpha    int
	}{
		{0.01, 4, 2}, {0.01, 4, 17}, {0.01, 4, 512}, {256.0 / 60000, 1.1, 8}, {256.0 / 60000, 1.1, 63},
		{0.5, 0.7, 3}, {0.9, 2, 63}, {0.1, 0.5, 128}, {0.02, 1, 10}, {0.3, 0.3, 256}, {1e-9, 0.8, 5},
	}
	for _, tc := range cases {
		want := bigStepRDPInt(tc.q, tc.sigma, tc.alpha)
		got := stepRDP(tc.q, tc.sigma, float64(tc.alpha))
		if !relClose(got, want, 1e-11, 1e-24) {
			t.Errorf("q=%v σ=%v α=%d: RDP %.17g, exact %.17g (relative %.1e)", tc.q, tc.sigma, tc.alpha, got, want, math.Abs(got/want-1))
		}
	}
}

// stepRDPQuadrature evaluates the definition, A_α - 1 =
// ∫ N(z; 0, σ²) [(1 - q + q·e^((2z-1)/(2σ²)))^α - 1] dz, by composite
// Simpson over [-40σ, α+40σ] (the mass sits near 0 and near α), and returns
// log(A_α)/(α-1). It shares no code with the series.
func stepRDPQuadrature(q, sigma, alpha float64) float64 {
	lo, hi := -40*sigma, alpha+40*sigma
	const n = 400000 // even
	h := (hi - lo) / n
	logNorm := -math.Log(sigma * math.Sqrt(2*math.Pi))
	f := func(z float64) float64 {
		logMu0 := logNorm - z*z/(2*sigma*sigma)
		l := alpha * math.Log1p(q*math.Expm1((2*z-1)/(2*sigma*sigma)))
		if l > 1 {
			return math.Exp(logMu0+l) - math.Exp(logMu0)
		}
		return math.Exp(logMu0) * math.Expm1(l)
	}
	sum := f(lo) + f(hi)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * f(lo+float64(i)*h)
	}
	return math.Log1p(sum*h/3) / (alpha - 1)
}

// The fractional-order series against the defining integral, which has no
// exact finite form at fractional orders. The series stops at the first
// term below e^-30 (as TensorFlow Privacy's does), an absolute error in
// A_α of about 1e-13, so an RDP as small as these is good to a relative
// 1e-8 or so; the quadrature is good to about 1e-12 (checked against
// mpmath at 40 digits at the third point).
func TestRDPFractionalQuadrature(t *testing.T) {
	cases := []struct{ q, sigma, alpha float64 }{
		{0.01, 4, 1.25}, {0.01, 4, 2.5}, {256.0 / 60000, 1.1, 1.75}, {256.0 / 60000, 1.1, 4.5},
		{0.5, 0.7, 1.5}, {0.9, 2, 2.25}, {0.1, 0.5, 1.5}, {0.02, 1, 3.5}, {0.05, 0.8, 10.5},
	}
	for _, tc := range cases {
		want := stepRDPQuadrature(tc.q, tc.sigma, tc.alpha)
		got := stepRDP(tc.q, tc.sigma, tc.alpha)
		if !relClose(got, want, 2e-8, 0) {
			t.Errorf("q=%v σ=%v α=%v: RDP %.17g, quadrature %.17g (relative %.1e)", tc.q, tc.sigma, tc.alpha, got, want, math.Abs(got/want-1))
		}
	}
}

// Without sampling the mechanism is the Gaussian mechanism: α/(2σ²) per
// step, exactly, at every order.
func TestRDPNoSamplingExact(t *testing.T) {
	orders := DefaultOrders()
	rdp, err := Mechanism{1, 1.5, 7}.RDP(orders)
	if err != nil {
		t.Fatal(err)
	}
	for k, a := range orders {
		if want := a / (2 * 1.5 * 1.5) * 7; rdp[k] != want {
			t.Errorf("order %v: %v, want %v", a, rdp[k], want)
		}
	}
}

// ε grows with the steps and the sampling rate and falls with the noise,
// and no steps spend nothing.
func TestEpsilonMonotone(t *testing.T) {
	eps := func(q, sigma float64, steps int64) float64 {
		t.Helper()
		g, err := Mechanism{q, sigma, steps}.Epsilon(1e-5)
		if err != nil {
			t.Fatal(err)
		}
		return g.Epsilon
	}
	if e := eps(0.01, 1, 0); e != 0 {
		t.Errorf("no steps: ε = %v, want 0", e)
	}
	prev := math.Inf(1)
	for _, sigma := range []float64{0.3, 0.5, 0.8, 1, 1.5, 3, 10, 100} {
		e := eps(0.02, sigma, 1000)
		if !(e < prev) {
			t.Errorf("σ = %v: ε = %v, not below %v", sigma, e, prev)
		}
		prev = e
	}
	prev = 0
	for _, steps := range []int64{1, 10, 100, 1000, 1e5} {
		if e := eps(0.02, 1, steps); !(e > prev) {
			t.Errorf("%d steps: ε = %v, not above %v", steps, e, prev)
		} else {
			prev = e
		}
	}
	prev = 0
	for _, q := range []float64{1e-4, 1e-3, 0.01, 0.1, 0.5, 0.99, 1} {
		if e := eps(q, 1, 100); !(e > prev) {
			t.Errorf("q = %v: ε = %v, not above %v", q, e, prev)
		} else {
			prev = e
		}
	}
}

// Every input out of range is refused with ErrParameter; nothing comes out
// NaN or infinite, even at the ends of the ranges.
func TestMechanismRefuses(t *testing.T) {
	cases := []struct {
		name   string
		m      Mechanism
		delta  float64
		orders []float64
		want   error
	}{
		{"zero sampling rate", Mechanism{0, 1, 1}, 1e-5, nil, ErrParameter},
		{"sampling rate above 1", Mechanism{1.5, 1, 1}, 1e-5, nil, ErrParameter},
		{"NaN sampling rate", Mechanism{math.NaN(), 1, 1}, 1e-5, nil, ErrParameter},
		{"zero noise", Mechanism{0.1, 0, 1}, 1e-5, nil, ErrParameter},
		{"negative noise", Mechanism{0.1, -1, 1}, 1e-5, nil, ErrParameter},
		{"infinite noise", Mechanism{0.1, math.Inf(1), 1}, 1e-5, nil, ErrParameter},
		{"NaN noise", Mechanism{0.1, math.NaN(), 1}, 1e-5, nil, ErrParameter},
		{"negative steps", Mechanism{0.1, 1, -1}, 1e-5, nil, ErrParameter},
		{"too many steps", Mechanism{0.1, 1, MaxSteps + 1}, 1e-5, nil, ErrParameter},
		{"zero delta", Mechanism{0.1, 1, 1}, 0, nil, ErrParameter},
		{"delta 1", Mechanism{0.1, 1, 1}, 1, nil, ErrParameter},
		{"NaN delta", Mechanism{0.1, 1, 1}, math.NaN(), nil, ErrParameter},
		{"order 1", Mechanism{0.1, 1, 1}, 1e-5, []float64{1}, ErrParameter},
		{"NaN order", Mechanism{0.1, 1, 1}, 1e-5, []float64{2, math.NaN()}, ErrParameter},
		{"huge order", Mechanism{0.1, 1, 1}, 1e-5, []float64{1e9}, ErrParameter},
		{"no orders", Mechanism{0.1, 1, 1}, 1e-5, []float64{}, ErrParameter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orders := tc.orders
			if orders == nil {
				orders = DefaultOrders()
			}
			rdp, err := tc.m.RDP(orders)
			if err == nil {
				_, err = EpsilonFromRDP(orders, rdp, tc.delta)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	extremes := []Mechanism{
		{MinSamplingRate, MinNoiseMultiplier, MaxSteps}, {MinSamplingRate, MaxNoiseMultiplier, MaxSteps},
		{1, MinNoiseMultiplier, MaxSteps}, {1, MaxNoiseMultiplier, 1}, {0.5, MinNoiseMultiplier, 1},
		{1 - 1e-16, 0.5, 1}, {0.5, 0.05, 1000}, {0.999, 0.2, 10},
	}
	for _, m := range extremes {
		for _, delta := range []float64{1e-300, 1e-5, 0.999} {
			g, err := m.Epsilon(delta)
			if err != nil && !errors.Is(err, ErrNoGuarantee) {
				t.Errorf("%+v δ=%v: %v", m, delta, err)
			}
			if math.IsNaN(g.Epsilon) || math.IsInf(g.Epsilon, 0) || g.Epsilon < 0 {
				t.Errorf("%+v δ=%v: ε = %v", m, delta, g.Epsilon)
			}
		}
	}
}

func TestEpsilonFromRDPRefuses(t *testing.T) {
	orders := []float64{2, 3}
	cases := []struct {
		name string
		rdp  []float64
		want error
	}{
		{"length mismatch", []float64{1}, ErrParameter},
		{"negative RDP", []float64{1, -1}, ErrParameter},
		{"NaN RDP", []float64{1, math.NaN()}, ErrParameter},
		{"every order unbounded", []float64{math.Inf(1), math.Inf(1)}, ErrNoGuarantee},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if g, err := EpsilonFromRDP(orders, tc.rdp, 1e-5); !errors.Is(err, tc.want) {
				t.Fatalf("got %+v, %v; want %v", g, err, tc.want)
			}
		})
	}
	// An unbounded order is skipped, not fatal.
	g, err := EpsilonFromRDP(orders, []float64{math.Inf(1), 0.5}, 1e-5)
	if err != nil || g.Order != 3 {
		t.Fatalf("got %+v, %v; want the guarantee at order 3", g, err)
	}
	// RDP so small that δ already bounds the total variation: ε = 0.
	if g, err := EpsilonFromRDP(orders, []float64{1e-12, 1e-12}, 1e-5); err != nil || g.Epsilon != 0 {
		t.Fatalf("got %+v, %v; want ε = 0", g, err)
	}
}

// logErfc against SciPy's log(2) + log_ndtr(-x√2), on both sides of the
// switch to the asymptotic series.
func TestLogErfc(t *testing.T) {
	cases := []struct{ x, want float64 }{
		{-3, 0.69313613525044682},
		{0, 0},
		{1, -1.8496055099332489},
		{5, -27.200889545537446},
		{10, -102.87988902484493},
		{24.9, -623.79803756557465},
		{25, -628.79203917407199},
		{25.1, -633.80602485873533},
		{30, -903.97411711064422},
		{100, -10005.177585122668},
		{1e4, -100000009.78270535},
	}
	for _, tc := range cases {
		if got := logErfc(tc.x); !relClose(got, tc.want, 1e-14, 1e-16) {
			t.Errorf("logErfc(%v) = %.17g, want %.17g", tc.x, got, tc.want)
		}
	}
	below, above := math.Log(math.Erfc(logErfcSeriesFrom)), logErfc(logErfcSeriesFrom)
	if !relClose(above, below, 1e-14, 0) {
		t.Errorf("at the switch: Erfc gives %v, the series %v", below, above)
	}
}

func TestLogSub(t *testing.T) {
	tinyBelow1 := 1 - 1e-12 // a float64, so that 1-tinyBelow1 is what logSub sees
	cases := []struct {
		name     string
		x, y     float64
		want     float64
		negative bool
	}{
		{"ordinary", math.Log(5), math.Log(3), math.Log(2), false},
		{"tiny difference", 1, tinyBelow1, 1 + math.Log(-math.Expm1(tinyBelow1-1)), false},
		{"huge difference", 800, 1, 800, false},
		{"zero subtrahend", 2, math.Inf(-1), 2, false},
		{"equal", 3, 3, math.Inf(-1), false},
		{"negative result", 1, 2, 0, true},
	}
	for _, tc := range cases {
		got, ok := logSub(tc.x, tc.y)
		if ok == tc.negative || ok && !(got == tc.want || relClose(got, tc.want, 1e-12, 1e-15)) {
			t.Errorf("%s: logSub(%v, %v) = %v, %v; want %v", tc.name, tc.x, tc.y, got, ok, tc.want)
		}
	}
}
