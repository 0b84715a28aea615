package filter

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/quantize"
)

// The built-in filters' names, as a site's privacy.json and a job's
// manifest name them.
const (
	NameExcludeVars       = "exclude_vars"
	NamePercentilePrivacy = "percentile_privacy"
	NameSVTPrivacy        = "svt_privacy"
	NameGaussianPrivacy   = "gaussian_privacy"
	NameQuantize          = "quantize"
)

// Names lists the built-in filters' names, in the order of the package
// documentation.
func Names() []string {
	return []string{NameExcludeVars, NamePercentilePrivacy, NameSVTPrivacy, NameGaussianPrivacy, NameQuantize}
}

// Reasons a filter refuses. Input errors wrap model.ErrInvalid (a
// malformed local or global model, NaNs and infinities included) or
// model.ErrLayout (the two disagree); the list below only grows.
var (
	// ErrArg: a filter's configuration is out of its range; the error is
	// an *ArgError.
	ErrArg = errors.New("filter argument out of range")
	// ErrNonFinite: the filtered model would hold a value that is not a
	// finite float32 (a diff beyond float32's range, a codec's overflow,
	// noise beyond the range). Nothing non-finite ever leaves a filter.
	ErrNonFinite = errors.New("filtered value not finite")
	// ErrNoProgress: the sparse vector technique could not accept enough
	// values within MaxSVTPasses passes.
	ErrNoProgress = errors.New("filter made no progress")
)

// ArgError is a configuration a filter refuses: which filter, which of
// its arguments (as privacy.json names it; empty when the problem is the
// combination) and what is wrong. It wraps ErrArg.
type ArgError struct {
	Filter string // e.g. "percentile_privacy"
	Arg    string // e.g. "gamma"; "" for the configuration as a whole
	Msg    string // e.g. "-1 is not a positive number"
}

// Error reads e.g. "percentile_privacy: gamma: -1 is not a positive number".
func (e *ArgError) Error() string {
	if e.Arg == "" {
		return e.Filter + ": " + e.Msg
	}
	return e.Filter + ": " + e.Arg + ": " + e.Msg
}

// Unwrap returns ErrArg.
func (e *ArgError) Unwrap() error { return ErrArg }

// Filter is one privacy filter on what leaves a site (a task result: the
// local update) or enters it (task data: the global model).
//
// Apply works on the diff local - global, as NVIDIA FLARE's filters work on
// weight diffs, and returns the filtered local model: global plus the
// filtered diff, a new model with the local's layout that shares no memory
// with either input, which Apply never changes. It refuses a malformed local
// or global model (a NaN or an infinity included; the error wraps
// model.ErrInvalid) and two models whose layouts differ (model.ErrLayout),
// and never returns a non-finite value (ErrNonFinite). A nil global is a
// reference of zeros: the filter works on local's values themselves, which
// is how a task data filter sees the global model entering a site when
// the site holds no earlier model to compare it with. On error the model is
// nil and the Report says what was learnt before the refusal.
//
// A Filter is safe for concurrent use. Params are the filter's arguments
// as text, for the audit; they never hold secret randomness.
type Filter interface {
	Name() string
	Params() map[string]string
	Apply(global, local *model.Model) (*model.Model, Report, error)
}

