package report

import (
	"errors"
	"math"
	"testing"
)

func TestValidateRefuses(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	ok := Series{Name: "acc", X: []float64{1, 2}, Y: []float64{0.5, 0.6}}
	tests := []struct {
		name  string
		chart Chart
	}{
		{"no series", Chart{}},
		{"empty series", Chart{Series: []Series{{Name: "acc"}}}},
		{"more x than y", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{0.5}}}}},
		{"more y than x", Chart{Series: []Series{ok, {X: []float64{1}, Y: []float64{0.5, 0.6}}}}},
		{"NaN y", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{0.5, nan}}}}},
		{"NaN x", Chart{Series: []Series{{X: []float64{nan}, Y: []float64{0.5}}}}},
		{"infinite y", Chart{Series: []Series{{X: []float64{1}, Y: []float64{-inf}}}}},
		{"NaN reference line", Chart{Series: []Series{ok}, HLines: []HLine{{Name: "central", Y: nan}}}},
		{"NaN YMax", Chart{Series: []Series{ok}, YMax: nan}},
		{"inverted y range", Chart{Series: []Series{ok}, YMin: 1, YMax: 0}},
		{"empty y range", Chart{Series: []Series{ok}, YMin: 0.5, YMax: 0.5}},
		{"span overflows", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{-math.MaxFloat64, math.MaxFloat64}}}}},
		{"x span overflows", Chart{Series: []Series{{X: []float64{-math.MaxFloat64, math.MaxFloat64}, Y: []float64{0, 1}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.chart.Validate()
			if !errors.Is(err, ErrInvalidChart) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalidChart", err)
			}
			if perr := tt.chart.PNG(failWriter{t}, 400, 300); !errors.Is(perr, ErrInvalidChart) {
				t.Fatalf("PNG() = %v, want an error wrapping ErrInvalidChart", perr)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		chart Chart
	}{
		{"one point", Chart{Series: []Series{{X: []float64{1}, Y: []float64{0.9}}}}},
		{"fixed range with data outside it", Chart{YMin: 0, YMax: 1, Series: []Series{{X: []float64{1, 2}, Y: []float64{-5, 7}}}}},
		{"negative fixed range", Chart{YMin: -2, YMax: -1, Series: []Series{{X: []float64{1}, Y: []float64{-1.5}}}}},
		{"zero everywhere", Chart{Series: []Series{{X: []float64{0}, Y: []float64{0}}}}},
		{"huge values", Chart{Series: []Series{{X: []float64{1e300, 2e300}, Y: []float64{1e307, 1.5e307}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.chart.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestBoundsFitsDataWithMargin(t *testing.T) {
	c := Chart{
		Series: []Series{{X: []float64{1, 5}, Y: []float64{0.5, 0.9}}},
		HLines: []HLine{{Name: "central", Y: 0.95}},
	}
	x, y, err := c.bounds()
	if err != nil {
		t.Fatal(err)
	}
	if x != (axisRange{1, 5}) {
		t.Errorf("x range = %v, want exactly the data [1, 5]", x)
	}
	// The reference line is part of the fitted data, plus 5% of the span.
	if want := (axisRange{0.5 - 0.0225, 0.95 + 0.0225}); math.Abs(y.min-want.min) > 1e-12 || math.Abs(y.max-want.max) > 1e-12 {
		t.Errorf("y range = %v, want %v", y, want)
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name    string
		r       axisRange
		target  int
		integer bool
		want    []string
	}{
		{"accuracy", axisRange{0.48, 1.02}, 5, false, []string{"0.5", "0.6", "0.7", "0.8", "0.9", "1.0"}},
		{"rounds", axisRange{1, 20}, 5, true, []string{"5", "10", "15", "20"}},
		{"few rounds stay whole", axisRange{1, 3}, 8, true, []string{"1", "2", "3"}},
		{"fractional x", axisRange{0, 1}, 4, false, []string{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{"negative through zero", axisRange{-0.3, 0.3}, 3, false, []string{"-0.2", "0.0", "0.2"}},
		{"large values", axisRange{0, 3e7}, 3, false, []string{"0", "1e+07", "2e+07", "3e+07"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tk := range ticks(tt.r, tt.target, tt.integer) {
				got = append(got, tk.label)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ticks = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("ticks = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestTicksBounded(t *testing.T) {
	// A span too small to step through at this magnitude falls back to the
	// two ends instead of looping.
	got := ticks(axisRange{1e16, 1e16 + 2}, 10, false)
	if len(got) == 0 || len(got) > maxTicks {
		t.Fatalf("got %d ticks, want between 1 and %d", len(got), maxTicks)
	}
}

// failWriter fails the test if anything is written to it.
type failWriter struct{ t *testing.T }

func (w failWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Errorf("wrote %d bytes for an invalid chart", len(p))
	return len(p), nil
}
