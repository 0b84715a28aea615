package dp

import (
	"errors"
	"math"
	"sync"
	"testing"
)

func TestAccountantComposes(t *testing.T) {
	var acc Accountant // the zero value is ready
	g, err := acc.Epsilon(1e-5)
	if err != nil || g.Epsilon != 0 {
		t.Fatalf("empty accountant: %+v, %v; want ε = 0", g, err)
	}
	// Ten rounds of 1,000 steps spend what one mechanism of 10,000 does.
	round := Mechanism{SamplingRate: 0.01, NoiseMultiplier: 4, Steps: 1000}
	for range 10 {
		if err := acc.Add(round); err != nil {
			t.Fatal(err)
		}
	}
	got, err := acc.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Mechanism{0.01, 4, 10000}.Epsilon(1e-5)
	if !relClose(got.Epsilon, want.Epsilon, 1e-12, 0) || got.Order != want.Order {
		t.Fatalf("10 rounds of 1,000 steps: %+v; one of 10,000: %+v", got, want)
	}
	// Rounds with different parameters add their RDP vectors.
	other := Mechanism{SamplingRate: 0.05, NoiseMultiplier: 1.2, Steps: 300}
	if err := acc.Add(other); err != nil {
		t.Fatal(err)
	}
	orders := DefaultOrders()
	r1, _ := Mechanism{0.01, 4, 10000}.RDP(orders)
	r2, _ := other.RDP(orders)
	for k := range r1 {
		r1[k] += r2[k]
	}
	sum, _ := EpsilonFromRDP(orders, r1, 1e-5)
	if got, _ := acc.Epsilon(1e-5); !relClose(got.Epsilon, sum.Epsilon, 1e-12, 0) {
		t.Fatalf("mixed rounds: %+v, want %+v", got, sum)
	}
	rounds := acc.Rounds()
	if len(rounds) != 11 || rounds[10] != other {
		t.Fatalf("Rounds = %v", rounds)
	}
	rounds[0].Steps = 0 // a copy: the accountant keeps its own
	if acc.Rounds()[0] != round {
		t.Fatal("Rounds shares its slice with the accountant")
	}
}

// A site asks before it trains: the round that would take ε past the
// budget is refused, the one that would not is allowed, and asking
// records nothing.
func TestAccountantWouldExceed(t *testing.T) {
	var acc Accountant
	round := Mechanism{SamplingRate: 256.0 / 60000, NoiseMultiplier: 1.1, Steps: 235} // one MNIST epoch
	const budget, delta = 1.0, 1e-5
	allowed := 0
	for {
		exceed, g, err := acc.WouldExceed(budget, delta, round)
		if err != nil {
			t.Fatal(err)
		}
		if exceed {
			if g.Epsilon <= budget {
				t.Fatalf("refused at ε = %v within the budget %v", g.Epsilon, budget)
			}
			break
		}
		if g.Epsilon > budget {
			t.Fatalf("allowed at ε = %v above the budget %v", g.Epsilon, budget)
		}
		if err := acc.Add(round); err != nil {
			t.Fatal(err)
		}
		if now, _ := acc.Epsilon(delta); now != g {
			t.Fatalf("after adding: %+v, WouldExceed promised %+v", now, g)
		}
		if allowed++; allowed > 1000 {
			t.Fatal("the budget never ran out")
		}
	}
	spent, _ := acc.Epsilon(delta)
	t.Logf("%d rounds allowed within ε ≤ %v: ε = %.4f (order %v)", allowed, budget, spent.Epsilon, spent.Order)
	if allowed == 0 || len(acc.Rounds()) != allowed {
		t.Fatalf("%d rounds allowed, %d recorded", allowed, len(acc.Rounds()))
	}
}

// Every error answers "would exceed" too, so that a site that refuses on
// true refuses on a bad input as well; a refused Add records nothing.
func TestAccountantFailsClosed(t *testing.T) {
	var acc Accountant
	ok := Mechanism{0.01, 1, 10}
	cases := []struct {
		name          string
		budget, delta float64
		next          Mechanism
	}{
		{"zero budget", 0, 1e-5, ok},
		{"negative budget", -1, 1e-5, ok},
		{"NaN budget", math.NaN(), 1e-5, ok},
		{"infinite budget", math.Inf(1), 1e-5, ok},
		{"zero delta", 1, 0, ok},
		{"delta 1", 1, 1, ok},
		{"sampling rate 0", 1, 1e-5, Mechanism{0, 1, 10}},
		{"sampling rate above 1", 1, 1e-5, Mechanism{2, 1, 10}},
		{"no noise", 1, 1e-5, Mechanism{0.01, 0, 10}},
		{"NaN noise", 1, 1e-5, Mechanism{0.01, math.NaN(), 10}},
		{"negative steps", 1, 1e-5, Mechanism{0.01, 1, -10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exceed, _, err := acc.WouldExceed(tc.budget, tc.delta, tc.next)
			if err == nil || !exceed || !errors.Is(err, ErrParameter) {
				t.Fatalf("WouldExceed = %v, %v; want true and an ErrParameter", exceed, err)
			}
		})
	}
	if err := acc.Add(Mechanism{0.01, -1, 10}); !errors.Is(err, ErrParameter) {
		t.Fatalf("Add of an invalid mechanism: %v", err)
	}
	if len(acc.Rounds()) != 0 {
		t.Fatal("a refused Add was recorded")
	}
	if _, err := NewAccountant([]float64{0.5}); !errors.Is(err, ErrParameter) {
		t.Fatalf("NewAccountant with order 0.5: %v", err)
	}
}

func TestAccountantOwnOrders(t *testing.T) {
	// Opacus's default orders: 1.1 to 10.9 in tenths, then 12 to 63.
	var orders []float64
	for x := 1; x < 100; x++ {
		orders = append(orders, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		orders = append(orders, float64(a))
	}
	acc, err := NewAccountant(orders)
	if err != nil {
		t.Fatal(err)
	}
	orders[0] = 1000 // the accountant keeps its own copy
	if err := acc.Add(Mechanism{0.01, 4, 10000}); err != nil {
		t.Fatal(err)
	}
	g, err := acc.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Mechanism{0.01, 4, 10000}.Epsilon(1e-5)
	t.Logf("Abadi's example over Opacus's orders: %+v; over TensorFlow Privacy's: %+v", g, def)
	if g.Epsilon > def.Epsilon+0.01 || g.Epsilon < def.Epsilon-0.05 {
		t.Fatalf("finer orders gave %v, far from %v", g.Epsilon, def.Epsilon)
	}
}

func TestAccountantConcurrent(t *testing.T) {
	var acc Accountant
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if err := acc.Add(Mechanism{0.01, 2, 10}); err != nil {
					t.Error(err)
				}
				if _, _, err := acc.WouldExceed(8, 1e-5, Mechanism{0.01, 2, 10}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, _ := acc.Epsilon(1e-5)
	want, _ := Mechanism{0.01, 2, 400}.Epsilon(1e-5)
	if len(acc.Rounds()) != 40 || !relClose(got.Epsilon, want.Epsilon, 1e-12, 0) {
		t.Fatalf("%d rounds, ε %v; want 40 rounds, ε %v", len(acc.Rounds()), got.Epsilon, want.Epsilon)
	}
}