// Report is what one application of a filter did, for the site's audit:
// fields a filter does not use are zero. Nothing in it is the filter's
// secret randomness (the noise drawn, SVT's noisy threshold), but some
// fields are computed from the unfiltered update and protected by no
// noise: Clipped, Norm, NormClipped, Cutoff, Passes and Effect's errors.
// They stay in the site's own records; Shareable is the report without
// them, what may leave the site (to the server's audit, an admin's
// status).
type Report struct {
	Filter string // the filter's name
	// Values is the number of values the filter looked at: every value
	// of the model, the excluded tensors' included.
	Values int
	// Zeroed counts values whose diff the filter set to zero, so that
	// the filtered model holds the global's value there: exclude_vars'
	// tensors, percentile_privacy's values inside the cutoff,
	// svt_privacy's values not released.
	Zeroed int
	// Clipped counts values clipped to [-gamma, gamma] (percentile and
	// SVT privacy; for SVT, among the values released; site only).
	Clipped int

	// Excluded names the tensors exclude_vars did not send, in the
	// model's order, and Mask says the same by position: Mask[i] is true
	// when the model's tensor i is excluded. The filtered model holds the
	// global's values there; an aggregator must leave the site out of
	// those tensors' averages (RunChain passes them to no later filter).
	Excluded []string
	Mask     []bool
	// Unmatched lists the names exclude_vars was given that the model
	// does not have (a pattern that matches nothing is reported as
	// itself).
	Unmatched []string

	// Cutoff is percentile_privacy's cutoff on |diff/steps| (site only).
	Cutoff float64

	// Norm is gaussian_privacy's L2 norm of the diff before clipping and
	// NormClipped whether it was scaled down (both site only); ClipNorm
	// is its C.
	Norm        float64
	NormClipped bool
	ClipNorm    float64
	// NoiseStd is the standard deviation of gaussian_privacy's noise
	// (sigma*C), or the scale of svt_privacy's Laplace noise on the values
	// it releases (2*gamma/noise_var).
	NoiseStd float64

	// Uploaded is svt_privacy's c, the number of values it accepts before
	// it halts; Released counts the distinct values released (c, or fewer
	// when sampling with replacement draws one twice) and Passes the passes
	// over the model it took (site only).
	Uploaded int
	Released int
	Passes   int

	// Effect is what quantize's codec did to the diff: encoded size and
	// (site only) error.
	Effect *quantize.Effect

	// Privacy is the formal guarantee the filter's step gives, nil for the
	// filters that give none (exclude_vars, percentile_privacy, quantize).
	Privacy *Privacy
}

// Shareable is r without the fields computed from the unfiltered update
// (Clipped, Norm, NormClipped, Cutoff, Passes, Effect's errors), which no
// filter's noise protects: what may leave the site. Everything kept
// follows from the filter's parameters, the model's layout or the
// filtered model that leaves anyway.
func (r Report) Shareable() Report {
	r.Clipped, r.Norm, r.NormClipped, r.Cutoff, r.Passes = 0, 0, false, 0, 0
	if r.Effect != nil {
		e := *r.Effect
		e.MaxAbsError, e.RelL2Error = 0, 0
		r.Effect = &e
	}
	return r
}

// How a Privacy statement composes over rounds.
const (
	// AccountantPureSum: pure ε-DP (δ = 0) that adds up round after
	// round, as FLARE's SVT ledger adds it (its "pure_dp_sum").
	AccountantPureSum = "pure-dp-sum"
	// AccountantRDP: one step of the Gaussian mechanism, for the site's
	// dp.Accountant (Mechanism), which converts the sum of its RDP to
	// (ε, δ) at the scope's δ.
	AccountantRDP = "rdp-gaussian"
)

// Privacy is the differential privacy statement of one application of a
// filter, with respect to the site's whole update (client-level DP).
type Privacy struct {
	Accountant string // AccountantPureSum or AccountantRDP

	// Epsilon and Delta are the guarantee of this application for
	// AccountantPureSum (SVT): Epsilon = EpsilonThreshold + EpsilonQuery +
	// EpsilonRelease, Delta = 0, as FLARE's ledger records it.
	Epsilon          float64
	Delta            float64
	EpsilonThreshold float64
	EpsilonQuery     float64
	EpsilonRelease   float64

	// Mechanism is gaussian_privacy's step for AccountantRDP: one step at
	// sampling rate 1 with the filter's noise multiplier.
	Mechanism *dp.Mechanism
}

// Config is a built-in filter's configuration: ExcludeVars, Percentile,
// SVT, Gaussian or Quantize (no other type implements it). Validate
// reports the first argument out of range as an *ArgError; Params are the
// arguments as text, for the audit.
type Config interface {
	Name() string
	Validate() error
	Params() map[string]string
	build(o *options) (Filter, error)
}

// Option configures New.
type Option func(*options) error

type options struct {
	seed *[32]byte
}

