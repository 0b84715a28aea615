package coordinator

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/jetstore"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// memKV is a KV in memory, for tests that need no JetStream.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *memKV) Get(_ context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, jetstore.ErrNotFound)
	}
	return slices.Clone(v), nil
}

func (k *memKV) Put(_ context.Context, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = slices.Clone(value)
	return nil
}

func (k *memKV) Create(ctx context.Context, key string, value []byte) error {
	if _, err := k.Get(ctx, key); err == nil {
		return jetstore.ErrExists
	}
	return k.Put(ctx, key, value)
}

func (k *memKV) Keys(context.Context) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for key := range k.m {
		out = append(out, key)
	}
	return out, nil
}

// answer is what a probe site does with a swarm task: answer msg, fail
// with err, or (neither) stay silent until the asker's timeout.
type answer struct {
	msg proto.Message
	err error
}

// swarmProbe stands in for the bridge and the sites behind it. Sites join
// with a genuine sealing-key binding; their part in each task is what
// script says (nil script: an honest member, or an honest aggregator
// counting every member and holder).
type swarmProbe struct {
	sites  map[string]*envelope.Signer
	run    *swarmRun // set before the workflow starts
	script func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer
	mu     sync.Mutex
	tasks  []*hearthv1.SwarmTask // every task sent, in order
	left   chan string
	// hostileEval, if set, is a site whose cross-site rows add some it may
	// not give: a model not in the job, another site's row, a claim over
	// its test samples.
	hostileEval string
	crossSite   bool // the job asks for a cross-site evaluation
	// Attested placement: the aggregation hosts, and each site's verdict
	// on each host ("" accepts; placement_test.go).
	hosts    map[string]*envelope.Signer
	verdict  func(site, host string) string
	hostDown map[string]bool // hosts that refuse their join
}

// digestOf is the probe's stand-in for the digest of an attempt's model.
func digestOf(t *hearthv1.SwarmTask) []byte {
	d := sha256.Sum256([]byte(fmt.Sprintf("round %d attempt %d", t.Round, t.Attempt)))
	return d[:]
}

// honest is a site's honest answer: a member's figures, the new model's
// digest, and from the aggregator its account.
func honest(site string, t *hearthv1.SwarmTask) *answer {
	res := &hearthv1.SwarmTrained{JobId: t.JobId, Round: t.Round, Attempt: t.Attempt, Trained: slices.Contains(t.Members, site),
		Samples: 90, TrainLoss: 0.5, Validation: &hearthv1.Metrics{Samples: 10, Loss: 0.5, Accuracy: 0.8}, ModelSha256: digestOf(t)}
	if !res.Trained {
		res.Samples, res.TrainLoss, res.Validation = 0, 0, nil
	}
	if site == t.Aggregator {
		res.Aggregated = &hearthv1.SwarmAggregated{Contributors: t.Members, ModelSha256: digestOf(t)}
	}
	return &answer{msg: res}
}

