package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/plugins/attest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// pocTrainer is hearth poc's optdigits logistic regression.
const pocTrainer = "{kind: logreg, learning_rate: 0.1, epochs: 5, batch_size: 16, l2: 0.0001, seed: 1}"

// attestedJob is a swarm job placed on agg-1, which must present SEV-SNP
// and GPU evidence.
func attestedJob(name string, rounds, minSites int, trainer string) string {
	return swarmJob(name, rounds, minSites, "10s", trainer) + "placement: {aggregator: attested, tee: [sev-snp, nvidia-gpu], hosts: [agg-1]}\n"
}

// sitePolicy is a site's local/attestation.json that accepts the simulated
// host (hearth aggregator --simulated-tee); change edits it first.
func sitePolicy(t testing.TB, reattest string, change func(p map[string]any)) string {
	t.Helper()
	p := attest.SimulatedPolicy()
	p["reattest"] = reattest
	if change != nil {
		change(p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAttestedAggregation: five sites, one aggregation host in its own
// process with simulated SEV-SNP and GPU evidence. Three sites accept the
// host; site-4's policy accepts another measurement, site-5's trusts only
// AMD's real roots: each refuses the host's evidence with its reason
// audited, sends it nothing and is left out, and the job runs with the
// other three. The hostile server's tap sees every update to the host
// sealed, and no stretch of the final model in the clear.
func TestAttestedAggregation(t *testing.T) {
	tap := filepath.Join(t.TempDir(), "tap.bin")
	lp := startLearningWith(t, projectSpec{provisioned: 5, running: 5, tap: tap, hosts: 1,
		hostArgs: []string{"--simulated-tee", "--tee", "sev-snp,nvidia-gpu"},
		attestation: func(site string) string {
			switch site {
			case "site-4":
				return sitePolicy(t, "10m", func(p map[string]any) {
					p["sev_snp"].(map[string]any)["measurements"] = []string{strings.Repeat("ab", 48)}
				})
			case "site-5":
				return sitePolicy(t, "10m", func(p map[string]any) { p["simulated"] = false })
			}
			return sitePolicy(t, "10m", nil)
		}})
	id := lp.submit(t, attestedJob("attested-tap", 15, 3, pocTrainer))
	info := lp.waitEnd(t, id, 120*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("job %s: %s", info.Status, info.Reason)
	}
	for _, h := range info.History {
		if h.Aggregator != "agg-1" || !slices.Equal(h.Answered, []string{"site-1", "site-2", "site-3"}) {
			t.Fatalf("round %d: aggregated by %s, answered by %v", h.Round, h.Aggregator, h.Answered)
		}
	}
	if acc := info.Test.GetAccuracy(); acc < swarmFloor {
		t.Fatalf("test accuracy %.4f with three sites, floor %.2f", acc, swarmFloor)
	}
	for site, reason := range map[string]string{"site-4": "measurement", "site-5": "chain"} {
		refused := auditOf(t, lp.project, site, func(r auditor.Record) bool {
			return r.JobID == id && r.Action == "attestation.refused" && r.Peer == "agg-1"
		})
		if len(refused) == 0 || !strings.Contains(refused[0].Detail["reason"], reason) {
			t.Fatalf("%s audited %v, want its refusal of agg-1's evidence for its %s", site, refused, reason)
		}
		if sent := auditOf(t, lp.project, site, func(r auditor.Record) bool { return r.JobID == id && r.Action == "update.sent" }); len(sent) > 0 {
			t.Fatalf("%s refused the host's evidence and sent %d updates", site, len(sent))
		}
	}
	for _, site := range []string{"site-1", "site-2", "site-3"} {
		if ok := auditOf(t, lp.project, site, func(r auditor.Record) bool {
			return r.JobID == id && r.Action == "attestation.accepted" && r.Peer == "agg-1" && strings.Contains(r.Detail["evidence"], "under SIMULATED test roots")
		}); len(ok) == 0 {
			t.Fatalf("%s did not audit its acceptance of agg-1's (simulated) evidence", site)
		}
	}
	lp.server.Stop(10 * time.Second) // the tap file is complete
	data := readAll(t, tap)
	all := slices.Clone(data)
	final, err := os.ReadFile(participant.ModelPath(filepath.Join(lp.Kit("site-1"), kit.StateDirName), id))
	if err != nil {
		t.Fatal(err)
	}
	var fm hearthv1.Model
	if err := proto.Unmarshal(final, &fm); err != nil {
		t.Fatal(err)
	}
	sealed := 0
	for len(data) > 0 {
		subject, body := tapRecord(t, &data)
		var env hearthv1.Envelope
		if proto.Unmarshal(body, &env) != nil {
			continue
		}
		var h hearthv1.Header
		if err := proto.Unmarshal(env.Header, &h); err != nil || h.JobId != id {
			continue
		}
		if h.MessageType == "hearth.v1.SwarmUpdate" || h.MessageType == "hearth.v1.SwarmModel" {
			var sb hearthv1.SealedBody
			if h.BodyEncoding != hearthv1.BodyEncoding_BODY_ENCODING_SEALED || proto.Unmarshal(env.Body, &sb) != nil || len(sb.Ciphertext) == 0 {
				t.Fatalf("%s on %s: encoding %s, not a sealed body", h.MessageType, subject, h.BodyEncoding)
			}
			if h.MessageType == "hearth.v1.SwarmUpdate" && subject != "hearth.peer.agg-1."+h.Sender {
				t.Fatalf("an update on %s, not to the host", subject)
			}
			sealed++
		}
	}
	weights := fm.Tensors[0].Data
	for off := 0; off+64 <= len(weights); off += 64 {
		if bytes.Contains(all, weights[off:off+64]) {
			t.Fatalf("bytes %d..%d of the final model crossed the hub in the clear", off, off+64)
		}
	}
	if sealed < 8*3 {
		t.Fatalf("the tap saw %d sealed updates and models: not the job's traffic", sealed)
	}
	t.Logf("3 sites accepted agg-1; site-4 (measurement) and site-5 (chain) refused it and sent nothing; %d sealed updates and models on the hub; test accuracy %.2f%%",
		sealed, 100*info.Test.GetAccuracy())
}

// TestAttestationFailingMidJob: the host's evidence changes after the
// sites' first attestations (the hostile build's HEARTH_HOSTILE_EVIDENCE_AFTER: another
// measurement, as if another guest had been started); the sites attest it
// again every second, refuse it, send it nothing more, and the job fails
// with the reason; the server, the sites and the host stay up, and a
// swarm job among the sites runs to the end afterwards.
func TestAttestationFailingMidJob(t *testing.T) {
	t.Setenv("HEARTH_HOSTILE_EVIDENCE_AFTER", "3") // inherited by the host; other builds ignore it
	lp := startLearningWith(t, projectSpec{provisioned: 3, running: 3, hosts: 1, hostileHosts: map[string]bool{"agg-1": true},
		hostArgs: []string{"--simulated-tee", "--tee", "sev-snp"},
		attestation: func(string) string {
			return sitePolicy(t, "1s", func(p map[string]any) { p["require"] = []string{"sev-snp"}; delete(p, "nvidia_gpu") })
		}})
	id := lp.submit(t, strings.Replace(attestedJob("attested-changes", 400, 2, slowTrainer), "tee: [sev-snp, nvidia-gpu]", "tee: [sev-snp]", 1))
	info := lp.waitEnd(t, id, 120*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(info.Reason, "refuses agg-1's evidence: attestation: sev-snp: measurement") ||
		!strings.Contains(info.Reason, "measurement") || info.CompletedRounds < 1 {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	refusing := 0
	for _, site := range lp.Sites {
		recs := auditOf(t, lp.project, site, func(r auditor.Record) bool { return r.JobID == id })
		refusedAt := slices.IndexFunc(recs, func(r auditor.Record) bool { return r.Action == "attestation.refused" && r.Peer == "agg-1" })
		if refusedAt < 0 {
			continue // its re-attestation had not come round before the job ended
		}
		refusing++
		// An update on its way when the re-attestation failed is
		// delivered (its receipt audited after); none of a later round.
		var inFlight int64
		for _, r := range recs[:refusedAt] {
			if r.Action == "task.received" {
				inFlight = max(inFlight, r.Round)
			}
		}
		for _, r := range recs[refusedAt:] {
			if r.Action == "update.sent" && r.Round > inFlight {
				t.Fatalf("%s sent its round %d update after refusing agg-1's evidence in round %d", site, r.Round, inFlight)
			}
		}
	}
	if refusing == 0 {
		t.Fatal("no site audited its refusal of agg-1's changed evidence")
	}
	t.Logf("after %d rounds %d sites refused agg-1's changed evidence; the job: %s", info.CompletedRounds, refusing, info.Reason)
	// Everything else is up: a swarm job among the sites runs to the end.
	next := lp.submit(t, swarmJob("after-the-host", 3, 2, "10s", ""))
	if info := lp.waitEnd(t, next, 60*time.Second); info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("the next job %s: %s", info.Status, info.Reason)
	}
	if _, err := lp.admin.Status(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// TestAttestedPOC runs `hearth poc --aggregator attested`: the host in its
// own process, simulated evidence, optdigits to 93% or more.
func TestAttestedPOC(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "poc")
	out, err := exec.Command(hearthBin, "poc", "--aggregator", "attested", "--workspace", ws, "--json").Output()
	if err != nil {
		t.Fatalf("hearth poc --aggregator attested: %v\n%s", err, out)
	}
	var sum struct {
		Status  string  `json:"status"`
		TestAcc float64 `json:"test_accuracy"`
		Rounds  []struct {
			Round      int64   `json:"round"`
			Answered   int     `json:"sites_answered"`
			Aggregator string  `json:"aggregator"`
			Attempts   int64   `json:"attempts"`
			Millis     float64 `json:"ms"`
		} `json:"rounds"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status != "finished" || sum.TestAcc < 0.93 {
		for _, r := range sum.Rounds {
			if r.Answered < 5 || r.Attempts > 1 {
				t.Logf("round %d: %d sites answered, %d attempts, %.0f ms", r.Round, r.Answered, r.Attempts, r.Millis)
			}
		}
		t.Fatalf("POC %s, test accuracy %.4f, want finished and >= 0.93", sum.Status, sum.TestAcc)
	}
	for i, r := range sum.Rounds {
		if r.Aggregator != "agg-1" {
			t.Fatalf("round %d aggregated by %q, not the host", i+1, r.Aggregator)
		}
	}
	fmt.Fprintf(os.Stderr, "attested POC: test accuracy %.2f%%\n", 100*sum.TestAcc)
}
