package aggregator

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Method names how a round's updates are combined.
type Method string

// The methods a job can choose.
const (
	// FedAvg is the mean weighted by each site's weight (its committed,
	// capped sample count).
	FedAvg Method = "fedavg"
	// Median is the coordinate-wise median of the updates, unweighted
	// (the mean of the two middle values for an even count).
	Median Method = "median"
	// TrimmedMean drops, at each coordinate, the Trim (or TrimFraction of
	// the updates) lowest and highest values and averages the rest,
	// unweighted.
	TrimmedMean Method = "trimmed_mean"
	// Krum selects the one update whose summed squared distance to its
	// n-f-2 nearest neighbours is smallest (Blanchard et al., 2017).
	Krum Method = "krum"
	// MultiKrum averages, unweighted, the KrumM updates of best Krum score.
	MultiKrum Method = "multi_krum"
)

// Violation says what happens to an update that exceeds the norm bound.
type Violation string

// The answers to a norm-bound violation.
const (
	// Clip scales the update's difference from the global model down to
	// the bound (the default); the site's reason is reported as clipped.
	Clip Violation = "clip"
	// Refuse leaves the update out of the round; the site's reason is
	// reported as refused.
	Refuse Violation = "refuse"
)

// DefaultRelativeNormBound is the norm bound when a job sets none: an
// update may be at most this many times the round's median distance from
// the global model. Honest sites training on similar data land within a
// small factor of each other, so they are rarely clipped; an update boosted
// many times is clipped back to this.
const DefaultRelativeNormBound = 3

// DefaultScreenRatio is how many times the round's median Krum score an
// update's must exceed for the Krum screen to leave it out. It was chosen
// on optdigits with logistic regression, 5 sites under Dirichlet(0.5)
// label skew, where a reversed update scores 2x or more in most rounds and
// honest ones stay under it; with the MLP some honest updates score up to
// 3.7x in later rounds and are left out, which costs that job about a
// point. A job trades protection against that with screen_ratio or
// screen: none.
const DefaultScreenRatio = 1.8

// DefaultShareCap is the cap on one site's share of the FedAvg weight
// among n sites when a job sets none: twice a fair share, 2/n, so that a
// site may hold more data than the others but not outweigh them (none for
// two sites or fewer, where any cap would hold both to the same weight).
func DefaultShareCap(n int) float64 {
	if n <= 2 {
		return 1
	}
	return 2 / float64(n)
}

// Rule is how a job aggregates, from the manifest's aggregation section.
// The zero value is the safe default: FedAvg, each update's distance from
// the round's global model bounded at DefaultRelativeNormBound times the
// round's median distance, a violating update clipped, no site above
// twice a fair share of the weight (DefaultShareCap), and the Krum screen (ScreenKrum) on rounds
// of five updates or more.
//
//	aggregation:
//	  method: median          # fedavg (default) | median | trimmed_mean | krum | multi_krum
//	  norm_bound: 5           # absolute L2 bound on (update - global); with relative_norm_bound both apply
//	  relative_norm_bound: 3  # x the round's median distance (default 3 when neither bound is set)
//	  on_violation: clip      # clip (default) | refuse
//	  trim: 1                 # trimmed_mean: values dropped per side per coordinate (default 1)
//	  trim_fraction: 0.2      # trimmed_mean: or a fraction of the updates per side, in (0, 0.5)
//	  krum_f: 1               # krum, multi_krum, the screen: hostile updates tolerated (default 1); fewer in rounds under 2f+3
//	  krum_m: 2               # multi_krum: updates averaged (default n - f)
//	  max_share: 0.5          # cap on one site's share of the FedAvg weight, in (0, 1] (default 2/n: twice a fair share)
//	  screen: krum            # krum (default): leave out up to f clearly outlying updates of rounds of 2f+3 or more; none
//	  screen_ratio: 1.8       # krum screen: an update is outlying above this times the round's median Krum score
//	  unbounded: true         # DEFENCES OFF: no norm bound, no share cap; for experiments only
//
// Krum and Multi-Krum need every site's whole update at once, so they are
// refused for models streamed in chunks (see Streamable).
type Rule struct {
	Method            Method    `yaml:"method,omitempty"`
	NormBound         float64   `yaml:"norm_bound,omitempty"`
	RelativeNormBound float64   `yaml:"relative_norm_bound,omitempty"`
	OnViolation       Violation `yaml:"on_violation,omitempty"`
	Trim              int       `yaml:"trim,omitempty"`
	TrimFraction      float64   `yaml:"trim_fraction,omitempty"`
	KrumF             int       `yaml:"krum_f,omitempty"`
	KrumM             int       `yaml:"krum_m,omitempty"`
	MaxShare          float64   `yaml:"max_share,omitempty"`
	Screen            Screen    `yaml:"screen,omitempty"`
	ScreenRatio       float64   `yaml:"screen_ratio,omitempty"`
	Unbounded         bool      `yaml:"unbounded,omitempty"`
}