func (p *swarmProbe) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *bridge.Ask:
		from := pki.Identity{Name: m.To, Org: "org-" + m.To, Kind: pki.KindSite}
		var a *answer
		switch t := m.Msg.(type) {
		case *hearthv1.AttestHosts:
			res := &hearthv1.HostsAttested{JobId: t.JobId, Refused: map[string]string{}}
			for _, k := range t.Hosts {
				if why := p.verdict(m.To, k.Site); why != "" {
					res.Refused[k.Site] = why
				} else {
					res.Accepted = append(res.Accepted, k.Site)
				}
			}
			a = &answer{msg: res}
		case *hearthv1.JoinJob:
			key, _ := ecdh.X25519().GenerateKey(rand.Reader)
			if p.hostDown[m.To] {
				a = &answer{err: &bridge.RemoteError{From: m.To, Code: hearthv1.FailureCode_FAILURE_CODE_REFUSED, Message: "host policy: no"}}
				break
			}
			if h := p.hosts[m.To]; h != nil {
				binding, err := sealing.BindKey(h, t.JobId, key.PublicKey())
				if err != nil {
					panic(err)
				}
				a = &answer{msg: &hearthv1.JobJoined{JobId: t.JobId, SealingKey: binding}}
				break
			}
			binding, err := sealing.BindKey(p.sites[m.To], t.JobId, key.PublicKey())
			if err != nil {
				panic(err)
			}
			a = &answer{msg: &hearthv1.JobJoined{JobId: t.JobId, TrainSamples: 100, ValSamples: 10, TestSamples: 10,
				Features: 8, Classes: 2, SealingKey: binding}}
		case *hearthv1.SwarmTask:
			p.mu.Lock()
			p.tasks = append(p.tasks, t)
			p.mu.Unlock()
			if p.script != nil {
				a = p.script(p.run, m.To, t)
			}
			if a == nil {
				a = honest(m.To, t)
			}
		case *hearthv1.SwarmEvaluate:
			res := &hearthv1.EvaluateResult{JobId: t.JobId, Test: &hearthv1.Metrics{Samples: 10, Loss: 0.4, Accuracy: 0.9}}
			for _, other := range t.Sites {
				res.CrossSite = append(res.CrossSite, &hearthv1.CrossSiteMetrics{Model: other, Site: m.To, Metrics: &hearthv1.Metrics{Samples: 10, Loss: 0.5, Accuracy: 0.7}})
			}
			if p.hostileEval != "" && m.To == p.hostileEval { // rows it may not give
				res.CrossSite = append(res.CrossSite,
					&hearthv1.CrossSiteMetrics{Model: "site-9", Site: m.To, Metrics: &hearthv1.Metrics{Samples: 10, Accuracy: 0.1}},
					&hearthv1.CrossSiteMetrics{Model: "site-1", Site: "site-2", Metrics: &hearthv1.Metrics{Samples: 10, Accuracy: 0.1}},
					&hearthv1.CrossSiteMetrics{Model: "site-2", Site: m.To, Metrics: &hearthv1.Metrics{Samples: 1e9, Accuracy: 1}})
			}
			a = &answer{msg: res}
		}
		switch {
		case a.msg != nil:
			ctx.Respond(&bridge.Reply{From: from, Msg: a.msg})
		case a.err != nil:
			ctx.Respond(&bridge.Failed{To: m.To, Err: a.err})
		default: // silent: the bridge's timeout answers
			reply, system := ctx.Sender(), ctx.ActorSystem()
			time.AfterFunc(m.Timeout, func() {
				system.Root.Send(reply, &bridge.Failed{To: m.To, Err: fmt.Errorf("%w (%v)", bridge.ErrTimeout, m.Timeout)})
			})
		}
	case *bridge.Send:
		if _, ok := m.Msg.(*hearthv1.LeaveJob); ok {
			p.left <- m.To
		}
	}
}

// swarmRun is one swarm job run by the workflow against a probe.
type swarmRun struct {
	probe  *swarmProbe
	store  *Store
	id     string
	pid    *actor.PID
	system *actor.ActorSystem
	order  swarm.Rotation
}

func startSwarm(t *testing.T, sites, minSites, rounds int, script func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer, reachable func(string) bool) *swarmRun {
	t.Helper()
	return startSwarmWith(t, sites, minSites, rounds, script, reachable, false, "")
}

