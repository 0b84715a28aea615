package filter_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

func TestNewRefusesBadArgs(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	svt := func(f func(*filter.SVT)) filter.SVT { c := filter.DefaultSVT(); f(&c); return c }
	pct := func(f func(*filter.Percentile)) filter.Percentile { c := filter.DefaultPercentile(); f(&c); return c }
	tests := []struct {
		name string
		cfg  filter.Config
		arg  string // the ArgError's Arg
		msg  string // part of its message
	}{
		{"exclude nothing", filter.ExcludeVars{}, "exclude_vars", "names nothing"},
		{"exclude empty list", filter.ExcludeVars{Names: []string{}}, "exclude_vars", "names nothing"},
		{"exclude both", filter.ExcludeVars{Names: []string{"a"}, Pattern: "b"}, "exclude_vars", "not both"},
		{"exclude empty name", filter.ExcludeVars{Names: []string{"a", ""}}, "exclude_vars", "name 1 is empty"},
		{"exclude duplicate", filter.ExcludeVars{Names: []string{"a", "a"}}, "exclude_vars", "twice"},
		{"exclude bad pattern", filter.ExcludeVars{Pattern: "(a"}, "exclude_vars", "missing closing )"},
		{"exclude long pattern", filter.ExcludeVars{Pattern: strings.Repeat("a", filter.MaxPatternLen+1)}, "exclude_vars", "longer than"},
		{"percentile above 100", pct(func(c *filter.Percentile) { c.Percentile = 100.5 }), "percentile", "from 0 to 100"},
		{"percentile negative", pct(func(c *filter.Percentile) { c.Percentile = -1 }), "percentile", "from 0 to 100"},
		{"percentile NaN", pct(func(c *filter.Percentile) { c.Percentile = nan }), "percentile", "from 0 to 100"},
		// FLARE returns the update unfiltered for gamma <= 0.
		{"percentile gamma zero", pct(func(c *filter.Percentile) { c.Gamma = 0 }), "gamma", "positive"},
		{"percentile gamma inf", pct(func(c *filter.Percentile) { c.Gamma = inf }), "gamma", "positive"},
		{"percentile steps zero", pct(func(c *filter.Percentile) { c.Steps = 0 }), "steps", "whole number"},
		{"svt fraction zero", svt(func(c *filter.SVT) { c.Fraction = 0 }), "fraction", "above 0"},
		{"svt fraction above one", svt(func(c *filter.SVT) { c.Fraction = 1.5 }), "fraction", "at most 1"},
		{"svt epsilon zero", svt(func(c *filter.SVT) { c.Epsilon = 0 }), "epsilon", "positive"},
		{"svt epsilon inf", svt(func(c *filter.SVT) { c.Epsilon = inf }), "epsilon", "positive"},
		{"svt noise_var negative", svt(func(c *filter.SVT) { c.NoiseVar = -0.1 }), "noise_var", "positive"},
		{"svt gamma NaN", svt(func(c *filter.SVT) { c.Gamma = nan }), "gamma", "positive"},
		{"svt tau negative", svt(func(c *filter.SVT) { c.Tau = -1 }), "tau", "at least 0"},
		{"svt steps huge", svt(func(c *filter.SVT) { c.Steps = filter.MaxSteps + 1 }), "steps", "whole number"},
		{"gaussian no sigma", filter.Gaussian{ClipNorm: 1}, "noise_multiplier", "from 1e-06"},
		{"gaussian sigma NaN", filter.Gaussian{NoiseMultiplier: nan, ClipNorm: 1}, "noise_multiplier", "from"},
		{"gaussian no clip", filter.Gaussian{NoiseMultiplier: 1}, "clip_norm", "positive"},
		{"gaussian clip inf", filter.Gaussian{NoiseMultiplier: 1, ClipNorm: inf}, "clip_norm", "positive"},
		{"quantize unknown", filter.Quantize{Codec: "float8"}, "codec", `"float8" is not a codec`},
		{"quantize non-canonical", filter.Quantize{Codec: "int8-block064"}, "codec", "not a codec"},
		{"quantize empty", filter.Quantize{}, "codec", "not a codec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := filter.New(tt.cfg)
			var ae *filter.ArgError
			if f != nil || !errors.As(err, &ae) || !errors.Is(err, filter.ErrArg) {
				t.Fatalf("New = %v, %v; want an *ArgError", f, err)
			}
			if ae.Filter != tt.cfg.Name() || ae.Arg != tt.arg || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q (arg %q); want arg %q and %q", err, ae.Arg, tt.arg, tt.msg)
			}
		})
	}
	if _, err := filter.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// Every filter refuses non-finite input and mismatched layouts, and
// returns no model then.
func TestApplyRefusesBadInput(t *testing.T) {
	good := mdl(tensor("w", []int{2}, 1, 2))
	inputs := []struct {
		name          string
		global, local *model.Model
		want          error
	}{
		{"NaN in the local model", good, mdl(tensor("w", []int{2}, 1, float32(math.NaN()))), model.ErrInvalid},
		{"infinity in the local model", nil, mdl(tensor("w", []int{2}, float32(math.Inf(-1)), 0)), model.ErrInvalid},
		{"infinity in the global model", mdl(tensor("w", []int{2}, float32(math.Inf(1)), 0)), good, model.ErrInvalid},
		{"nil local model", good, nil, model.ErrInvalid},
		{"shape disagrees with data", nil, mdl(tensor("w", []int{3}, 1, 2)), model.ErrInvalid},
		{"layouts differ", mdl(tensor("v", []int{2}, 1, 2)), good, model.ErrLayout},
	}
	configs := []filter.Config{
		filter.ExcludeVars{Names: []string{"w"}}, filter.DefaultPercentile(), filter.DefaultSVT(),
		filter.Gaussian{NoiseMultiplier: 1, ClipNorm: 1}, filter.Quantize{Codec: "int8-block64"},
	}
	for _, c := range configs {
		f := build(t, c)
		for _, in := range inputs {
			t.Run(c.Name()+"/"+in.name, func(t *testing.T) {
				out, _, err := f.Apply(in.global, in.local)
				if out != nil || !errors.Is(err, in.want) {
					t.Fatalf("got %v, %v; want %v", out, err, in.want)
				}
			})
		}
	}
}

// A filter whose arithmetic would leave float32 refuses rather than send
// an infinity.
func TestApplyRefusesNonFiniteOutput(t *testing.T) {
	local := mdl(tensor("w", []int{1}, 3e38))
	tests := []struct {
		name string
		cfg  filter.Config
	}{
		{"svt release noise beyond float32", filter.SVT{Fraction: 1, Epsilon: 1, NoiseVar: 1e-10, Gamma: 1e30, Tau: 0, Steps: 1}},
		{"gaussian noise beyond float32", filter.Gaussian{NoiseMultiplier: 1e6, ClipNorm: 1e36}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			global := mdl(tensor("w", []int{1}, -3e38))
			out, _, err := build(t, tt.cfg).Apply(global, local)
			if out != nil || !errors.Is(err, filter.ErrNonFinite) {
				t.Fatalf("got %v, %v; want ErrNonFinite", out, err)
			}
		})
	}
}
