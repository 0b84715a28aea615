package coordinator

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// startPlaced runs an attested swarm job of sites against a probe that
// plays the sites and the hosts (agg-1..agg-H): each site's verdict on
// each host is verdict's.
func startPlaced(t *testing.T, sites, hosts, minSites, rounds int, verdict func(site, host string) string,
	script func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer, down string) *swarmRun {
	t.Helper()
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@x", "org-x", pki.KindAdmin)
	probe := &swarmProbe{sites: map[string]*envelope.Signer{}, hosts: map[string]*envelope.Signer{}, script: script,
		left: make(chan string, 64), verdict: verdict, hostDown: map[string]bool{down: true}}
	signer := func(name string, kind pki.Kind) *envelope.Signer {
		c := p.Issue(t, name, "org-x", kind)
		s, err := envelope.NewSigner(c.Cert, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var names, hostNames []string
	for i := 1; i <= sites; i++ {
		name := fmt.Sprintf("site-%d", i)
		probe.sites[name], names = signer(name, pki.KindSite), append(names, name)
	}
	for i := 1; i <= hosts; i++ {
		name := fmt.Sprintf("agg-%d", i)
		probe.hosts[name], hostNames = signer(name, pki.KindAggregator), append(hostNames, name)
	}
	manifest := fmt.Sprintf("name: probe\nworkflow: swarm\nrounds: %d\nsites: [%s]\nmin_sites: %d\nround_timeout: 200ms\n"+
		"dataset: optdigits\ntrainer: {kind: logreg, learning_rate: 0.1, epochs: 1, batch_size: 8, seed: 1}\nevaluation: {validation: true, test: true}\n"+
		"placement: {aggregator: attested, tee: [sev-snp], hosts: [%s]}\n", rounds, strings.Join(names, ", "), minSites, strings.Join(hostNames, ", "))
	m, err := job.ParseManifest([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := job.Sign([]byte(manifest), admin.Cert, admin.Key)
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard }))
	t.Cleanup(system.Shutdown)
	store := NewStore(&memKV{m: map[string][]byte{}}, &memKV{m: map[string][]byte{}}, nil)
	cfg := &Config{Trust: p.Trust, Store: store, Bridge: system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return probe })),
		Audit: recorder{}, Log: discard, Now: time.Now}
	const id = "job-00000000cafe"
	rec := &hearthv1.JobRecord{Info: &hearthv1.JobInfo{Id: id, Name: "probe", Rounds: int64(rounds)}, Job: signed}
	flow := newSwarmFlow(cfg, rec, m, names)
	r := &swarmRun{probe: probe, store: store, id: id, system: system, order: swarm.NewRotation(signed.Nonce, hostNames)}
	probe.run = r
	r.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return flow }))
	return r
}

