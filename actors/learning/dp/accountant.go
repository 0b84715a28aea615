package dp

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Accountant tracks what one site has spent, round by round: the sum of
// the RDP of every Mechanism it ran (RDP composes additively), converted to
// (ε, δ) on demand. A site asks WouldExceed before it trains a round and
// calls Add once the round has run. The zero value is an empty accountant
// over DefaultOrders; an Accountant is safe for concurrent use and must not
// be copied after first use.
type Accountant struct {
	mu     sync.Mutex
	orders []float64
	rdp    []float64
	rounds []Mechanism
}

// NewAccountant returns an empty accountant over the given orders (a copy
// is kept), or over DefaultOrders when orders is nil.
func NewAccountant(orders []float64) (*Accountant, error) {
	if orders == nil {
		return &Accountant{}, nil
	}
	if err := validateOrders(orders); err != nil {
		return nil, err
	}
	return &Accountant{orders: slices.Clone(orders), rdp: make([]float64, len(orders))}, nil
}

// init sets the zero value's orders; a.mu is held.
func (a *Accountant) init() {
	if a.orders == nil {
		a.orders = DefaultOrders()
		a.rdp = make([]float64, len(a.orders))
	}
}

// Add records that the site ran m (a round of DP-SGD, say). It refuses an
// invalid m, recording nothing.
func (a *Accountant) Add(m Mechanism) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	r, err := m.RDP(a.orders)
	if err != nil {
		return fmt.Errorf("accountant: %w", err)
	}
	for k := range a.rdp {
		a.rdp[k] += r[k] // +Inf stays +Inf: that order is given up for good
	}
	a.rounds = append(a.rounds, m)
	return nil
}

// Rounds returns the mechanisms added so far, in order (a fresh slice):
// what a site persists to rebuild its accountant with Add after a restart.
func (a *Accountant) Rounds() []Mechanism {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.rounds)
}

// Epsilon is the guarantee at δ of everything added so far (ε = 0 when
// nothing was).
func (a *Accountant) Epsilon(delta float64) (Guarantee, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	g, err := EpsilonFromRDP(a.orders, a.rdp, delta)
	if err != nil {
		return Guarantee{}, fmt.Errorf("accountant: %w", err)
	}
	return g, nil
}

// WouldExceed says whether running next after everything added so far
// would take the guarantee at δ above the budget budgetEps, and returns the
// guarantee that spending would leave; it records nothing. It fails closed:
// with an error (an invalid budget, δ or mechanism, or no finite
// guarantee) it also answers true, so that a caller that refuses on true
// refuses then too.
func (a *Accountant) WouldExceed(budgetEps, delta float64, next Mechanism) (bool, Guarantee, error) {
	if !(budgetEps > 0) || math.IsInf(budgetEps, 1) {
		return true, Guarantee{}, fmt.Errorf("accountant: %w: budget ε %v is not a finite positive number", ErrParameter, budgetEps)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	r, err := next.RDP(a.orders)
	if err != nil {
		return true, Guarantee{}, fmt.Errorf("accountant: %w", err)
	}
	for k := range r {
		r[k] += a.rdp[k]
	}
	g, err := EpsilonFromRDP(a.orders, r, delta)
	if err != nil {
		return true, Guarantee{}, fmt.Errorf("accountant: %w", err)
	}
	return g.Epsilon > budgetEps, g, nil
}
