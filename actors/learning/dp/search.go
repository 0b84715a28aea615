package dp

import (
	"errors"
	"fmt"
	"math"
)

// searchPrecision is the relative width at which NoiseMultiplier stops
// bisecting: its answer is at most this much above the exact smallest σ.
const searchPrecision = 1e-6

// NoiseMultiplier is the smallest noise multiplier σ (to within a relative
// 1e-6, and never below it) for which steps steps at sampling rate q keep
// the guarantee at δ within epsilon: ε(q, σ, steps, δ) ≤ epsilon holds for
// the σ returned. ε falls as σ grows, so the search brackets σ by doubling
// from 1 and then bisects geometrically. It needs at least one step, and
// fails when even MaxNoiseMultiplier is not enough. Where every σ in range
// meets the target, it returns MinNoiseMultiplier.
func NoiseMultiplier(epsilon, delta, q float64, steps int64) (float64, error) {
	if !(epsilon > 0) || math.IsInf(epsilon, 1) {
		return 0, fmt.Errorf("noise multiplier: %w: target ε %v is not a finite positive number", ErrParameter, epsilon)
	}
	if err := validDelta(delta); err != nil {
		return 0, fmt.Errorf("noise multiplier: %w", err)
	}
	if steps < 1 {
		return 0, fmt.Errorf("noise multiplier: %w: %d steps, want at least 1", ErrParameter, steps)
	}
	// within says whether σ meets the target; an error is a bad input
	// (found at the first call) and ErrNoGuarantee counts as not meeting it.
	within := func(sigma float64) (bool, error) {
		g, err := Mechanism{SamplingRate: q, NoiseMultiplier: sigma, Steps: steps}.Epsilon(delta)
		if err != nil && !errors.Is(err, ErrNoGuarantee) {
			return false, fmt.Errorf("noise multiplier: %w", err)
		}
		return err == nil && g.Epsilon <= epsilon, nil
	}
	lo, hi := MinNoiseMultiplier, 1.0
	for {
		ok, err := within(hi)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		if hi >= MaxNoiseMultiplier {
			return 0, fmt.Errorf("noise multiplier: %w: even σ = %g gives ε above %v at δ = %v (q = %v, %d steps)",
				ErrNoGuarantee, MaxNoiseMultiplier, epsilon, delta, q, steps)
		}
		lo, hi = hi, min(2*hi, MaxNoiseMultiplier)
	}
	if lo == MinNoiseMultiplier {
		if ok, _ := within(lo); ok {
			return lo, nil
		}
	}
	for hi > lo*(1+searchPrecision) {
		mid := math.Sqrt(lo * hi)
		ok, err := within(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