// Screen says whether a round's updates are screened before they are
// combined.
type Screen string

// The screens.
const (
	// ScreenKrum (the default) scores each update of a round of at least
	// 2f+3 (f = krum_f, default 1) by Krum: the sum of its squared
	// distances to its n-f-2 nearest others. Of those whose score is more
	// than screen_ratio (default DefaultScreenRatio) times the round's
	// median score, the f worst are left out of the round. An update that
	// pulls against the rest without being larger than them (a reversed
	// update, which no norm bound sees) stands out so; honest updates,
	// however skewed the sites' data, rarely do, so honest rounds keep
	// every update. Models streamed in chunks are not screened (Krum needs
	// whole updates at once).
	ScreenKrum Screen = "krum"
	// ScreenNone combines every update the norm bound lets through.
	ScreenNone Screen = "none"
)

// maxRuleCount bounds trim, krum_f and krum_m: no federation has more sites.
const maxRuleCount = 10000

// Validate checks every field; problems are joined, each naming its field
// as the manifest spells it ("aggregation.trim: ...").
func (r Rule) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("aggregation.%s: "+format, append([]any{field}, a...)...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	m := r.method()
	switch m {
	case FedAvg, Median, TrimmedMean, Krum, MultiKrum:
	default:
		bad("method", "%q is not one of fedavg, median, trimmed_mean, krum, multi_krum", r.Method)
	}
	if !finite(r.NormBound) || r.NormBound < 0 {
		bad("norm_bound", "%v is not a positive number (unbounded: true turns the bound off)", r.NormBound)
	}
	if !finite(r.RelativeNormBound) || r.RelativeNormBound < 0 || (r.RelativeNormBound > 0 && r.RelativeNormBound < 1) {
		bad("relative_norm_bound", "%v is not a number of at least 1 (a multiple of the round's median distance)", r.RelativeNormBound)
	}
	if r.Unbounded && (r.NormBound != 0 || r.RelativeNormBound != 0 || r.OnViolation != "" || r.MaxShare != 0) {
		bad("unbounded", "turns every bound off: norm_bound, relative_norm_bound, on_violation and max_share must be unset")
	}
	switch r.OnViolation {
	case "", Clip, Refuse:
	default:
		bad("on_violation", "%q is not clip or refuse", r.OnViolation)
	}
	if m != TrimmedMean && (r.Trim != 0 || r.TrimFraction != 0) {
		bad("trim", "trim and trim_fraction are for method trimmed_mean only")
	}
	if r.Trim < 0 || r.Trim > maxRuleCount {
		bad("trim", "%d is not in 0..%d", r.Trim, maxRuleCount)
	}
	if !finite(r.TrimFraction) || r.TrimFraction < 0 || r.TrimFraction >= 0.5 {
		bad("trim_fraction", "%v is not in (0, 0.5)", r.TrimFraction)
	}
	if r.Trim != 0 && r.TrimFraction != 0 {
		bad("trim", "give trim or trim_fraction, not both")
	}
	if m != Krum && m != MultiKrum && r.KrumM != 0 {
		bad("krum_m", "krum_m is for method multi_krum only")
	}
	switch r.Screen {
	case "", ScreenKrum, ScreenNone:
	default:
		bad("screen", "%q is not krum or none", r.Screen)
	}
	if r.Unbounded && (r.Screen == ScreenKrum || r.ScreenRatio != 0) {
		bad("screen", "unbounded turns the screen off")
	}
	if !finite(r.ScreenRatio) || r.ScreenRatio < 0 || r.ScreenRatio > 0 && r.ScreenRatio < 1 {
		bad("screen_ratio", "%v is not a number of at least 1 (a multiple of the round's median Krum score)", r.ScreenRatio)
	}
	if r.KrumF < 0 || r.KrumF > maxRuleCount {
		bad("krum_f", "%d is not in 0..%d", r.KrumF, maxRuleCount)
	}
	if r.KrumM < 0 || r.KrumM > maxRuleCount || (m == Krum && r.KrumM > 1) {
		bad("krum_m", "%d is not in 0..%d (krum selects 1; multi_krum selects krum_m)", r.KrumM, maxRuleCount)
	}
	if !finite(r.MaxShare) || r.MaxShare < 0 || r.MaxShare > 1 {
		bad("max_share", "%v is not in (0, 1]", r.MaxShare)
	}
	return errors.Join(errs...)
}

