package participant

import (
	"crypto/ecdh"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/policies/resources"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// optdigitsDir is a site's data folder holding optdigits' train, val and
// test splits (val and test both the UCI test file).
func optdigitsDir(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "optdigits"), 0o700); err != nil {
		t.Fatal(err)
	}
	train, test, err := dataset.Load("optdigits")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*dataset.Set{"train": train, "val": test, "test": test} {
		f, err := os.Create(filepath.Join(data, "optdigits", name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return data
}

// TestSiteThatDoesNotAggregateRefusesToBeAnAggregator: a site whose
// local/resources.json says "aggregate": false refuses, with the reason
// and audited, a swarm job naming it among its eligible aggregators
// (explicitly, or by leaving aggregators out: every site), in a pre-flight
// too; it joins a swarm job that names only others, and a FedAvg job.
func TestSiteThatDoesNotAggregateRefusesToBeAnAggregator(t *testing.T) {
	proj := pkitest.New(t)
	admin := proj.Issue(t, "admin@x", "org", pki.KindAdmin)
	site := proj.Issue(t, "site-1", "org", pki.KindSite)
	signer, err := envelope.NewSigner(site.Cert, site.Key)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	offer, err := resources.Parse([]byte(`{"num_of_gpus": 0, "mem_per_gpu_in_GiB": 0, "aggregate": false}`))
	if err != nil {
		t.Fatal(err)
	}
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(system.Shutdown)
	bridgePID := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {})) // swarm joins need one; no task comes here
	audit := &records{}
	p, err := New(Config{Self: site.Identity, Trust: proj.Trust, Policy: allowAll{}, Audit: audit, Ledger: ledger, DataDir: optdigitsDir(t),
		Signer: signer, SealKey: seal.PublicKey(), Bridge: bridgePID, StateDir: t.TempDir(), Resources: offer, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pid := system.Root.Spawn(p.Props())
	t.Cleanup(func() { system.Root.Stop(pid) })

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
	ask := func(t *testing.T, jobID string, msg any) any {
		t.Helper()
		f := actor.NewFuture(system, 30*time.Second)
		server := bridge.Origin{Sender: pki.Identity{Name: "server", Kind: pki.KindServer}, JobID: jobID}
		system.Root.Send(pid, bridge.Delivered(server, msg, f.PID()))
		res, err := f.Result()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
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
