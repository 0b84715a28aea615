package coordinator

import (
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/job"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestDecideShape(t *testing.T) {
	a, b := dataShape{64, 10}, dataShape{30, 2}
	if s, ok := decideShape(nil, map[string]dataShape{"liar": b, "x": a, "y": a}); !ok || s != a {
		t.Fatalf("majority: %v %v, want %v", s, ok, a)
	}
	if _, ok := decideShape(nil, map[string]dataShape{"x": a, "y": b}); ok {
		t.Fatal("a tie decided a shape")
	}
	if s, ok := decideShape(&job.DataShape{Features: 30, Classes: 2}, map[string]dataShape{"x": a, "y": a, "z": b}); !ok || s != b {
		t.Fatalf("the manifest's shape: %v %v, want %v", s, ok, b)
	}
}

func TestChecksRefuseNumbersBeyondTheCommitment(t *testing.T) {
	c := &hearthv1.SiteCommitment{Site: "s", TrainSamples: 600, ValSamples: 70, TestSamples: 300}
	ok := &hearthv1.TrainResult{Samples: 600, TrainLoss: 0.3, Validation: &hearthv1.Metrics{Samples: 70, Loss: 0.5, Accuracy: 0.9}}
	if r := checkResult(ok, c); r != "" {
		t.Fatalf("an honest result refused: %s", r)
	}
	cases := []struct {
		name   string
		change func(*hearthv1.TrainResult)
		want   string
	}{
		{"more samples than committed", func(m *hearthv1.TrainResult) { m.Samples = 1e12 }, "committed 600"},
		{"no samples", func(m *hearthv1.TrainResult) { m.Samples = 0 }, "reported 0"},
		{"NaN train loss", func(m *hearthv1.TrainResult) { m.TrainLoss = math.NaN() }, "train loss"},
		{"negative train loss", func(m *hearthv1.TrainResult) { m.TrainLoss = -1 }, "train loss"},
		{"accuracy above 1", func(m *hearthv1.TrainResult) { m.Validation.Accuracy = 7 }, "accuracy 7"},
		{"infinite validation loss", func(m *hearthv1.TrainResult) { m.Validation.Loss = math.Inf(1) }, "validation loss"},
		{"validation samples beyond commitment", func(m *hearthv1.TrainResult) { m.Validation.Samples = 71 }, "more than the 70"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &hearthv1.TrainResult{Samples: ok.Samples, TrainLoss: ok.TrainLoss,
				Validation: &hearthv1.Metrics{Samples: 70, Loss: 0.5, Accuracy: 0.9}}
			tc.change(m)
			if r := checkResult(m, c); !strings.Contains(r, tc.want) {
				t.Fatalf("got %q, want a refusal containing %q", r, tc.want)
			}
		})
	}
	if r := checkMetrics("test", &hearthv1.Metrics{Samples: 301, Accuracy: 0.5}, c.TestSamples); !strings.Contains(r, "more than the 300") {
		t.Fatalf("test metrics beyond the commitment: %q", r)
	}
	for _, j := range []*hearthv1.JobJoined{{TrainSamples: 0, Features: 64, Classes: 10}, {TrainSamples: 1 << 60, Features: 64, Classes: 10},
		{TrainSamples: 10, Features: 64, Classes: 1}, {TrainSamples: 10, ValSamples: -1, Features: 64, Classes: 10}} {
		if checkCommitment(j) == "" {
			t.Errorf("commitment %v accepted", j)
		}
	}
}