func TestAttestedPlacement(t *testing.T) {
	accept := func(string, string) string { return "" }
	for _, tc := range []struct {
		name             string
		sites, hosts     int
		minSites, rounds int
		verdict          func(site, host string) string
		script           func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer
		check            func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo)
		down             string // a host that refuses its join
	}{
		{
			name: "every site accepts the host: it aggregates every round, the sites train", sites: 3, hosts: 1, minSites: 2, rounds: 3, verdict: accept,
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				for _, h := range info.History {
					if h.Aggregator != "agg-1" || len(h.Answered) != 3 || slices.Contains(h.Answered, "agg-1") {
						t.Errorf("round %d: aggregator %s, answered %v", h.Round, h.Aggregator, h.Answered)
					}
				}
				for _, task := range r.probe.tasks {
					if slices.Contains(task.Members, "agg-1") || !slices.Contains(task.Holders, "agg-1") || !slices.Equal(task.Eligible, []string{"agg-1"}) {
						t.Fatalf("task %d/%d: members %v holders %v eligible %v", task.Round, task.Attempt, task.Members, task.Holders, task.Eligible)
					}
				}
			},
		},
		{
			name: "a site refuses the host's evidence: left out of the job, with its reason", sites: 3, hosts: 1, minSites: 2, rounds: 2,
			verdict: func(site, _ string) string {
				if site == "site-2" {
					return "attestation: sev-snp: measurement: not in the accepted list"
				}
				return ""
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				for _, h := range info.History {
					if slices.Contains(h.Answered, "site-2") || len(h.Answered) != 2 {
						t.Errorf("round %d answered by %v", h.Round, h.Answered)
					}
				}
				for _, task := range r.probe.tasks {
					if slices.Contains(task.Holders, "site-2") {
						t.Fatalf("site-2 was given task %d/%d", task.Round, task.Attempt)
					}
				}
			},
		},
		{
			name: "too few sites accept any host: the job fails with their reasons", sites: 3, hosts: 2, minSites: 2, rounds: 2,
			verdict: func(site, host string) string {
				if site == "site-1" {
					return ""
				}
				return "attestation: sev-snp: tcb: below the minimum"
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				if info.Status != hearthv1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(info.Reason, "no aggregation host whose evidence 2 sites accept") ||
					!strings.Contains(info.Reason, "site-3: does not accept the aggregation hosts' evidence: agg-1: attestation: sev-snp: tcb") {
					t.Fatalf("job %s: %s", info.Status, info.Reason)
				}
				if len(r.probe.tasks) != 0 {
					t.Fatalf("%d tasks sent for a job that could not place its aggregator", len(r.probe.tasks))
				}
			},
		},
		{
			name: "the sites split between hosts: the host most accept, with those sites", sites: 4, hosts: 2, minSites: 2, rounds: 2,
			verdict: func(site, host string) string {
				if host == "agg-1" && site != "site-1" || host == "agg-2" && site == "site-1" {
					return "attestation: sev-snp: measurement"
				}
				return ""
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				for _, h := range info.History {
					if h.Aggregator != "agg-2" || slices.Contains(h.Answered, "site-1") || len(h.Answered) != 3 {
						t.Errorf("round %d: %s aggregated %v", h.Round, h.Aggregator, h.Answered)
					}
				}
			},
		},
		{
			name: "a site stops accepting the host mid-job: that site is left out, the host stays", sites: 3, hosts: 1, minSites: 2, rounds: 4,
			verdict: func(site, _ string) string {
				if site == "site-3" {
					return "attestation: sev-snp: measurement" // when it re-joins, too
				}
				return ""
			},
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if t.Round == 2 && site == "site-3" {
					return &answer{err: &bridge.RemoteError{From: site, Code: hearthv1.FailureCode_FAILURE_CODE_ATTESTATION,
						Message: "refuses agg-1's evidence: attestation: sev-snp: measurement"}}
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				for _, h := range info.History {
					if h.Aggregator != "agg-1" || h.Round >= 3 && slices.Contains(h.Answered, "site-3") {
						t.Fatalf("round %d: %s aggregated %v", h.Round, h.Aggregator, h.Answered)
					}
				}
			},
		},
		{
			name: "too few members still accept the host: the round moves on, with no host left the job fails", sites: 3, hosts: 1, minSites: 2, rounds: 4,
			verdict: accept,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if t.Round == 2 && site != t.Aggregator && site != "site-1" {
					return &answer{err: &bridge.RemoteError{From: site, Code: hearthv1.FailureCode_FAILURE_CODE_ATTESTATION,
						Message: "refuses agg-1's evidence: attestation: sev-snp: measurement"}}
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				if info.Status != hearthv1.JobStatus_JOB_STATUS_FAILED || info.CompletedRounds != 1 ||
					!strings.Contains(info.Reason, "1 of the round's members accept its host's evidence (min_sites 2)") ||
					!strings.Contains(info.Reason, "agg-1: site-3 refuses agg-1's evidence: attestation: sev-snp: measurement") {
					t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
				}
			},
		},
		{
			name: "no host joins: the job fails, and no site attests anything", sites: 2, hosts: 1, minSites: 2, rounds: 1, verdict: accept, down: "agg-1",
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				if info.Status != hearthv1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(info.Reason, "no aggregation host joined the job: agg-1: did not join") {
					t.Fatalf("job %s: %s", info.Status, info.Reason)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startPlaced(t, tc.sites, tc.hosts, tc.minSites, tc.rounds, tc.verdict, tc.script, tc.down)
			tc.check(t, r, r.end(t))
		})
	}
}
