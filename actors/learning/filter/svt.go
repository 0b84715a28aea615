package filter

import (
	cryptorand "crypto/rand"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// MaxSVTPasses bounds svt_privacy's passes over the model: a tau far above
// the query noise would otherwise keep it looping (FLARE's loop has no
// bound). Reaching it is ErrNoProgress.
const MaxSVTPasses = 1000

// SVT configures svt_privacy, FLARE's SVTPrivacy on its standard path (the
// budget split FLARE computes itself; its epsilon_threshold,
// epsilon_query and epsilon_release overrides are not offered). Fraction
// in (0, 1] is the share of the values released; Epsilon (> 0) the budget
// of the threshold and the queries; NoiseVar (> 0) sets the release noise
// (a release budget of c*NoiseVar, FLARE's legacy rule); Gamma (> 0) the
// clipping bound, and the sensitivity; Tau (≥ 0) the threshold before its
// noise; Replace whether the c released values are drawn with replacement
// from those accepted; Steps as for Percentile. DefaultSVT has FLARE's
// defaults. The package documentation gives the algorithm and its
// accounting.
type SVT struct {
	Fraction float64
	Epsilon  float64
	NoiseVar float64
	Gamma    float64
	Tau      float64
	Replace  bool
	Steps    int
}

// DefaultSVT is FLARE's default: fraction 0.1, epsilon 0.1, noise_var 0.1,
// gamma 1e-5, tau 1e-6, replace true, and one step.
func DefaultSVT() SVT {
	return SVT{Fraction: 0.1, Epsilon: 0.1, NoiseVar: 0.1, Gamma: 1e-5, Tau: 1e-6, Replace: true, Steps: 1}
}

// Name returns "svt_privacy".
func (SVT) Name() string { return NameSVTPrivacy }

// Validate checks the ranges above.
func (c SVT) Validate() error {
	fail := func(arg string, v float64, want string) error {
		return &ArgError{Filter: NameSVTPrivacy, Arg: arg, Msg: fmt.Sprintf("%v is not %s", v, want)}
	}
	switch {
	case !(c.Fraction > 0 && c.Fraction <= 1):
		return fail("fraction", c.Fraction, "a number above 0 and at most 1")
	case !positive(c.Epsilon):
		return fail("epsilon", c.Epsilon, "a finite positive number")
	case !positive(c.NoiseVar):
		return fail("noise_var", c.NoiseVar, "a finite positive number")
	case !positive(c.Gamma):
		return fail("gamma", c.Gamma, "a finite positive number")
	case !(c.Tau >= 0) || math.IsInf(c.Tau, 1):
		return fail("tau", c.Tau, "a finite number of at least 0")
	}
	return checkSteps(NameSVTPrivacy, c.Steps)
}

// Params are fraction, epsilon, noise_var, gamma, tau, replace and steps.
func (c SVT) Params() map[string]string {
	return map[string]string{
		"fraction": formatFloat(c.Fraction), "epsilon": formatFloat(c.Epsilon), "noise_var": formatFloat(c.NoiseVar),
		"gamma": formatFloat(c.Gamma), "tau": formatFloat(c.Tau), "replace": strconv.FormatBool(c.Replace),
		"steps": strconv.Itoa(c.Steps),
	}
}

func (c SVT) build(o *options) (Filter, error) {
	return &svtFilter{cfg: c, rng: newRand(o)}, nil
}

// newRand is a ChaCha8 generator seeded from crypto/rand, or from the
// seed WithSeed gave.
func newRand(o *options) *rand.Rand {
	var seed [32]byte
	if o.seed != nil {
		seed = *o.seed
	} else {
		cryptorand.Read(seed[:]) // never fails (crypto/rand since Go 1.24)
	}
	return rand.New(rand.NewChaCha8(seed))
}

var (
	_ Config = SVT{}
	_ Filter = (*svtFilter)(nil)
)

type svtFilter struct {
	cfg SVT
	mu  sync.Mutex // guards rng
	rng *rand.Rand
}

func (f *svtFilter) Name() string              { return NameSVTPrivacy }
func (f *svtFilter) Params() map[string]string { return f.cfg.Params() }

// laplace draws from Laplace(0, b): the difference of two exponentials of
// mean b.
func laplace(r *rand.Rand, b float64) float64 { return b * (r.ExpFloat64() - r.ExpFloat64()) }

// svtSplit is FLARE's standard budget split for c released values:
// epsilon_threshold : epsilon_query = 1 : (2c)^(2/3), and a release budget
// of c*noise_var.
func svtSplit(epsilon, noiseVar float64, c int) (threshold, query, release float64) {
	threshold = epsilon / (1 + math.Pow(2*float64(c), 2.0/3.0))
	return threshold, epsilon - threshold, float64(c) * noiseVar
}

// Apply runs the sparse vector technique on x = clip(diff/steps, ±gamma)
// (see the package documentation) and returns global plus the released
// diffs.
func (f *svtFilter) Apply(global, local *model.Model) (*model.Model, Report, error) {
	rep := Report{Filter: NameSVTPrivacy}
	if err := CheckInputs(NameSVTPrivacy, global, local); err != nil {
		return nil, rep, err
	}
	cfg := f.cfg
	steps := float64(cfg.Steps)
	n := local.NumParams()
	rep.Values = n
	out := newLike(local)
	for i := range out.Tensors {
		setGlobal(out, global, i)
	}
	if n == 0 {
		return out, rep, nil
	}
	// x[k] is value k's diff per step, in the model's order.
	x := make([]float64, 0, n)
	for i, t := range local.Tensors {
		g := globalData(global, i)
		for j, v := range t.Data {
			x = append(x, (float64(v)-ref(g, j))/steps)
		}
	}
	c := int(math.Min(math.Ceil(float64(n)*cfg.Fraction), float64(n)))
	epsT, epsQ, epsR := svtSplit(cfg.Epsilon, cfg.NoiseVar, c)
	lambdaRho := cfg.Gamma / epsT                 // threshold noise
	lambdaNu := cfg.Gamma * 2 * float64(c) / epsQ // query noise
	release := cfg.Gamma * 2 * float64(c) / epsR  // release noise, 2*gamma/noise_var
	rep.Uploaded, rep.NoiseStd = c, release

	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rng
	threshold := cfg.Tau + laplace(r, lambdaRho)
	// SVT asks the values in a random order, pass after pass over those
	// not yet accepted, and halts at the c-th positive answer. Each
	// answer is independent of the others given the threshold, so the
	// same distribution comes from answering a whole pass in the model's
	// order and, when it brings more positives than are still needed,
	// keeping a uniform subset of them (a partial Fisher-Yates shuffle):
	// the first positives of a random order are such a subset.
	accepted := make([]bool, n)
	pool := make([]int, 0, c)
	positives := make([]int, 0, n)
	for len(pool) < c {
		if rep.Passes == MaxSVTPasses {
			return nil, rep, fmt.Errorf("%s: %w: fewer than %d values crossed the noisy threshold in %d passes; "+
				"tau %v is too large against the query noise scale %v", NameSVTPrivacy, ErrNoProgress, c, rep.Passes, cfg.Tau, lambdaNu)
		}
		rep.Passes++
		positives = positives[:0]
		for k, v := range x {
			if !accepted[k] && math.Abs(clip(v, cfg.Gamma))+laplace(r, lambdaNu) >= threshold {
				positives = append(positives, k)
			}
		}
		need := c - len(pool)
		if len(positives) > need {
			for i := range need {
				j := i + r.IntN(len(positives)-i)
				positives[i], positives[j] = positives[j], positives[i]
			}
			positives = positives[:need]
		}
		for _, k := range positives {
			accepted[k] = true
		}
		pool = append(pool, positives...)
	}
	// Release c draws among the c accepted, as FLARE samples its accepted
	// values: with replacement (a value drawn twice is released once, with
	// one draw of noise, as numpy's assignment keeps the last of its
	// draws), or without, which releases all c.
	released := accepted // reused: cleared, then marks the values released
	clear(released)
	if cfg.Replace {
		for range c {
			released[pool[r.IntN(c)]] = true
		}
	} else {
		for _, k := range pool {
			released[k] = true
		}
	}
	k := 0
	for i, t := range local.Tensors {
		g, o := globalData(global, i), out.Tensors[i].Data
		for j := range t.Data {
			if !released[k] {
				k++
				continue
			}
			v := x[k]
			k++
			if math.Abs(v) > cfg.Gamma {
				rep.Clipped++
			}
			y, err := toFloat32(NameSVTPrivacy, t.Name, j, ref(g, j)+(clip(v, cfg.Gamma)+laplace(r, release))*steps)
			if err != nil {
				return nil, rep, err
			}
			o[j] = y
			rep.Released++
		}
	}
	rep.Zeroed = n - rep.Released
	rep.Privacy = &Privacy{
		Accountant:       AccountantPureSum,
		Epsilon:          epsT + epsQ + epsR,
		EpsilonThreshold: epsT,
		EpsilonQuery:     epsQ,
		EpsilonRelease:   epsR,
	}
	return out, rep, nil
}

// clip is v clipped to [-gamma, gamma].
func clip(v, gamma float64) float64 { return math.Max(-gamma, math.Min(gamma, v)) }