func startSwarmWith(t *testing.T, sites, minSites, rounds int, script func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer,
	reachable func(string) bool, crossSite bool, hostileEval string) *swarmRun {
	t.Helper()
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@x", "org-x", pki.KindAdmin)
	probe := &swarmProbe{sites: map[string]*envelope.Signer{}, script: script, left: make(chan string, 64), hostileEval: hostileEval, crossSite: crossSite}
	var names []string
	for i := 1; i <= sites; i++ {
		name := fmt.Sprintf("site-%d", i)
		s := p.Issue(t, name, "org-"+name, pki.KindSite)
		signer, err := envelope.NewSigner(s.Cert, s.Key)
		if err != nil {
			t.Fatal(err)
		}
		probe.sites[name], names = signer, append(names, name)
	}
	manifest := fmt.Sprintf("name: probe\nworkflow: swarm\nrounds: %d\nsites: [%s]\nmin_sites: %d\nround_timeout: 200ms\n"+
		"dataset: optdigits\ntrainer: {kind: logreg, learning_rate: 0.1, epochs: 1, batch_size: 8, seed: 1}\nevaluation: {validation: true, test: true, cross_site: %v}\n",
		rounds, strings.Join(names, ", "), minSites, crossSite)
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
		Audit: recorder{}, Log: discard, Now: time.Now, Reachable: reachable}
	const id = "job-00000000beef"
	rec := &hearthv1.JobRecord{Info: &hearthv1.JobInfo{Id: id, Name: "probe", Rounds: int64(rounds)}, Job: signed}
	flow := newSwarmFlow(cfg, rec, m, names)
	r := &swarmRun{probe: probe, store: store, id: id, system: system, order: swarm.NewRotation(signed.Nonce, names)}
	probe.run = r
	r.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return flow }))
	return r
}

// end waits until the job told its sites it ended, and returns its record.
func (r *swarmRun) end(t *testing.T) *hearthv1.JobInfo {
	t.Helper()
	select {
	case <-r.probe.left:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not end")
	}
	rec, err := r.store.Get(context.Background(), r.id)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Info
}

func TestSwarmRounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sites    int
		minSites int
		script   func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer
		check    func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo)
	}{
		{
			name: "every site answers: the rotation aggregates, one attempt a round", sites: 3, minSites: 2,
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				for _, h := range info.History {
					if h.Aggregator != r.order.Aggregator(h.Round, 0) || h.Attempts != 1 || len(h.Answered) != 3 {
						t.Errorf("round %d: aggregator %s in %d attempts with %v, want %s in 1 with all 3", h.Round, h.Aggregator, h.Attempts, h.Answered, r.order.Aggregator(h.Round, 0))
					}
				}
				if len(info.SiteTest) != 3 || len(info.CrossSite) != 3 || !strings.Contains(info.ModelLocation, "site-1, site-2, site-3") {
					t.Errorf("evaluation %v, cross-site %v, model location %q", info.SiteTest, info.CrossSite, info.ModelLocation)
				}
			},
		},
		{
			name: "a silent aggregator: the next in the rotation takes the round at the timeout", sites: 3, minSites: 2,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if t.Round == 1 && t.Attempt == 0 && site == t.Aggregator {
					return &answer{} // silent
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				h := info.History[0]
				silent := r.order.Aggregator(1, 0)
				if h.Aggregator != r.order.Aggregator(1, 1) || h.Attempts != 2 || len(h.Failovers) != 1 || !strings.Contains(h.Failovers[0], silent+": no response in time") {
					t.Fatalf("round 1: %s in %d attempts, failovers %v", h.Aggregator, h.Attempts, h.Failovers)
				}
				for _, later := range info.History[1:] {
					if later.Aggregator == silent || slices.Contains(later.Answered, silent) {
						t.Errorf("round %d: the silent %s took part before joining again", later.Round, silent)
					}
				}
			},
		},
		{
			name: "an aggregator that fails: failover at once, not at the timeout", sites: 3, minSites: 2,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if t.Round == 2 && t.Attempt == 0 && site == t.Aggregator {
					return &answer{err: &bridge.RemoteError{From: site, Code: hearthv1.FailureCode_FAILURE_CODE_AGGREGATION_FAILED, Message: "no"}}
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				h := info.History[1]
				if h.Attempts != 2 || !strings.Contains(h.Failovers[0], "aggregation_failed") {
					t.Fatalf("round 2: %d attempts, failovers %v", h.Attempts, h.Failovers)
				}
				if d := time.Duration(h.DurationMicros) * time.Microsecond; d > 150*time.Millisecond {
					t.Errorf("round 2 took %v: a failure needs no timeout", d)
				}
			},
		},
		{
			name: "a member claims to have aggregated: refused and left out", sites: 3, minSites: 2,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if site == "site-2" && site != t.Aggregator {
					a := honest(site, t)
					a.msg.(*hearthv1.SwarmTrained).Aggregated = &hearthv1.SwarmAggregated{Contributors: t.Members}
					return a
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				claimed := slices.IndexFunc(info.History, func(h *hearthv1.RoundSummary) bool { return h.Aggregator != "site-2" })
				for _, h := range info.History[claimed+1:] {
					if slices.Contains(h.Answered, "site-2") || h.Aggregator == "site-2" {
						t.Fatalf("round %d: site-2 took part after claiming round %d", h.Round, claimed+1)
					}
				}
			},
		},
		{
			name: "an answer for another attempt, and a second aggregator's count: refused", sites: 4, minSites: 2,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				a := honest(site, t)
				if site == "site-4" && site != t.Aggregator {
					a.msg.(*hearthv1.SwarmTrained).Attempt = 7
				}
				if site == t.Aggregator && t.Round == 1 && t.Attempt == 0 {
					a.msg.(*hearthv1.SwarmTrained).Aggregated.Contributors = append(slices.Clone(t.Members), "site-9")
				}
				return a
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				if h := info.History[0]; h.Attempts != 2 || !strings.Contains(h.Failovers[0], "more sites than the round has members") && !strings.Contains(h.Failovers[0], `"site-9", not a member`) {
					t.Fatalf("round 1: %d attempts, failovers %v", h.Attempts, h.Failovers)
				}
				for _, h := range info.History {
					for _, s := range h.Sites {
						if s.Site == "site-4" && h.Aggregator != "site-4" {
							t.Fatalf("round %d counts site-4's figures for another attempt", h.Round)
						}
					}
				}
			},
		},
		{
			name: "an aggregator that sends the holders another model than it declares: caught, the round moves on", sites: 4, minSites: 3,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				a := honest(site, t)
				if t.Round == 2 && t.Attempt == 0 && site != t.Aggregator {
					a.msg.(*hearthv1.SwarmTrained).ModelSha256 = make([]byte, 32) // what the holders got
				}
				return a
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				h := info.History[1]
				if h.Attempts != 2 || !strings.Contains(h.Failovers[0], "1 sites confirmed its model (min_sites 3); another model at [") {
					t.Fatalf("round 2: %d attempts, failovers %v", h.Attempts, h.Failovers)
				}
			},
		},
		{
			name: "a holder that never confirms the model: no member of the next round, and the round waits the grace, not the timeout", sites: 4, minSites: 2,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if site == silentHolder(r) && t.Round == 1 {
					return &answer{} // silent
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				h := info.History[0]
				r.probe.mu.Lock()
				defer r.probe.mu.Unlock()
				for _, task := range r.probe.tasks {
					if task.Round == 2 && slices.Contains(task.Members, silentHolder(r)) {
						t.Fatalf("round 2 trains at %s, which never confirmed round 1's model", silentHolder(r))
					}
				}
				if d := time.Duration(h.DurationMicros) * time.Microsecond; d < confirmGrace(200*time.Millisecond, 0, 0) || d > 200*time.Millisecond+100*time.Millisecond {
					t.Errorf("round 1 took %v; the grace is %v", d, confirmGrace(200*time.Millisecond, 0, 0))
				}
			},
		},
		{
			name: "holders that answer without the aggregator's model: the round moves on without it as a member", sites: 4, minSites: 2,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				a := honest(site, t)
				if t.Round == 1 && t.Attempt == 0 && site != t.Aggregator {
					a.msg.(*hearthv1.SwarmTrained).ModelSha256 = nil // trained, but the model never reached them
				}
				return a
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				wantFinished(t, info)
				if h := info.History[0]; h.Attempts != 2 || !strings.Contains(h.Failovers[0], "1 sites confirmed its model (min_sites 2)") {
					t.Fatalf("round 1: %d attempts, failovers %v", h.Attempts, h.Failovers)
				}
				first := r.order.Aggregator(1, 0)
				r.probe.mu.Lock()
				defer r.probe.mu.Unlock()
				for _, task := range r.probe.tasks {
					// Every site refuses a task that lists a skipped aggregator as a member.
					if task.Round == 1 && task.Attempt == 1 && (slices.Contains(task.Members, first) || !slices.Contains(task.Holders, first)) {
						t.Fatalf("attempt 1 of round 1: members %v, holders %v; want %s, whose model no holder confirmed, a holder only", task.Members, task.Holders, first)
					}
				}
			},
		},
		{
			name: "too few sites up: the job fails with the reason", sites: 3, minSites: 3,
			script: func(r *swarmRun, site string, t *hearthv1.SwarmTask) *answer {
				if t.Round == 2 && site == t.Aggregator {
					return &answer{err: errors.New("gone")}
				}
				return nil
			},
			check: func(t *testing.T, r *swarmRun, info *hearthv1.JobInfo) {
				if info.Status != hearthv1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(info.Reason, "round 2: 2 sites hold the global model and are up (min_sites 3)") {
					t.Fatalf("job %s: %s", info.Status, info.Reason)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startSwarm(t, tc.sites, tc.minSites, 3, tc.script, nil)
			tc.check(t, r, r.end(t))
		})
	}
}

