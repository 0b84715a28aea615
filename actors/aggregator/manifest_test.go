package aggregator_test

import (
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/job"
)

const manifest = `name: digits
workflow: fedavg
rounds: 10
sites: ["@all"]
min_sites: 2
round_timeout: 30s
dataset: optdigits
trainer: {kind: logreg, learning_rate: 0.01, epochs: 2, batch_size: 32, seed: 1}
evaluation: {validation: true, test: true}
`

// The aggregation section as a job writes it: parsed strictly, validated
// with the manifest, each problem naming its field.
func TestManifestAggregation(t *testing.T) {
	tests := []struct {
		name    string
		section string
		want    aggregator.Rule
		err     string
	}{
		{"absent: the default", "", aggregator.Rule{}, ""},
		{"median, absolute bound", "aggregation: {method: median, norm_bound: 5}\n", aggregator.Rule{Method: aggregator.Median, NormBound: 5}, ""},
		{"trimmed mean refusing", "aggregation: {method: trimmed_mean, trim: 1, relative_norm_bound: 2, on_violation: refuse, max_share: 0.3}\n",
			aggregator.Rule{Method: aggregator.TrimmedMean, Trim: 1, RelativeNormBound: 2, OnViolation: aggregator.Refuse, MaxShare: 0.3}, ""},
		{"multi-krum", "aggregation: {method: multi_krum, krum_f: 1, krum_m: 2}\n", aggregator.Rule{Method: aggregator.MultiKrum, KrumF: 1, KrumM: 2}, ""},
		{"defences off", "aggregation: {unbounded: true}\n", aggregator.Rule{Unbounded: true}, ""},
		{"unknown field", "aggregation: {method: median, clip: 3}\n", aggregator.Rule{}, "field clip not found"},
		{"bad method", "aggregation: {method: mean}\n", aggregator.Rule{}, "aggregation.method:"},
		{"bad share", "aggregation: {max_share: 2}\n", aggregator.Rule{}, "aggregation.max_share:"},
		{"bound and unbounded", "aggregation: {unbounded: true, norm_bound: 1}\n", aggregator.Rule{}, "aggregation.unbounded:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := job.ParseManifest([]byte(manifest + tt.section))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Aggregation != tt.want {
				t.Fatalf("rule %+v, want %+v", m.Aggregation, tt.want)
			}
		})
	}
}
