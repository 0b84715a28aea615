package coordinator

import (
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/job"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestCappedWeights(t *testing.T) {
	cases := []struct {
		name      string
		committed map[string]int64
		maxShare  float64
		want      map[string]float64
	}{
		{"under the cap: counts as committed", map[string]int64{"a": 300, "b": 200, "c": 250}, 0.5,
			map[string]float64{"a": 300, "b": 200, "c": 250}},
		// a liar's 10^12 is lowered to 0.4 of the total: t = 0.4*(4*600)/(1-0.4) = 1600.
		{"a liar capped at half", map[string]int64{"liar": 1e12, "b": 600, "c": 600, "d": 600, "e": 600}, 0.5,
			map[string]float64{"liar": 2400, "b": 600, "c": 600, "d": 600, "e": 600}},
		{"a liar capped at the default share of 5 sites", map[string]int64{"liar": 1e12, "b": 600, "c": 600, "d": 600, "e": 600}, aggregator.DefaultShareCap(5),
			map[string]float64{"liar": 1600, "b": 600, "c": 600, "d": 600, "e": 600}},
		// two large: t = 0.3*(100+100)/(1-2*0.3) = 150 (the second, 1000, is above a one-site cap of 0.3*1200/0.7 = 514).
		{"two sites over the cap", map[string]int64{"a": 5000, "b": 1000, "c": 100, "d": 100}, 0.3,
			map[string]float64{"a": 150, "b": 150, "c": 100, "d": 100}},
		{"a cap below a fair share: equal weights", map[string]int64{"a": 10, "b": 20, "c": 30}, 0.2,
			map[string]float64{"a": 1, "b": 1, "c": 1}},
		{"no cap", map[string]int64{"a": 9000, "b": 10}, 1,
			map[string]float64{"a": 9000, "b": 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := cappedWeights(tc.committed, tc.maxShare)
			total := 0.0
			for s, w := range got {
				total += w
				if math.Abs(w-tc.want[s]) > 1e-9*tc.want[s] {
					t.Errorf("%s: weight %v, want %v", s, w, tc.want[s])
				}
			}
			share := tc.maxShare
			for s, w := range got {
				if w/total > max(share, 1/float64(len(got)))+1e-9 {
					t.Errorf("%s holds %.3f of the weight, cap %.3f", s, w/total, share)
				}
			}
		})
	}
}

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
