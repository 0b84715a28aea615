package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestPoisoning measures what one compromised site of five can do to the
// model (optdigits, the POC's job with its logistic regression and with
// its MLP, Dirichlet 0.5 label skew): site-5 runs the hostile build and
// plays one attack per job (cmd/hearth/hostile.go), under the default
// rule, each robust aggregator, and with the defences off, which shows the
// damage beside them. Run with -v to see the tables.
//
// The defaults and Multi-Krum reach the 92% floor under every attack with
// both models, and the median and the trimmed mean with the MLP. The cells
// below the floor are named (knownMiss): plain Krum keeps one site's
// update a round, which under this label skew stays below the floor with
// every site honest; with logistic regression the coordinate-wise median
// sits at the floor honest (91.9%), and it and the trimmed mean lose only
// part of a reversed update's pull. Those cells must still stay above 70%:
// far from the collapse the attacks cause with the defences off.
func TestPoisoning(t *testing.T) {
	lp := startLearningWith(t, projectSpec{provisioned: 5, running: 5, hostile: map[string]bool{"site-5": true}})
	attacks := []struct{ name, attack string }{
		{"none (all honest)", "none"},
		{"claims 10^12 samples", "claim"},
		{"sign-flipped update", "signflip"},
		{"update boosted x30", "boost"},
		{"huge finite values (1e30)", "huge"},
	}
	rules := []struct{ name, yaml string }{
		{"defaults", ""},
		{"median", "{method: median}"},
		{"trimmed mean", "{method: trimmed_mean}"},
		{"krum", "{method: krum}"},
		{"multi-krum", "{method: multi_krum}"},
		{"defences off", "{unbounded: true}"},
	}
	for _, kind := range []string{"logreg", "mlp"} {
		t.Run(kind, func(t *testing.T) {
			var table strings.Builder
			fmt.Fprintf(&table, "| attack by site-5 |")
			for _, r := range rules {
				fmt.Fprintf(&table, " %s |", r.name)
			}
			fmt.Fprintf(&table, "\n|---|%s\n", strings.Repeat("---|", len(rules)))
			for _, a := range attacks {
				fmt.Fprintf(&table, "| %s |", a.name)
				for _, r := range rules {
					info := lp.waitEnd(t, lp.submit(t, poisonJobOf(kind, a.attack, r.yaml)), 120*time.Second)
					cell := fmt.Sprintf("%.2f%%", 100*info.Test.GetAccuracy())
					if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
						cell = "job failed"
					}
					fmt.Fprintf(&table, " %s |", cell)
					defended := r.name != "defences off"
					floor := 0.92
					if knownMiss(kind, r.name, a.attack) {
						floor = 0.70
					}
					if defended && (info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.Test.GetAccuracy() < floor) {
						t.Errorf("%s under %s: %s, test accuracy %.4f (floor %.2f): %s", a.name, r.name, info.Status, info.Test.GetAccuracy(), floor, info.Reason)
					}
					if !defended && a.attack == "huge" && info.Status == hearthv1.JobStatus_JOB_STATUS_FINISHED && info.Test.GetAccuracy() > 0.5 {
						t.Errorf("huge values with the defences off left the model at %.4f: the attack is not what it claims", info.Test.GetAccuracy())
					}
				}
				table.WriteString("\n")
			}
			t.Logf("optdigits, %s, 5 sites (site-5 hostile), test accuracy:\n%s", kind, table.String())
		})
	}
}

// knownMiss names the cells of TestPoisoning measured below, or too near
// to be sure of, the 92% floor (see there): Krum everywhere; with logistic
// regression the median everywhere and the trimmed mean against a reversed
// update.
func knownMiss(kind, rule, attack string) bool {
	switch {
	case rule == "krum":
		return true
	case kind == "logreg":
		return rule == "median" || rule == "trimmed mean" && attack == "signflip"
	}
	return false
}
