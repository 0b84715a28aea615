package trainer

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/dataset"
)

func TestSpecValidate(t *testing.T) {
	ok := Spec{Kind: "logreg", LearningRate: 0.1, Epochs: 1, BatchSize: 8}
	with := func(f func(*Spec)) Spec {
		s := ok
		f(&s)
		return s
	}
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"logreg", ok, ""},
		{"mlp one layer", with(func(s *Spec) { s.Kind, s.Hidden = "mlp", []int{64} }), ""},
		{"mlp two layers", with(func(s *Spec) { s.Kind, s.Hidden = "mlp", []int{128, 64} }), ""},
		{"unknown kind", with(func(s *Spec) { s.Kind = "svm" }), `kind "svm"`},
		{"empty kind", with(func(s *Spec) { s.Kind = "" }), `kind ""`},
		{"logreg with hidden", with(func(s *Spec) { s.Hidden = []int{3} }), "no hidden layers"},
		{"mlp without hidden", with(func(s *Spec) { s.Kind = "mlp" }), "1 or 2 hidden layers"},
		{"mlp three layers", with(func(s *Spec) { s.Kind, s.Hidden = "mlp", []int{4, 4, 4} }), "1 or 2 hidden layers"},
		{"zero width", with(func(s *Spec) { s.Kind, s.Hidden = "mlp", []int{0} }), "width 0"},
		{"huge width", with(func(s *Spec) { s.Kind, s.Hidden = "mlp", []int{1 << 20} }), "width"},
		{"zero learning rate", with(func(s *Spec) { s.LearningRate = 0 }), "learning rate"},
		{"nan learning rate", with(func(s *Spec) { s.LearningRate = math.NaN() }), "learning rate"},
		{"inf learning rate", with(func(s *Spec) { s.LearningRate = math.Inf(1) }), "learning rate"},
		{"zero epochs", with(func(s *Spec) { s.Epochs = 0 }), "0 epochs"},
		{"zero batch", with(func(s *Spec) { s.BatchSize = 0 }), "batch size 0"},
		{"negative l2", with(func(s *Spec) { s.L2 = -1 }), "L2"},
		{"nan l2", with(func(s *Spec) { s.L2 = math.NaN() }), "L2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSpec) {
				t.Fatalf("Validate = %v, want an ErrSpec containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	for _, ds := range append(dataset.Names(), "unknown") {
		for _, kind := range []string{"logreg", "mlp"} {
			s := Defaults(ds, kind)
			if err := s.Validate(); err != nil {
				t.Errorf("Defaults(%s, %s) = %+v: %v", ds, kind, s, err)
			}
			if s.Kind != kind || DefaultRounds(ds, kind) < 1 {
				t.Errorf("Defaults(%s, %s): kind %q, %d rounds", ds, kind, s.Kind, DefaultRounds(ds, kind))
			}
		}
	}
	if err := Defaults("optdigits", "svm").Validate(); err == nil {
		t.Error("Defaults with an unknown kind validated")
	}
	a := Defaults("optdigits", "mlp")
	a.Hidden[0] = 1
	if b := Defaults("optdigits", "mlp"); b.Hidden[0] == 1 {
		t.Error("Defaults shares its Hidden slice between calls")
	}
}
