package participant

import (
	"crypto/ecdh"
	"crypto/rand"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/policies/resources"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestSiteThatDoesNotAggregateRefusesToBeAnAggregator: a site whose
// local/resources.json says "aggregate": false refuses, with the reason
// and audited, a swarm job naming it among its eligible aggregators
// (explicitly, or by leaving aggregators out: every site), in a pre-flight
// too; it joins a swarm job that names only others, and a FedAvg job.
func TestSiteThatDoesNotAggregateRefusesToBeAnAggregator(t *testing.T) {
	offer, err := resources.Parse([]byte(`{"num_of_gpus": 0, "mem_per_gpu_in_GiB": 0, "aggregate": false}`))
	if err != nil {
		t.Fatal(err)
	}
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	site := startTestSite(t, Config{SealKey: seal.PublicKey(), StateDir: t.TempDir(), Resources: offer}) // swarm joins need a bridge; no task comes here
	admin, audit := site.admin, site.audit

	signed := func(t *testing.T, manifest string, preflight bool) *hearthv1.SignedJob {
		t.Helper()
		sign := job.Sign
		if preflight {
			sign = job.SignPreflight
		}
		sj, err := sign([]byte(manifest), admin.Cert, admin.Key)
		if err != nil {
			t.Fatal(err)
		}
		return sj
	}
	ask := site.ask
	manifest := func(workflow, lines string) string {
		return "name: j\nworkflow: " + workflow + "\nrounds: 2\nmin_sites: 1\nround_timeout: 30s\ndataset: optdigits\n" +
			"trainer: {kind: logreg, epochs: 1, batch_size: 32, learning_rate: 0.1, seed: 1}\n" + lines
	}
	const refusal = `local/resources.json says "aggregate": false`
	for i, tc := range []struct {
		name, manifest, want string // want "": joined
	}{
		{"a swarm job naming it an aggregator", manifest("swarm", "sites: [site-1, site-2]\naggregators: [site-2, site-1]\n"), refusal},
		{"a swarm job with every site an aggregator", manifest("swarm", "sites: [site-1, site-2]\n"), refusal},
		{"a swarm job on every site, each an aggregator", manifest("swarm", "sites: [\"@all\"]\n"), refusal},
		{"a swarm job naming only another site", manifest("swarm", "sites: [site-1, site-2]\naggregators: [site-2]\n"), ""},
		{"a FedAvg job", manifest("fedavg", "sites: [site-1, site-2]\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobID := "job-00000000000" + string(rune('a'+i))
			refusedBefore := len(audit.of("job.refused"))
			res := ask(t, jobID, &hearthv1.JoinJob{JobId: jobID, Job: signed(t, tc.manifest, false)})
			if tc.want == "" {
				if _, ok := res.(*hearthv1.JobJoined); !ok {
					t.Fatalf("join answered %T %v, want JobJoined", res, res)
				}
				return
			}
			f, ok := res.(*hearthv1.Failure)
			if !ok || f.Kind != hearthv1.FailureCode_FAILURE_CODE_REFUSED || !strings.Contains(f.Message, tc.want) {
				t.Fatalf("join answered %T %v, want refused with %q", res, res, tc.want)
			}
			refused := audit.of("job.refused")
			if len(refused) != refusedBefore+1 || refused[len(refused)-1].JobID != jobID || !strings.Contains(refused[len(refused)-1].Detail["reason"], tc.want) {
				t.Fatalf("audited refusals %v, want one for %s with %q", refused[refusedBefore:], jobID, tc.want)
			}

			// A pre-flight of the same job says so, audited too.
			pre, ok := ask(t, "", &hearthv1.Preflight{Job: signed(t, tc.manifest, true)}).(*hearthv1.SignedPreflightAnswer)
			if !ok {
				t.Fatalf("pre-flight answered %T", pre)
			}
			var answer hearthv1.PreflightAnswer
			if err := proto.Unmarshal(pre.Answer, &answer); err != nil || answer.Accepted || !strings.Contains(answer.Reason, tc.want) {
				t.Fatalf("pre-flight answer %v, %v; want refused with %q", &answer, err, tc.want)
			}
			if n := len(audit.of("preflight.refused")); n == 0 {
				t.Fatal("the pre-flight's refusal is not audited")
			}
		})
	}
}
