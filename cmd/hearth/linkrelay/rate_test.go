package linkrelay

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	good := []struct {
		in   string
		want Rate
	}{
		{"1Gbit", 125e6},
		{"100Mbit", 12.5e6},
		{"2.5Gbit", 312.5e6},
		{"1Gbit/s", 125e6},
		{" 10Mbit ", 1.25e6},
		{"500MB", 500e6},
		{"500MB/s", 500e6},
		{"64MiB", 64 << 20},
		{"1GiB", 1 << 30},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseRate(%q) = %v bytes/s, want %v", tt.in, float64(got), float64(tt.want))
			}
		})
	}
	bad := []struct {
		in, want string
	}{
		{"", "empty"},
		{"/s", "empty"},
		{"100", "no unit"},
		{"100Mb", `unknown unit "Mb"`},
		{"100mbit", `unknown unit "mbit"`},
		{"1 furlong", `unknown unit "furlong"`},
		{"Gbit", "is not a number"},
		{"1.2.3Gbit", "is not a number"},
		{"NaNGbit", "is not a number"},
		{"InfGbit", "is not a number"},
		{"0Gbit", "must be positive"},
		{"-1Gbit", "must be positive"},
		{"800kbit", "below the slowest link"},
		{"2Tbit", "above the fastest link"},
	}
	for _, tt := range bad {
		t.Run("refuses "+tt.in, func(t *testing.T) {
			r, err := ParseRate(tt.in)
			if err == nil {
				t.Fatalf("ParseRate(%q) = %v, want an error containing %q", tt.in, r, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRate(%q): %v, want it to say %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestRateString(t *testing.T) {
	for _, tt := range []struct {
		r    Rate
		want string
	}{
		{125e6, "1 Gbit/s (125 MB/s)"},
		{12.5e6, "100 Mbit/s (12.5 MB/s)"},
		{MinRate, "1 Mbit/s (0.125 MB/s)"},
		{500e6, "4 Gbit/s (500 MB/s)"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Rate(%v).String() = %q, want %q", float64(tt.r), got, tt.want)
		}
	}
}
