package aggregator_test

import (
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/aggregator"
)

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name string
		rule aggregator.Rule
		want string // "" for valid; else a fragment naming the field
	}{
		{"zero is the default", aggregator.Rule{}, ""},
		{"median", aggregator.Rule{Method: aggregator.Median}, ""},
		{"trimmed mean by count", aggregator.Rule{Method: aggregator.TrimmedMean, Trim: 2, NormBound: 5}, ""},
		{"trimmed mean by fraction", aggregator.Rule{Method: aggregator.TrimmedMean, TrimFraction: 0.2}, ""},
		{"multi-krum", aggregator.Rule{Method: aggregator.MultiKrum, KrumF: 1, KrumM: 2, OnViolation: aggregator.Refuse}, ""},
		{"defences off", aggregator.Rule{Unbounded: true}, ""},
		{"unknown method", aggregator.Rule{Method: "mean"}, "aggregation.method"},
		{"negative norm bound", aggregator.Rule{NormBound: -1}, "aggregation.norm_bound"},
		{"NaN norm bound", aggregator.Rule{NormBound: math.NaN()}, "aggregation.norm_bound"},
		{"relative bound below 1", aggregator.Rule{RelativeNormBound: 0.5}, "aggregation.relative_norm_bound"},
		{"infinite relative bound", aggregator.Rule{RelativeNormBound: math.Inf(1)}, "aggregation.relative_norm_bound"},
		{"unbounded with a bound", aggregator.Rule{Unbounded: true, NormBound: 3}, "aggregation.unbounded"},
		{"unknown violation", aggregator.Rule{OnViolation: "ignore"}, "aggregation.on_violation"},
		{"trim without trimmed mean", aggregator.Rule{Method: aggregator.Median, Trim: 1}, "aggregation.trim"},
		{"trim and fraction", aggregator.Rule{Method: aggregator.TrimmedMean, Trim: 1, TrimFraction: 0.1}, "aggregation.trim"},
		{"fraction of a half", aggregator.Rule{Method: aggregator.TrimmedMean, TrimFraction: 0.5}, "aggregation.trim_fraction"},
		{"negative trim", aggregator.Rule{Method: aggregator.TrimmedMean, Trim: -1}, "aggregation.trim"},
		{"krum_m for fedavg", aggregator.Rule{KrumM: 1}, "aggregation.krum_m"},
		{"unknown screen", aggregator.Rule{Screen: "cosine"}, "aggregation.screen"},
		{"screen with the defences off", aggregator.Rule{Screen: aggregator.ScreenKrum, Unbounded: true}, "aggregation.screen"},
		{"krum selecting two", aggregator.Rule{Method: aggregator.Krum, KrumM: 2}, "aggregation.krum_m"},
		{"huge krum_f", aggregator.Rule{Method: aggregator.Krum, KrumF: 1 << 40}, "aggregation.krum_f"},
		{"share above 1", aggregator.Rule{MaxShare: 1.5}, "aggregation.max_share"},
		{"negative share", aggregator.Rule{MaxShare: -0.1}, "aggregation.max_share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted; want an error naming %s", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want+":"):
				t.Fatalf("error %q does not name %s", err, tt.want)
			}
		})
	}
}

func TestRuleDefaultsAreDefences(t *testing.T) {
	var zero aggregator.Rule
	if !zero.Lockstep() {
		t.Fatal("the default rule streams without a norm bound")
	}
	if got := zero.ShareCap(5); got != 0.4 || zero.ShareCap(2) != 1 {
		t.Fatalf("default share cap of 5 sites %v, want 0.4 (of 2: %v, want 1)", got, zero.ShareCap(2))
	}
	off := aggregator.Rule{Unbounded: true}
	if off.Lockstep() || off.ShareCap(5) != 1 {
		t.Fatalf("defences off: lockstep %v, share cap %v", off.Lockstep(), off.ShareCap(5))
	}
	for _, m := range []aggregator.Method{aggregator.Krum, aggregator.MultiKrum} {
		if err := (aggregator.Rule{Method: m}).Streamable(); err == nil || !strings.Contains(err.Error(), "streamed") {
			t.Fatalf("%s streamable: %v", m, err)
		}
	}
	if err := (aggregator.Rule{Method: aggregator.Median}).Streamable(); err != nil {
		t.Fatal(err)
	}
}
