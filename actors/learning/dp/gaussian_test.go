package dp

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestClipL2(t *testing.T) {
	cases := []struct {
		name     string
		v        []float32
		c        float64
		wantNorm float64
		clipped  bool
	}{
		{"inside", []float32{0.3, 0.4}, 1, 0.5, false},
		{"on the boundary is scaled by the margin", []float32{3, 4}, 5, 5, true},
		{"outside", []float32{3, 4}, 1, 5, true},
		{"huge", []float32{3e38, -3e38, 1e38}, 2, math.Sqrt(19e76), true},
		{"empty", nil, 1, 0, false},
		{"zero", []float32{0, 0}, 1, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := slices.Clone(tc.v)
			n, err := ClipL2(v, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if !relClose(n, tc.wantNorm, 1e-6, 0) {
				t.Fatalf("norm before %v, want %v", n, tc.wantNorm)
			}
			if after := norm(v); after > tc.c {
				t.Fatalf("norm after clipping %v > %v", after, tc.c)
			}
			if changed := !slices.Equal(v, tc.v); changed != tc.clipped {
				t.Fatalf("clipped = %v, want %v", changed, tc.clipped)
			}
			if tc.clipped && !relClose(norm(v), tc.c, 1e-5, 0) {
				t.Fatalf("clipped to %v, want about %v", norm(v), tc.c)
			}
		})
	}
	// Direction is kept.
	v := []float32{30, 40}
	ClipL2(v, 1)
	if !relClose(float64(v[0]/v[1]), 0.75, 1e-6, 0) {
		t.Fatalf("direction changed: %v", v)
	}
}

// A vector with no norm is refused, and a bad clipping norm too; the
// vector is left as it was.
func TestClipL2Refuses(t *testing.T) {
	cases := []struct {
		name string
		v    []float32
		c    float64
	}{
		{"NaN element", []float32{1, float32(math.NaN())}, 1},
		{"infinite element", []float32{float32(math.Inf(-1)), 1}, 1},
		{"zero clip", []float32{1}, 0},
		{"negative clip", []float32{1}, -1},
		{"NaN clip", []float32{1}, math.NaN()},
		{"infinite clip", []float32{1}, math.Inf(1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := slices.Clone(tc.v)
			if _, err := ClipL2(v, tc.c); !errors.Is(err, ErrParameter) {
				t.Fatalf("got %v, want ErrParameter", err)
			}
			for i := range v {
				if math.Float32bits(v[i]) != math.Float32bits(tc.v[i]) {
					t.Fatalf("refused, but changed the vector: %v", v)
				}
			}
		})
	}
}

func TestClipFactor(t *testing.T) {
	for _, norm := range []float64{0, 0.5, 1, 1.0000001, 2, 1e30, math.Inf(1)} {
		f := ClipFactor(norm, 1)
		if f < 0 || f > 1 || norm*f > 1 {
			t.Errorf("ClipFactor(%v, 1) = %v", norm, f)
		}
	}
}

func seed(b byte) [32]byte {
	var s [32]byte
	s[0] = b
	return s
}

func TestAddGaussian(t *testing.T) {
	const n, std = 200000, 2.5
	v := make([]float32, n)
	if err := NewSeededSource(seed(1)).AddGaussian(v, std); err != nil {
		t.Fatal(err)
	}
	var mean, sq float64
	for _, x := range v {
		mean += float64(x) / n
	}
	for _, x := range v {
		sq += (float64(x) - mean) * (float64(x) - mean) / (n - 1)
	}
	// Standard errors: std/sqrt(n) = 0.0056 for the mean, about
	// std²·sqrt(2/n) = 0.02 for the variance; allow 5 of them.
	if math.Abs(mean) > 0.028 || math.Abs(sq-std*std) > 0.1 {
		t.Fatalf("mean %v, variance %v; want 0 and %v", mean, sq, std*std)
	}
	w := make([]float32, n)
	NewSeededSource(seed(1)).AddGaussian(w, std)
	if !slices.Equal(v, w) {
		t.Fatal("one seed gave two noises")
	}
	NewSeededSource(seed(2)).AddGaussian(w[:0:0], std) // empty: nothing drawn, nothing changed
	x := make([]float32, n)
	NewSource().AddGaussian(x, std)
	y := make([]float32, n)
	NewSource().AddGaussian(y, std)
	if slices.Equal(x, y) || slices.Equal(x, v) {
		t.Fatal("two crypto-seeded sources drew the same noise")
	}
	if err := NewSource().AddGaussian(x, 0); err != nil || !slices.Equal(x, x) {
		t.Fatalf("std 0: %v", err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		before := slices.Clone(x)
		if err := NewSource().AddGaussian(x, bad); !errors.Is(err, ErrParameter) || !slices.Equal(x, before) {
			t.Errorf("std %v: %v", bad, err)
		}
	}
}

// Sample draws each index with probability q, independently: the count
// per step and the frequency per index have the binomial mean and spread.
func TestSample(t *testing.T) {
	cases := []struct {
		name string
		n    int
		q    float64
	}{
		{"optdigits batch 16", 3823, 16.0 / 3823},
		{"half", 1000, 0.5},
		{"most", 200, 0.97},
		{"tiny", 100000, 1e-4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSeededSource(seed(3))
			const steps = 2000
			hits := make([]int, tc.n)
			total := 0
			var buf []int
			for range steps {
				buf = s.Sample(buf[:0], tc.n, tc.q)
				for k, i := range buf {
					if i < 0 || i >= tc.n || k > 0 && i <= buf[k-1] {
						t.Fatalf("sample %v is not increasing within [0, %d)", buf, tc.n)
					}
					hits[i]++
				}
				total += len(buf)
			}
			mean := float64(total) / steps
			want := tc.q * float64(tc.n)
			sd := math.Sqrt(float64(tc.n) * tc.q * (1 - tc.q) / steps)
			if math.Abs(mean-want) > 5*sd {
				t.Fatalf("mean sample size %v, want %v ± %v", mean, want, 5*sd)
			}
			// First and last index are as likely as any (no edge effects).
			perIndex := math.Sqrt(steps * tc.q * (1 - tc.q))
			for _, i := range []int{0, tc.n - 1} {
				if tc.q*steps >= 20 && math.Abs(float64(hits[i])-tc.q*steps) > 5*perIndex {
					t.Fatalf("index %d sampled %d times in %d steps, want %v ± %v", i, hits[i], steps, tc.q*steps, 5*perIndex)
				}
			}
		})
	}
	s := NewSeededSource(seed(4))
	if got := s.Sample(nil, 5, 1); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("q = 1: %v", got)
	}
	for _, q := range []float64{0, -1, 2, math.NaN()} {
		if got := s.Sample(nil, 5, q); len(got) != 0 {
			t.Fatalf("q = %v sampled %v", q, got)
		}
	}
	a := NewSeededSource(seed(5)).Sample(nil, 1000, 0.1)
	b := NewSeededSource(seed(5)).Sample(nil, 1000, 0.1)
	if !slices.Equal(a, b) {
		t.Fatal("one seed gave two samples")
	}
}