// WithSeed makes the randomness of the filters that draw any
// (svt_privacy, gaussian_privacy) a function of seed: for tests and for
// replaying a run. Anyone who knows the seed can subtract the noise, so a
// seed never comes from a job manifest or anywhere outside the site.
// Without it every filter seeds a ChaCha8 generator from crypto/rand.
func WithSeed(seed [32]byte) Option {
	return func(o *options) error {
		o.seed = &seed
		return nil
	}
}

// New builds the filter a configuration describes, after validating it.
func New(c Config, opts ...Option) (Filter, error) {
	if c == nil {
		return nil, errors.New("filter: no configuration")
	}
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.build(&o)
}

// CheckInputs refuses what no filter applies to: a malformed local or
// global model, non-finite values, and layouts that differ; name begins
// the error. A global whose tensors are local's own memory (a site that
// sends back the model it got) is not scanned a second time. It is the
// check every Filter's Apply makes, and the one a FilterInto's caller
// makes before ApplyInto.
func CheckInputs(name string, global, local *model.Model) error {
	if err := local.Validate(); err != nil {
		return fmt.Errorf("%s: the local model: %w", name, err)
	}
	if global == nil {
		return nil
	}
	if !SameMemory(global, local) { // else local's values, just checked
		if err := global.Validate(); err != nil {
			return fmt.Errorf("%s: the global model: %w", name, err)
		}
	}
	if err := local.SameLayout(global); err != nil {
		return fmt.Errorf("%s: the local and global models: %w", name, err)
	}
	return nil
}

// SameMemory says whether every tensor of a is b's same tensor's memory
// (the same first value and the same length): how a filter that changes
// nothing answers, and how a caller tells that global and local are one
// model. Names and shapes are not compared (see model.SameLayout).
func SameMemory(a, b *model.Model) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Tensors) != len(b.Tensors) {
		return false
	}
	for i, t := range a.Tensors {
		u := b.Tensors[i].Data
		if len(t.Data) != len(u) || (len(u) > 0 && &t.Data[0] != &u[0]) {
			return false
		}
	}
	return true
}

// globalData is the global's data for tensor i, nil for a nil global
// (a reference of zeros).
func globalData(global *model.Model, i int) []float32 {
	if global == nil {
		return nil
	}
	return global.Tensors[i].Data
}

// ref is the reference value at j of a tensor's global data g (0 for nil).
func ref(g []float32, j int) float64 {
	if g == nil {
		return 0
	}
	return float64(g[j])
}

// newLike allocates a model with m's layout (names and shapes copied) and
// zeroed data.
func newLike(m *model.Model) *model.Model {
	out := &model.Model{Tensors: make([]model.Tensor, len(m.Tensors))}
	for i, t := range m.Tensors {
		out.Tensors[i] = model.Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: make([]float32, len(t.Data))}
	}
	return out
}

// setGlobal makes out's tensor i hold the global's values (zeros for a
// nil global).
func setGlobal(out, global *model.Model, i int) {
	if g := globalData(global, i); g != nil {
		copy(out.Tensors[i].Data, g)
	} else {
		clear(out.Tensors[i].Data)
	}
}

// toFloat32 rounds v for the filtered model, refusing what float32 cannot
// hold.
func toFloat32(name, tensor string, j int, v float64) (float32, error) {
	f := float32(v)
	if f-f != 0 {
		return 0, fmt.Errorf("%s: %w: tensor %q value %d would be %v", name, ErrNonFinite, tensor, j, v)
	}
	return f, nil
}

// formatFloat writes a parameter the shortest way that reads back exactly.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ParamsString renders params as "k=v k=v" in key order, for logs and
// golden files.
func ParamsString(params map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(params)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// positive reports whether v is a finite number above zero.
func positive(v float64) bool { return v > 0 && !math.IsInf(v, 1) }

// MaxSteps bounds the steps argument of percentile and SVT privacy.
const MaxSteps = 1 << 30

// checkSteps validates a steps argument.
func checkSteps(name string, steps int) error {
	if steps < 1 || steps > MaxSteps {
		return &ArgError{Filter: name, Arg: "steps", Msg: fmt.Sprintf("%d is not a whole number from 1 to %d", steps, MaxSteps)}
	}
	return nil
}
