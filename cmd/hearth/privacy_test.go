package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestPrivacy(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // the output's lines
	}{
		{"abadi 2016's example", []string{"privacy", "epsilon", "--sampling-rate", "0.01", "--noise-multiplier", "4", "--steps", "10000", "--delta", "1e-5"}, []string{
			"ε = 1.03549 at δ = 1e-05 (RDP order 17)",
			"sampling rate q = 0.01, noise multiplier σ = 4, steps T = 10000",
		}},
		{"no sampling, best order the largest", []string{"privacy", "epsilon", "--sampling-rate", "1", "--noise-multiplier", "100", "--steps", "1", "--delta", "1e-5"}, []string{
			"ε = 0.032289 at δ = 1e-05 (RDP order 256)",
			"sampling rate q = 1, noise multiplier σ = 100, steps T = 1",
		}},
		{"nothing spent", []string{"privacy", "epsilon", "--sampling-rate", "0.5", "--noise-multiplier", "1", "--steps", "0", "--delta", "1e-5"}, []string{
			"ε = 0 at δ = 1e-05 (RDP order 1.25)",
			"sampling rate q = 0.5, noise multiplier σ = 1, steps T = 0",
		}},
		{"best order the smallest", []string{"privacy", "epsilon", "--sampling-rate", "0.9", "--noise-multiplier", "0.3", "--steps", "50", "--delta", "1e-5"}, []string{
			"ε = 367.192 at δ = 1e-05 (RDP order 1.25)", // dp_accounting: 367.19232
			"sampling rate q = 0.9, noise multiplier σ = 0.3, steps T = 50",
			"note: the best RDP order is the smallest one tried; ε might be smaller with smaller orders",
		}},
		{"sigma for abadi's ε", []string{"privacy", "sigma", "--epsilon", "1.035490066036133", "--sampling-rate", "0.01", "--steps", "10000", "--delta", "1e-5"}, []string{
			"noise multiplier σ = 4 keeps ε ≤ 1.035490066036133",
			"ε = 1.03549 at δ = 1e-05 (RDP order 17)",
			"sampling rate q = 0.01, noise multiplier σ = 4, steps T = 10000",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runWithStdin(t, "", tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSuffix(out, "\n"); got != strings.Join(tt.want, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestPrivacyJSON(t *testing.T) {
	out, _, err := runWithStdin(t, "", "privacy", "epsilon", "--json", "--sampling-rate", "0.004266666666666667",
		"--noise-multiplier", "1.1", "--steps", "14063", "--delta", "1e-5")
	if err != nil {
		t.Fatal(err)
	}
	var a privacyAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if math.Abs(a.Epsilon-2.5970795196570942) > 1e-9 || a.Order != 8 || a.Delta != 1e-5 || a.Steps != 14063 || a.NoiseMultiplier != 1.1 || a.TargetEpsilon != nil {
		t.Fatalf("TensorFlow Privacy's MNIST tutorial: %+v", a)
	}
	out, _, err = runWithStdin(t, "", "privacy", "sigma", "--json", "--epsilon", "8", "--sampling-rate", "0.0167", "--steps", "1200", "--delta", "1e-5")
	if err != nil {
		t.Fatal(err)
	}
	a = privacyAnswer{}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if a.TargetEpsilon == nil || *a.TargetEpsilon != 8 || a.Epsilon > 8 || a.Epsilon < 7.999 || a.NoiseMultiplier < 0.7 || a.NoiseMultiplier > 0.8 {
		t.Fatalf("sigma: %+v", a)
	}
}

// Every input out of range or missing is refused with exit status 2;
// a target no noise reaches exits 1.
func TestPrivacyRefuses(t *testing.T) {
	eps := func(extra ...string) []string {
		return append([]string{"privacy", "epsilon", "--sampling-rate", "0.01", "--noise-multiplier", "1", "--steps", "100", "--delta", "1e-5"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"privacy"}, 2, "privacy needs a subcommand: epsilon or sigma"},
		{"unknown subcommand", []string{"privacy", "delta"}, 2, "needs a subcommand"},
		{"missing flags", []string{"privacy", "epsilon", "--sampling-rate", "0.1", "--steps", "10"}, 2, "needs --noise-multiplier, --delta"},
		{"sigma missing epsilon", []string{"privacy", "sigma", "--sampling-rate", "0.1", "--steps", "10", "--delta", "1e-5"}, 2, "needs --epsilon"},
		{"sampling rate above 1", eps("--sampling-rate", "1.5"), 2, "sampling rate 1.5"},
		{"zero sampling rate", eps("--sampling-rate", "0"), 2, "sampling rate 0"},
		{"NaN sampling rate", eps("--sampling-rate", "NaN"), 2, "sampling rate NaN"},
		{"zero noise", eps("--noise-multiplier", "0"), 2, "noise multiplier 0"},
		{"infinite noise", eps("--noise-multiplier", "+Inf"), 2, "noise multiplier +Inf"},
		{"negative steps", eps("--steps", "-1"), 2, "-1 steps"},
		{"delta 0", eps("--delta", "0"), 2, "delta 0"},
		{"delta 1", eps("--delta", "1"), 2, "delta 1"},
		{"an argument", eps("extra"), 2, "want 0 argument"},
		{"sigma with no steps", []string{"privacy", "sigma", "--epsilon", "1", "--sampling-rate", "0.1", "--steps", "0", "--delta", "1e-5"}, 2, "0 steps"},
		{"sigma with a negative target", []string{"privacy", "sigma", "--epsilon", "-1", "--sampling-rate", "0.1", "--steps", "10", "--delta", "1e-5"}, 2, "target ε -1"},
		{"sigma unreachable", []string{"privacy", "sigma", "--epsilon", "1e-9", "--sampling-rate", "1", "--steps", "1000000000000", "--delta", "1e-5"}, 1, "no finite privacy guarantee"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runWithStdin(t, "", tt.args...)
			if err == nil || exitCode(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v (exit %d), want exit %d and %q", err, exitCode(err), tt.code, tt.want)
			}
			if out != "" {
				t.Fatalf("printed %q on a refusal", out)
			}
		})
	}
}
