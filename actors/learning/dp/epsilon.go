package dp

import (
	"fmt"
	"math"
)

// Guarantee is an (ε, δ)-DP statement and the RDP order it was derived at.
type Guarantee struct {
	Epsilon float64 // finite, ≥ 0
	Delta   float64 // in (0, 1)
	// Order is the RDP order α at which the conversion gave the smallest
	// ε. An order at either end of the list suggests that a longer list
	// would give a smaller ε.
	Order float64
}

// validDelta checks δ: a number in (0, 1).
func validDelta(delta float64) error {
	if !(delta > 0 && delta < 1) {
		return fmt.Errorf("%w: delta %v is not in (0, 1)", ErrParameter, delta)
	}
	return nil
}

// EpsilonFromRDP converts RDP values at orders into the smallest (ε, δ)
// guarantee they imply, by Canonne, Kamath and Steinke's Proposition 12
// (the package doc has the formula), skipping orders whose RDP is +Inf.
// The error wraps ErrParameter for mismatched or invalid inputs and
// ErrNoGuarantee when no order gives a finite ε.
func EpsilonFromRDP(orders, rdp []float64, delta float64) (Guarantee, error) {
	if err := validateOrders(orders); err != nil {
		return Guarantee{}, err
	}
	if len(rdp) != len(orders) {
		return Guarantee{}, fmt.Errorf("%w: %d RDP values for %d orders", ErrParameter, len(rdp), len(orders))
	}
	if err := validDelta(delta); err != nil {
		return Guarantee{}, err
	}
	best := Guarantee{Epsilon: math.Inf(1), Delta: delta}
	for k, a := range orders {
		r := rdp[k]
		if math.IsNaN(r) || r < 0 {
			return Guarantee{}, fmt.Errorf("%w: RDP %v at order %v", ErrParameter, r, a)
		}
		if math.IsInf(r, 1) {
			continue
		}
		var eps float64
		if delta*delta+math.Expm1(-r) > 0 {
			eps = 0 // δ > sqrt(1-e^-KL) ≥ the total variation distance
		} else {
			eps = r + math.Log1p(-1/a) - math.Log(delta*a)/(a-1)
		}
		if eps < best.Epsilon {
			best.Epsilon, best.Order = eps, a
		}
	}
	if math.IsInf(best.Epsilon, 1) {
		return Guarantee{}, fmt.Errorf("%w: the RDP is unbounded at every order", ErrNoGuarantee)
	}
	best.Epsilon = max(best.Epsilon, 0)
	return best, nil
}

// Epsilon is m's (ε, δ) guarantee at δ over DefaultOrders.
func (m Mechanism) Epsilon(delta float64) (Guarantee, error) {
	if err := validDelta(delta); err != nil {
		return Guarantee{}, err
	}
	orders := DefaultOrders()
	rdp, err := m.RDP(orders)
	if err != nil {
		return Guarantee{}, err
	}
	return EpsilonFromRDP(orders, rdp, delta)
}
