package dp

import (
	"errors"
	"math"
	"testing"
)

func TestNoiseMultiplier(t *testing.T) {
	cases := []struct {
		name   string
		eps, q float64
		steps  int64
		delta  float64
		near   float64 // the σ expected, where known
	}{
		// Abadi's example run backwards: σ = 4 gives ε = 1.0355 (TestPublishedFigures).
		{"abadi backwards", 1.035490066036133, 0.01, 10000, 1e-5, 4},
		{"tfprivacy mnist backwards", 2.5970795196570942, 256.0 / 60000, 14063, 1e-5, 1.1},
		{"optdigits, 20 epochs of batch 64", 8, 64.0 / 3823, 1200, 1e-5, 0},
		{"one step, no sampling", 1, 1, 1, 1e-5, 0},
		{"tight budget", 0.1, 0.01, 10000, 1e-5, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sigma, err := NoiseMultiplier(tc.eps, tc.delta, tc.q, tc.steps)
			if err != nil {
				t.Fatal(err)
			}
			at := func(s float64) float64 {
				g, err := Mechanism{tc.q, s, tc.steps}.Epsilon(tc.delta)
				if err != nil {
					t.Fatal(err)
				}
				return g.Epsilon
			}
			got, below := at(sigma), at(sigma*(1-2*searchPrecision))
			t.Logf("ε ≤ %v at q=%.5g, %d steps, δ=%v: σ = %.6f (ε %.6f; just below it %.6f)", tc.eps, tc.q, tc.steps, tc.delta, sigma, got, below)
			if got > tc.eps || below <= tc.eps {
				t.Fatalf("σ = %v gives ε %v, and σ a little smaller %v: want the smallest σ with ε ≤ %v", sigma, got, below, tc.eps)
			}
			if tc.near != 0 && math.Abs(sigma-tc.near) > 1e-4*tc.near {
				t.Fatalf("σ = %v, want %v", sigma, tc.near)
			}
		})
	}
}

func TestNoiseMultiplierRefuses(t *testing.T) {
	cases := []struct {
		name   string
		eps, d float64
		q      float64
		steps  int64
		want   error
	}{
		{"zero target", 0, 1e-5, 0.01, 100, ErrParameter},
		{"NaN target", math.NaN(), 1e-5, 0.01, 100, ErrParameter},
		{"infinite target", math.Inf(1), 1e-5, 0.01, 100, ErrParameter},
		{"zero delta", 1, 0, 0.01, 100, ErrParameter},
		{"no steps", 1, 1e-5, 0.01, 0, ErrParameter},
		{"sampling rate 0", 1, 1e-5, 0, 100, ErrParameter},
		{"sampling rate 2", 1, 1e-5, 2, 100, ErrParameter},
		{"unreachable", 1e-9, 1e-5, 1, MaxSteps, ErrNoGuarantee},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := NoiseMultiplier(tc.eps, tc.d, tc.q, tc.steps); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", s, err, tc.want)
			}
		})
	}
}
