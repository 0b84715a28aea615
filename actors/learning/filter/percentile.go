package filter

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Percentile configures percentile_privacy, FLARE's PercentilePrivacy
// (Shokri and Shmatikov, "Privacy-preserving deep learning", CCS 2015):
// only the largest diffs are shared, and those clipped. Percentile is in
// [0, 100], Gamma finite and positive, Steps (the local steps of the round,
// by which the diff is divided first, FLARE's NUM_STEPS_CURRENT_ROUND) from
// 1 to MaxSteps. DefaultPercentile has FLARE's defaults.
type Percentile struct {
	Percentile float64
	Gamma      float64
	Steps      int
}

// DefaultPercentile is FLARE's default: percentile 10, gamma 0.01, and one
// step.
func DefaultPercentile() Percentile { return Percentile{Percentile: 10, Gamma: 0.01, Steps: 1} }

// Name returns "percentile_privacy".
func (Percentile) Name() string { return NamePercentilePrivacy }

// Validate checks the ranges above.
func (c Percentile) Validate() error {
	if !(c.Percentile >= 0 && c.Percentile <= 100) {
		return &ArgError{Filter: NamePercentilePrivacy, Arg: "percentile", Msg: fmt.Sprintf("%v is not a number from 0 to 100", c.Percentile)}
	}
	if !positive(c.Gamma) {
		return &ArgError{Filter: NamePercentilePrivacy, Arg: "gamma", Msg: fmt.Sprintf("%v is not a finite positive number", c.Gamma)}
	}
	return checkSteps(NamePercentilePrivacy, c.Steps)
}

// Params are percentile, gamma and steps.
func (c Percentile) Params() map[string]string {
	return map[string]string{"percentile": formatFloat(c.Percentile), "gamma": formatFloat(c.Gamma), "steps": strconv.Itoa(c.Steps)}
}

func (c Percentile) build(*options) (Filter, error) { return &percentileFilter{cfg: c}, nil }

var (
	_ Config = Percentile{}
	_ Filter = (*percentileFilter)(nil)
)

type percentileFilter struct{ cfg Percentile }

func (f *percentileFilter) Name() string              { return NamePercentilePrivacy }
func (f *percentileFilter) Params() map[string]string { return f.cfg.Params() }

// Apply runs FLARE's algorithm on x = diff/steps: cutoff is the
// percentile of |x| over every value (numpy's default, linear
// interpolation), values with -cutoff < x < cutoff are zeroed, the rest
// clipped to [-gamma, gamma], and the diff sent is x*steps. Scalar tensors
// (shape []) count towards the cutoff but pass unchanged, as in FLARE.
func (f *percentileFilter) Apply(global, local *model.Model) (*model.Model, Report, error) {
	rep := Report{Filter: NamePercentilePrivacy}
	if err := CheckInputs(NamePercentilePrivacy, global, local); err != nil {
		return nil, rep, err
	}
	steps, gamma := float64(f.cfg.Steps), f.cfg.Gamma
	rep.Values = local.NumParams()
	abs := make([]float64, 0, rep.Values)
	for i, t := range local.Tensors {
		g := globalData(global, i)
		for j, v := range t.Data {
			abs = append(abs, math.Abs((float64(v)-ref(g, j))/steps))
		}
	}
	cutoff := percentileLinear(abs, f.cfg.Percentile)
	rep.Cutoff = cutoff
	out := newLike(local)
	for i, t := range local.Tensors {
		g, o := globalData(global, i), out.Tensors[i].Data
		if len(t.Shape) == 0 { // FLARE: "single scalar, no clipping"
			copy(o, t.Data)
			continue
		}
		for j, v := range t.Data {
			r := ref(g, j)
			x := (float64(v) - r) / steps
			switch {
			case x > -cutoff && x < cutoff:
				rep.Zeroed++
				o[j] = float32(r)
				continue
			case x > gamma:
				x = gamma
			case x < -gamma:
				x = -gamma
			default: // sent as it is
				o[j] = v
				continue
			}
			rep.Clipped++
			y, err := toFloat32(NamePercentilePrivacy, t.Name, j, r+x*steps)
			if err != nil {
				return nil, rep, err
			}
			o[j] = y
		}
	}
	return out, rep, nil
}

// percentileLinear is numpy.percentile(a, q) with its default method
// ("linear"): the value at virtual index (n-1)*q/100 of the sorted values,
// interpolated between its neighbours as numpy's _lerp does. It reorders
// a, and returns 0 for no values.
func percentileLinear(a []float64, q float64) float64 {
	n := len(a)
	if n == 0 {
		return 0
	}
	virtual := float64(n-1) * (q / 100)
	if virtual >= float64(n-1) {
		return selectKth(a, n-1)
	}
	lo := int(math.Floor(virtual))
	t := virtual - float64(lo)
	prev := selectKth(a, lo)
	next := slices.Min(a[lo+1:]) // selectKth left every larger value after lo
	diff := next - prev
	if t >= 0.5 {
		return next - diff*(1-t)
	}
	return prev + diff*t
}

// selectKth reorders a so that a[k] is the value that sorting would put
// there, every value before it no larger and every value after it no
// smaller, and returns a[k]. It is quickselect with a median-of-three
// pivot, falling back to sorting the part left when it has partitioned
// more often than a balanced run would (so it is never quadratic).
func selectKth(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	budget := 2 * bits.Len(uint(len(a)))
	for hi-lo > 16 {
		if budget--; budget < 0 {
			slices.Sort(a[lo : hi+1])
			return a[k]
		}
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		// Now a[lo..j] <= pivot <= a[i..hi], and a[j+1..i-1] == pivot.
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	slices.Sort(a[lo : hi+1])
	return a[k]
}