// Streamable says whether the rule can aggregate models streamed in chunks:
// Krum and Multi-Krum cannot, since they compare whole updates and then
// need the selected ones again, which would hold every site's model (a
// stream is pulled once; bus/stream has no second pull).
func (r Rule) Streamable() error {
	if m := r.method(); m == Krum || m == MultiKrum {
		return fmt.Errorf("aggregation method %s cannot aggregate streamed models: it needs every site's whole update at once, "+
			"and an update stream can be pulled only once; choose median or trimmed_mean", m)
	}
	return nil
}

// ShareCap is the largest share of the FedAvg weight one of n sites may
// have: MaxShare, DefaultShareCap(n) when unset, 1 (no cap) when Unbounded.
func (r Rule) ShareCap(n int) float64 {
	switch {
	case r.Unbounded:
		return 1
	case r.MaxShare == 0:
		return DefaultShareCap(n)
	}
	return r.MaxShare
}

// screens says whether a round of n whole updates is screened: by default
// and with screen krum, for methods other than Krum's own, with the
// defences on, when there are at least 2f+3 updates.
func (r Rule) screens(n int) bool {
	m := r.method()
	return !r.Unbounded && r.Screen != ScreenNone && m != Krum && m != MultiKrum && n >= 2*r.krumF()+3
}

// outliers are the updates of k the Krum screen leaves out, by index, with
// the reason: of those scoring above the screen ratio times the median
// score, the krumF worst.
func (r Rule) outliers(g []float32, k *kept) map[int]string {
	f := r.krumF()
	scores := krumScores(g, k, f)
	med := medianOf(slices.Clone(scores))
	ratio := r.ScreenRatio
	if ratio == 0 {
		ratio = DefaultScreenRatio
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	out := map[int]string{}
	for _, i := range idx[:f] {
		if scores[i] > ratio*med {
			out[i] = fmt.Sprintf("left out by the Krum screen: its score (summed squared distance to its %d nearest updates) is %.3g times the round's median, over %g",
				len(scores)-f-2, scores[i]/med, ratio)
		}
	}
	return out
}

// method is the chosen method, FedAvg when unset.
func (r Rule) method() Method {
	if r.Method == "" {
		return FedAvg
	}
	return r.Method
}

// violation is what a violating update gets, Clip when unset.
func (r Rule) violation() Violation {
	if r.OnViolation == "" {
		return Clip
	}
	return r.OnViolation
}

// relative is the relative norm bound in force: DefaultRelativeNormBound
// when no bound is set, 0 (none) when only an absolute one is, or when
// Unbounded.
func (r Rule) relative() float64 {
	switch {
	case r.Unbounded:
		return 0
	case r.RelativeNormBound == 0 && r.NormBound == 0:
		return DefaultRelativeNormBound
	}
	return r.RelativeNormBound
}

// bounded says whether any norm bound is in force.
func (r Rule) bounded() bool { return !r.Unbounded }

// Lockstep says whether a streamed round must see every site's chunk i
// together (NewRuleSum): every rule but unbounded FedAvg, which folds each
// chunk alone (NewStreamSum).
func (r Rule) Lockstep() bool { return r.bounded() || r.method() != FedAvg }
