package report

import (
	"math"
	"strconv"
)

// tick is one labelled position on an axis.
type tick struct {
	v     float64
	label string
}

// maxTicks bounds the ticks on one axis whatever the range, so a degenerate
// range can never make the tick loop long.
const maxTicks = 64

// ticks returns about target evenly spaced ticks at "nice" values (1, 2 or 5
// times a power of ten) inside r, labelled with as many decimals as the step
// needs. With integerStep the step is at least one, for axes such as rounds
// whose values are whole numbers.
func ticks(r axisRange, target int, integerStep bool) []tick {
	target = max(target, 2)
	step := niceStep(r.span() / float64(target))
	if integerStep && step < 1 {
		step = 1
	}
	start := math.Ceil(r.min/step) * step
	if !finite(step) || step <= 0 || !finite(start) || start+step == start {
		return []tick{{r.min, formatTick(r.min, r.span())}, {r.max, formatTick(r.max, r.span())}}
	}
	tol := step * 1e-9
	var out []tick
	for i := 0; i < maxTicks; i++ {
		v := start + float64(i)*step
		if v > r.max+tol {
			break
		}
		if math.Abs(v) < tol {
			v = 0 // no "-0" labels from rounding
		}
		out = append(out, tick{v, formatTick(v, step)})
	}
	return out
}

// niceStep rounds raw up or down to the nearest 1, 2 or 5 times a power of
// ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) || !finite(raw) {
		return raw
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f < 1.5:
		return mag
	case f < 3:
		return 2 * mag
	case f < 7:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// formatTick formats v with the decimals that ticks step apart need: "0.95"
// for a step of 0.05, "20" for a step of 10. Very small steps and very large
// values fall back to exponent form to keep labels short.
func formatTick(v, step float64) string {
	dec := 0
	if step > 0 && step < 1 {
		dec = int(-math.Floor(math.Log10(step) + 1e-9))
	}
	if dec > 6 || math.Abs(v) >= 1e7 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// allIntegers reports whether every X value of every series is a whole
// number.
func allIntegers(series []Series) bool {
	for _, s := range series {
		for _, x := range s.X {
			if x != math.Trunc(x) {
				return false
			}
		}
	}
	return true
}
