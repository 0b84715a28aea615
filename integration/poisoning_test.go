package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestPoisoning measures what one compromised site of five can do to the
// model (optdigits, the POC's job): site-5 runs the hostile build and plays
// one attack per job (cmd/hearth/hostile.go), under the default rule, each
// robust aggregator, and with the defences off. With any defence on, the
// job reaches at least 92% test accuracy; the defences-off column shows the
// damage beside it. Run with -v to see the table.
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
	var table strings.Builder
	fmt.Fprintf(&table, "| attack by site-5 |")
	for _, r := range rules {
		fmt.Fprintf(&table, " %s |", r.name)
	}
	fmt.Fprintf(&table, "\n|---|%s\n", strings.Repeat("---|", len(rules)))
	for _, a := range attacks {
		fmt.Fprintf(&table, "| %s |", a.name)
		for _, r := range rules {
			info := lp.waitEnd(t, lp.submit(t, poisonJob(a.attack, r.yaml)), 120*time.Second)
			cell := fmt.Sprintf("%.2f%%", 100*info.Test.GetAccuracy())
			if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
				cell = "job failed"
			}
			fmt.Fprintf(&table, " %s |", cell)
			defended := r.name != "defences off"
			if defended && (info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.Test.GetAccuracy() < 0.92) {
				t.Errorf("%s under %s: %s, test accuracy %.4f (floor 0.92): %s", a.name, r.name, info.Status, info.Test.GetAccuracy(), info.Reason)
			}
			if !defended && a.attack == "huge" && info.Status == hearthv1.JobStatus_JOB_STATUS_FINISHED && info.Test.GetAccuracy() > 0.5 {
				t.Errorf("huge values with the defences off left the model at %.4f: the attack is not what it claims", info.Test.GetAccuracy())
			}
		}
		table.WriteString("\n")
	}
	t.Logf("optdigits, 5 sites (site-5 hostile), test accuracy:\n%s", table.String())
}