// silentHolder is a site that does not aggregate round 1.
func silentHolder(r *swarmRun) string {
	if r.order.Aggregator(1, 0) == "site-3" {
		return "site-4"
	}
	return "site-3"
}

func wantFinished(t *testing.T, info *hearthv1.JobInfo) {
	t.Helper()
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || len(info.History) != int(info.Rounds) {
		t.Fatalf("job %s after %d rounds: %s", info.Status, len(info.History), info.Reason)
	}
}

// TestSwarmAbortEndsAWaitingRound: an abort while the round waits on a
// silent aggregator answers at once and tells the sites.
func TestSwarmAbortEndsAWaitingRound(t *testing.T) {
	var once sync.Once
	started := make(chan struct{})
	r := startSwarm(t, 3, 2, 3, func(_ *swarmRun, site string, task *hearthv1.SwarmTask) *answer {
		if site == task.Aggregator {
			once.Do(func() { close(started) })
			return &answer{} // silent
		}
		return nil
	}, nil)
	<-started
	at := time.Now()
	res, err := r.system.Root.RequestFuture(r.pid, &abortJob{reason: "aborted by admin@x"}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	info := res.(*hearthv1.JobInfo)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_ABORTED || time.Since(at) > 100*time.Millisecond {
		t.Fatalf("abort answered %s after %v", info.Status, time.Since(at))
	}
	if got := r.end(t); got.Status != hearthv1.JobStatus_JOB_STATUS_ABORTED || got.Reason != "aborted by admin@x" {
		t.Fatalf("stored %s: %s", got.Status, got.Reason)
	}
}

// TestSwarmSkipsADownAggregator: a site whose link goes down is not asked
// to aggregate: its turn passes to the next site at once, and no task
// lists it.
func TestSwarmSkipsADownAggregator(t *testing.T) {
	var mu sync.Mutex
	var down string
	isDown := func(site string) bool {
		mu.Lock()
		defer mu.Unlock()
		return site == down
	}
	r := startSwarm(t, 4, 2, 2, func(r *swarmRun, site string, task *hearthv1.SwarmTask) *answer {
		if task.Round == 1 && site == task.Aggregator { // round 2's aggregator goes down meanwhile
			mu.Lock()
			down = r.order.Aggregator(2, 0)
			mu.Unlock()
		}
		if isDown(site) {
			return &answer{} // silent: it is gone
		}
		return nil
	}, func(site string) bool { return !isDown(site) })
	info := r.end(t)
	wantFinished(t, info)
	h := info.History[1]
	if h.Aggregator != r.order.Aggregator(2, 1) || len(h.Failovers) != 1 || !strings.Contains(h.Failovers[0], down+": ") {
		t.Fatalf("round 2: %s, failovers %v; want %s skipped", h.Aggregator, h.Failovers, down)
	}
	if d := time.Duration(h.DurationMicros) * time.Microsecond; d > 150*time.Millisecond {
		t.Errorf("round 2 took %v: a down site costs no timeout", d)
	}
	r.probe.mu.Lock()
	defer r.probe.mu.Unlock()
	for _, task := range r.probe.tasks {
		if task.Round == 2 && slices.Contains(task.Holders, down) {
			t.Fatalf("a round-2 task lists the down %s", down)
		}
	}
}

// TestSwarmCrossSiteEvaluation: with evaluation.cross_site, each site's
// rows of other sites' local models join the global model's in the job's
// table, and rows a site may not give (a model not in the job, another
// site's row, more samples than it committed) are refused.
func TestSwarmCrossSiteEvaluation(t *testing.T) {
	r := startSwarmWith(t, 3, 2, 2, nil, nil, true, "site-3")
	info := r.end(t)
	wantFinished(t, info)
	cells := map[string]float64{}
	for _, c := range info.CrossSite {
		cells[c.Model+"@"+c.Site] = c.GetMetrics().GetAccuracy()
	}
	for _, site := range []string{"site-1", "site-2", "site-3"} {
		if cells["global@"+site] != 0.9 {
			t.Errorf("no global row from %s: %v", site, cells)
		}
		for _, model := range []string{"site-1", "site-2", "site-3"} {
			if cells[model+"@"+site] != 0.7 {
				t.Errorf("no row of %s's model at %s: %v", model, site, cells)
			}
		}
	}
	if len(cells) != 12 {
		t.Fatalf("%d cells, want 3 global and 9 local ones: %v", len(cells), cells)
	}
}

// TestHoldersGraceAllowsForTheCastLag: the holders of a model over one
// envelope, which comes as a cast, have the cast's lag on top of their
// grace, so that one holder slow enough to be split off the cast gets no
// other left out of the round; an inline model's holders have none.
func TestHoldersGraceAllowsForTheCastLag(t *testing.T) {
	lag := stream.Config{}.CastLag()
	if lag <= 0 {
		t.Fatalf("the default cast lag is %v", lag)
	}
	for _, tc := range []struct {
		trainer string
		want    time.Duration
	}{
		{"{kind: logreg, learning_rate: 0.1, epochs: 1, batch_size: 8, seed: 1}", 0},
		{fmt.Sprintf("{kind: noop, params: %d}", job.InlineLimit), lag}, // 4 bytes a value: over the limit
	} {
		m, err := job.ParseManifest([]byte("name: grace\nworkflow: swarm\nrounds: 1\nsites: [site-1, site-2]\nmin_sites: 2\n" +
			"round_timeout: 60s\ndataset: optdigits\ntrainer: " + tc.trainer + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		s := &swarmFlow{engine: engine{manifest: m, shapeFeatures: 64, shapeLabels: 10}}
		if got := s.castLag(); got != tc.want {
			t.Errorf("%s: the holders' grace allows %v for the cast, want %v", tc.trainer, got, tc.want)
		}
		if got, base := confirmGrace(m.RoundTimeout, time.Second, s.castLag()), 5*time.Second; got != base+tc.want {
			t.Errorf("%s: grace %v, want %v", tc.trainer, got, base+tc.want)
		}
	}
}
