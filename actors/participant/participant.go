// Package participant is the site's learning actor: it takes part in jobs
// the server proposes (after verifying each signed job and deciding by the
// site's own policy), trains on the site's local data, evaluates models,
// and answers with model updates and metrics. Raw data never leaves it.
package participant

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/stream"
	"github.com/hearthfl/hearth/plugins/authn"
	codetrainer "github.com/hearthfl/hearth/plugins/trainer"
	"github.com/hearthfl/hearth/policies/components"
	"github.com/hearthfl/hearth/policies/privacy"
	"github.com/hearthfl/hearth/policies/resources"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Recorder records audit events; *auditor.Log is one.
type Recorder interface {
	Append(auditor.Event) (auditor.Record, error)
}

// Authorizer decides by the site's own policy whether requester may
// exercise right (e.g. "submit_job") here; submitter is the job's submitter
// for rights over an existing job.
type Authorizer interface {
	Allow(right string, requester pki.Identity, submitter *pki.Identity) (allowed bool, reason string)
}

// Streams pulls and offers chunked streams; *stream.Manager is one.
type Streams interface {
	Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error)
	OfferBytes(ctx context.Context, recipient string, data []byte) (*stream.Outgoing, error)
	OfferBytesChunks(ctx context.Context, recipient string, data []byte, chunkBytes int) (*stream.Outgoing, error)
	Prepare(ctx context.Context, data []byte) (*stream.Payload, error)
	PrepareChunks(ctx context.Context, data []byte, chunkBytes int) (*stream.Payload, error)
	OfferPayload(ctx context.Context, recipient string, p *stream.Payload) (*stream.Outgoing, error)
	OfferCast(ctx context.Context, recipients []string, p *stream.Payload) (*stream.Cast, error)
}

// Config is what a participant needs.
type Config struct {
	Self    pki.Identity
	Trust   *pki.Trust
	Policy  Authorizer
	DataDir string // DataDir/<dataset>/{train,val,test}.bin
	Audit   Recorder
	// Streams moves models too large for one envelope. Models larger than
	// SpillAbove bytes are kept in file mappings in SpillDir instead of
	// memory.
	Streams    Streams
	SpillDir   string
	SpillAbove int64
	// Ledger records the signed jobs this site ran, so that none runs
	// twice under different ids. Required.
	Ledger *Ledger
	// Outgoing, if set, sees each answer to the server before it leaves
	// (JobJoined; TrainResult, with the round's global model when the
	// update is inline, nil when it is streamed, whose bytes are offered
	// already; EvaluateResult), and may change it or stop it (an error). It
	// is where a site's own filters stand; the integration tests' hostile
	// build plays a compromised site through it.
	Outgoing func(m *job.Manifest, global *model.Model, answer proto.Message) error
	// Swarm learning: the site's certificate key (to bind SealKey, the
	// public half of the key the site's bridge opens sealed bodies with),
	// the bridge (to reach other sites), and the state folder, where the
	// newest global model of each swarm job is kept. Without them the site
	// refuses swarm jobs.
	Signer   sealing.Signer
	SealKey  *ecdh.PublicKey
	Bridge   *actor.PID
	StateDir string
	// OnSwarmTask, if set, sees each swarm task this site trains for and
	// does not aggregate, with the basis model and a way to send sealed
	// messages to the round's sites, as requests (answers dropped) or
	// one-way. It is where the integration tests' hostile build plays a
	// compromised site that claims rounds not its own.
	OnSwarmTask func(m *job.Manifest, task *hearthv1.SwarmTask, basis *model.Model, send func(to string, m proto.Message, oneWay bool))
	// Gate, if set, is the site's own authentication of the people behind
	// admin commands (its LDAP, its OIDC provider, through a plugin), with
	// the opener of the credentials they attach for this site.
	Gate *credential.Gate
	// Privacy is the site's privacy policy (local/privacy.json): its
	// scopes, their filters and budgets. Nil: jobs that name a scope or
	// filters are refused.
	Privacy *privacy.Policy
	// FilterPlugins runs the site's own filters, the plugin binaries its
	// privacy.json pins (plugins/filter's Site). Nil: a job whose scope
	// holds one is refused.
	FilterPlugins privacy.PluginFilters
	// Components is the site's allow-list of what a job may build here
	// (local/components.json). Nil: components.Builtins.
	Components *components.AllowList
	// Attestation is the site's own policy on aggregation hosts' evidence
	// (local/attestation.json). Nil: the site refuses attested jobs.
	Attestation AttestationPolicy
	// Evidence, set, makes this participant an aggregation host (host.go):
	// it joins the jobs that place their aggregator on it, and answers the
	// sites' attestation requests with evidence Evidence makes.
	Evidence Evidence
	// Checkers are the site's checker plugins (local/components.json's
	// checkers), run in order on every job that passed the site's policy
	// and allow-list, before anything of it is built here (admission.go).
	Checkers []JobChecker
	// StartCode runs a job's own trainer (a PyTorch script) under the
	// site's limits (jobcode.go). Nil: the site refuses jobs that bring
	// code.
	StartCode StartCode
	// Resources is what the site offers jobs (local/resources.json): a
	// job whose resource spec does not fit what is free is refused, and
	// each GPU serves one job at a time; a site whose offer says it does
	// not aggregate refuses a swarm job that names it among the job's
	// aggregators.
	Resources resources.Offer
	Log       *slog.Logger
	Now       func() time.Time
}

// Participant is the actor. Create it with New.
type Participant struct {
	cfg   Config
	peers jobPeers
	jobs  map[string]*joined
	// tasks counts the training tasks begun for each job id, across
	// re-joins: a job's rounds plus maxResumes at most (see beginRound).
	tasks map[string]int
	// gpus are the GPUs given to each joined job (Config.Resources).
	gpus map[string]int
	// evidenceSlots bounds an aggregation host's evidence in the making.
	evidenceSlots chan struct{}
	// admitting are the jobs being admitted off the actor (the site's
	// checkers running, or the job's own trainer starting), so that a
	// LeaveJob meanwhile stops that work and a second join waits.
	admitting map[string]*admitting
	// offActor bounds the admissions running off the actor at once (the
	// site's checkers, job trainers starting): each costs a plugin call or
	// a Python process, and a compromised server can ask for many.
	offActor chan struct{}
}

// maxOffActor is how many admissions run off the actor at once.
const maxOffActor = 4

// maxResumes is how many rounds a job may be trained again here, beyond
// its own: a server resumed after a crash repeats the round it was in. It
// bounds what a compromised server, re-joining a job to reset its count,
// can make the site train.
const maxResumes = 3

type joined struct {
	id string
	// ctx ends when the site leaves the job: its training stops then.
	ctx     context.Context
	cancel  context.CancelFunc
	swarm   *swarmJob   // a swarm job's state; nil for FedAvg
	he      *heJob      // homomorphic encryption's; nil without
	privacy *jobPrivacy // DP-SGD's accounting; nil without DP
	// The job's privacy scope at this site, its chain of filters on what
	// leaves (the site's first), and the ε budgets it trains within.
	scope   string
	chain   []privacy.Link
	filters []filter.Filter
	// and on what enters (the global model), the site's first.
	dataChain        []privacy.Link
	dataFilters      []filter.Filter
	budgets          []dp.Guarantee
	manifest         *job.Manifest
	nonce            string // the signed job's, as the ledger knows it
	spec             trainer.Spec
	train, val, test *dataset.Set
	// code is the job's own trainer (jobcode.go), and the layout of the
	// model it prepared; nil: the built-in one that spec names.
	code       CodeTrainer
	codeLayout []model.TensorShape
	// spare keeps a streamed global model's buffer from one round to the
	// next, so a job allocates it once; updates does the same for the
	// buffer a streamed update is sent from.
	spare, updates model.Spare
	// The server's tasks are bounded too: each round is trained once, in
	// order, one at a time, and the final model evaluated once, so a
	// compromised server cannot make the site train without end.
	mu        sync.Mutex
	lastRound int64
	busy      bool
	evaluated bool
	// An attested job: what this site knows of each host (attested.go),
	// and whether its re-attestation runs; at a host, when each site last
	// asked for evidence (host.go).
	hosts       map[string]*attestedHost
	reattesting bool
	attestAsked time.Time // the server's last AttestHosts
	asked       map[string]time.Time
}

// beginRound claims the site's training for round of the job, or says why
// not; endRound releases it.
func (j *joined) beginRound(round int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case round < 1 || round > int64(j.manifest.Rounds):
		return fmt.Errorf("round %d is not in the job's 1..%d", round, j.manifest.Rounds)
	case round <= j.lastRound:
		return fmt.Errorf("round %d was already trained here (last: %d)", round, j.lastRound)
	case j.busy:
		return fmt.Errorf("round %d asked for while round %d is training", round, j.lastRound)
	}
	j.lastRound, j.busy = round, true
	return nil
}

func (j *joined) endRound() {
	j.mu.Lock()
	j.busy = false
	j.mu.Unlock()
}

// beginEvaluation claims the job's one test evaluation.
func (j *joined) beginEvaluation() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.evaluated {
		return errors.New("the final model was already evaluated here")
	}
	j.evaluated = true
	return nil
}

// New makes a participant.
func New(cfg Config) (*Participant, error) {
	if cfg.Trust == nil || cfg.Policy == nil || cfg.Audit == nil || cfg.Ledger == nil {
		return nil, errors.New("participant: trust, policy, audit and ledger are required")
	}
	if g := cfg.Gate; g != nil && (g.Authn == nil || g.Opener == nil) {
		return nil, errors.New("participant: a gate needs an authenticator and a credential opener")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Participant{cfg: cfg, jobs: map[string]*joined{}, tasks: map[string]int{}, gpus: map[string]int{}, evidenceSlots: make(chan struct{}, evidenceSlots), admitting: map[string]*admitting{}, offActor: make(chan struct{}, maxOffActor)}, nil
}

// ListJoined asks the participant for the jobs it is in (a local
// message); it answers Joined.
type ListJoined struct{}

// Joined are the ids of the jobs the participant is in, sorted.
type Joined struct{ IDs []string }

// Props makes the actor's props.
func (p *Participant) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return p })
}

// Messages are the types the participant handles, for bridge routes.
func Messages() []proto.Message {
	return []proto.Message{&hearthv1.JoinJob{}, &hearthv1.GetLayout{}, &hearthv1.GetCredentialKey{}, &hearthv1.Preflight{}, &hearthv1.TrainTask{}, &hearthv1.EvaluateTask{}, &hearthv1.LeaveJob{},
		&hearthv1.AttestHosts{}, &hearthv1.AttestationRequest{},
		&hearthv1.SwarmTask{}, &hearthv1.SwarmEvaluate{}, &hearthv1.SwarmUpdate{}, &hearthv1.SwarmModel{}, &hearthv1.SwarmLocal{},
		&hearthv1.HESetup{}, &hearthv1.HEKeyExchange{}, &hearthv1.HEKeys{}, &hearthv1.HEReveal{}, &hearthv1.HEDecrypt{}, &hearthv1.HEThresholdShare{}}
}

// Receive implements actor.Actor.
func (p *Participant) Receive(ctx actor.Context) {
	if p.isHost() && p.hostReceive(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Stopping: // the site is shutting down: its jobs' own trainers end with it
		for _, j := range p.jobs {
			j.cancel()
			p.closeCode(j)
		}
	case *hearthv1.AttestHosts:
		p.attestHosts(ctx, m)
	case *reattestDue:
		p.reattest(ctx, m)
	case *assessment:
		if p.jobs[m.j.id] == m.j {
			m.done(p.record(m.j, m.host, m.pub, *m))
		}
	case *hearthv1.AttestationRequest:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, p.cfg.Self.Name+" is a site, not an aggregation host"))
	case *hearthv1.JoinJob:
		if res := p.join(ctx, m, false); res != nil { // nil: answered once authenticated
			ctx.Respond(res)
		}
	case *hearthv1.Preflight:
		if res := p.join(ctx, &hearthv1.JoinJob{Job: m.Job, Credential: m.Credential, AuditEvent: m.AuditEvent}, true); res != nil {
			ctx.Respond(p.signPreflight(res, m.Job))
		}
	case *hearthv1.GetCredentialKey:
		p.credentialKey(ctx)
	case *ListJoined:
		ctx.Respond(&Joined{IDs: slices.Sorted(maps.Keys(p.jobs))})
	case *hearthv1.GetLayout:
		p.layout(ctx, m)
	case *hearthv1.TrainTask:
		p.train(ctx, m)
	case *hearthv1.EvaluateTask:
		p.evaluate(ctx, m)
	case *hearthv1.SwarmTask:
		p.swarmTask(ctx, m)
	case *hearthv1.SwarmEvaluate:
		p.swarmEvaluate(ctx, m)
	case *hearthv1.SwarmUpdate:
		p.arrived(ctx, m.JobId, m.Round, m.Attempt, m)
	case *hearthv1.SwarmModel:
		p.arrived(ctx, m.JobId, m.Round, m.Attempt, m)
	case *hearthv1.SwarmLocal:
		p.swarmLocal(ctx, m)
	case *hearthv1.HESetup:
		p.heSetup(ctx, m)
	case *hearthv1.HEKeyExchange:
		p.heKeyExchange(ctx, m)
	case *hearthv1.HEThresholdShare:
		p.heThresholdShare(ctx, m)
	case *hearthv1.HEKeys:
		p.heKeys(ctx, m)
	case *hearthv1.HEReveal:
		p.heReveal(ctx, m)
	case *hearthv1.HEDecrypt:
		p.heDecrypt(ctx, m)
	case *crossDue:
		if j := p.jobs[m.jobID]; j != nil && j.swarm != nil && j.swarm.cross != nil {
			p.finishCross(ctx, j)
		}
	case *trainedLocal:
		p.trainedLocal(ctx, m)
	case *modelOverdue:
		p.modelOverdue(ctx, m)
	case *pulled:
		p.pulledStream(ctx, m)
	case *aggregatorSaid:
		p.aggregatorSaid(ctx, m)
	case *closeAggregation:
		if j := p.jobs[m.jobID]; j != nil && j.swarm != nil && j.swarm.agg != nil && j.swarm.agg.at == m.at && !j.swarm.agg.closing {
			p.closeAggregation(ctx, j)
		}
	case *hearthv1.LeaveJob:
		if from, ok := p.fromServer(ctx); ok {
			a := p.admitting[m.JobId]
			if p.jobs[m.JobId] == nil && a == nil {
				break // a job this site is not in (it refused it, say): nothing to leave
			}
			if j := p.jobs[m.JobId]; j != nil {
				j.cancel()
				p.leaveSwarm(ctx, j)
				p.closeCode(j)
				if j.he != nil {
					p.peers.drop(j.id)
				}
				j.spare.Close()
				j.updates.Close()
				if err := p.cfg.Ledger.End(j.nonce, m.JobId); err != nil {
					p.cfg.Log.Error("job ledger: end not recorded", "job", m.JobId, "err", err)
				}
			}
			if a != nil {
				a.leave() // its checkers or its trainer's start stop; a trainer started is closed (jobcode.go)
			}
			delete(p.jobs, m.JobId)
			delete(p.gpus, m.JobId)
			p.audit(auditor.Event{Action: "job.left", JobID: m.JobId, Peer: from.Sender.Name,
				Detail: map[string]string{"status": m.Status.String(), "reason": m.Reason}})
		}
	}
}

// fromServer checks that a message came from the project's server: only
// the server coordinates jobs.
func (p *Participant) fromServer(ctx actor.Context) (bridge.Origin, bool) {
	o, ok := bridge.OriginOf(ctx)
	if !ok || o.Sender.Kind != pki.KindServer {
		p.cfg.Log.Warn("job message not from the server refused", "from", o.Sender.Name, "kind", o.Sender.Kind)
		if ctx.Sender() != nil {
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, "only the server coordinates jobs"))
		}
		return o, false
	}
	return o, true
}

// join decides a job the server asks this site to join, and joins it; dry
// (a pre-flight) decides the same way, with the same checks and audit, and
// joins nothing: the answer is a PreflightAnswer.
func (p *Participant) join(ctx actor.Context, m *hearthv1.JoinJob, dry bool) any {
	from, ok := p.fromServer(ctx)
	if !ok {
		return failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, "only the server coordinates jobs")
	}
	if !dry && !job.ValidID(m.JobId) {
		p.audit(auditor.Event{Action: "job.refused", Peer: from.Sender.Name, PeerEvent: m.AuditEvent,
			Detail: map[string]string{"reason": "not a job id", "job": m.JobId}})
		return failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%s refused a job: %q is not a job id", p.cfg.Self.Name, envelope.Clip(m.JobId, 64)))
	}
	received := p.audit(auditor.Event{Action: joinAction(dry, "received"), JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: m.AuditEvent})
	refuse := func(reason string) any { return p.refuseJob(m.JobId, from, received, reason, dry) }
	now := p.cfg.Now()
	verify := job.Verify
	if dry {
		verify = job.VerifyPreflight // signed for a pre-flight only: such a job is never joined
	}
	v, err := verify(m.Job, p.cfg.Trust, now)
	if err != nil {
		return refuse(err.Error())
	}
	// A job this site already runs (the server resumed it after a restart)
	// may be past its not-after; any other must be fresh, and must not have
	// run here under another id. Both before any work on the job.
	if p.cfg.Ledger.Ended(v.Nonce) {
		return refuse("this signed job ended here; it does not run again")
	}
	known := !dry && p.cfg.Ledger.Known(v.Nonce, m.JobId)
	if !known {
		if err := v.Fresh(now); err != nil {
			return refuse(err.Error())
		}
		if err := p.cfg.Ledger.Unused(v.Nonce); err != nil {
			return refuse(err.Error())
		}
	}
	if !deployedHere(v.Manifest.Sites, p.cfg.Self.Name) {
		return refuse("this site is not in the job's sites")
	}
	// A job this site joined before (resumed) was authenticated then.
	if !known && (p.cfg.Gate.Needs(joinCommand(dry)) || p.cfg.Gate.Needs(authn.CommandSubmit)) { // a dry run answers as the job would be
		return p.authenticateJoin(ctx, m, v, from, received, dry)
	}
	who := v.Submitter
	if r := p.cfg.Ledger.RoleOf(v.Nonce); known && r != "" {
		who.Role = pki.Role(r) // a resumed job is decided on the role it was admitted with
	}
	return p.admit(ctx, m, v, from, received, who, dry)
}

// joinCommand is what a site authenticates a join (or its dry run) as.
func joinCommand(dry bool) authn.Command {
	if dry {
		return authn.CommandPreflight
	}
	return authn.CommandSubmit
}

// joinAction names a join's audit events: job.* or, dry, preflight.*.
func joinAction(dry bool, what string) string {
	if dry {
		return "preflight." + what
	}
	return "job." + what
}

// refuseJob audits and answers a refused JoinJob, or dry, a pre-flight's
// refusal.
func (p *Participant) refuseJob(jobID string, from bridge.Origin, received, reason string, dry bool) any {
	p.cfg.Log.Warn("job refused", "job", jobID, "reason", reason, "preflight", dry)
	p.audit(auditor.Event{Action: joinAction(dry, "refused"), JobID: jobID, Peer: from.Sender.Name, PeerEvent: received,
		Detail: map[string]string{"reason": reason}})
	if dry {
		return &hearthv1.PreflightAnswer{Site: p.cfg.Self.Name, Reason: reason}
	}
	return failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%s refused job %s: %s", p.cfg.Self.Name, jobID, reason))
}

// admit decides a verified job by the site's policy, for who (the
// submitter, with the role the site's authentication gave them, if it
// authenticates), and joins it.
func (p *Participant) admit(ctx actor.Context, m *hearthv1.JoinJob, v *job.Verified, from bridge.Origin, received string, who pki.Identity, dry bool) any {
	refuse := func(reason string) any { return p.refuseJob(m.JobId, from, received, reason, dry) }
	if allowed, reason := p.cfg.Policy.Allow("submit_job", who, nil); !allowed {
		return refuse("site policy: " + reason)
	}
	if err := p.checkComponents(v, who, m.Job.GetCode()); err != nil {
		return refuse(err.Error())
	}
	if err := p.checkResources(v.Manifest, m.JobId); err != nil {
		return refuse(err.Error())
	}
	if err := p.checkAggregation(v.Manifest); err != nil {
		return refuse(err.Error())
	}
	if v.Manifest.Attested() && p.cfg.Attestation == nil {
		return refuse("attestation: this site has no attestation policy (local/attestation.json), so it accepts no aggregation host")
	}
	if len(p.cfg.Checkers) > 0 { // the site's checker plugins see the whole job first, off the actor
		return p.runCheckers(ctx, m, v, who, from, received, dry, func() any { return p.admitChecked(ctx, m, v, from, received, who, dry) })
	}
	return p.admitChecked(ctx, m, v, from, received, who, dry)
}

// admitChecked admits a job that passed the site's policy and components
// checks: its data loaded, its privacy scope set up, joined (or, dry, said
// it would be).
func (p *Participant) admitChecked(ctx actor.Context, m *hearthv1.JoinJob, v *job.Verified, from bridge.Origin, received string, who pki.Identity, dry bool) any {
	refuse := func(reason string) any { return p.refuseJob(m.JobId, from, received, reason, dry) }
	now := p.cfg.Now()
	if err := p.checkResources(v.Manifest, m.JobId); err != nil { // again: another job may have taken them while checkers ran
		return refuse(err.Error())
	}
	var err error
	j := &joined{id: m.JobId, manifest: v.Manifest, spec: v.Manifest.Trainer.Spec(), nonce: v.Nonce, hosts: map[string]*attestedHost{}}
	if j.train, err = p.load(v.Manifest.Dataset, "train"); err != nil {
		return refuse(err.Error())
	}
	if v.Manifest.Evaluation.Validation {
		if j.val, err = p.load(v.Manifest.Dataset, "val"); err != nil {
			return refuse(err.Error())
		}
	}
	if v.Manifest.Evaluation.Test {
		if j.test, err = p.load(v.Manifest.Dataset, "test"); err != nil {
			return refuse(err.Error())
		}
	}
	if err := p.setupScope(j); err != nil {
		return refuse(err.Error())
	}
	if err := p.setupPrivacy(j); err != nil {
		return refuse(err.Error())
	}
	if err := p.restoreSpend(j); err != nil {
		return refuse(err.Error())
	}
	if d := v.Manifest.Data; d != nil && (j.train.Features != d.Features || j.train.Classes != d.Classes) {
		return refuse(fmt.Sprintf("local data has %d features and %d classes; the job's manifest says %d and %d",
			j.train.Features, j.train.Classes, d.Features, d.Classes))
	}
	if dry {
		p.audit(auditor.Event{Action: "preflight.accepted", Peer: from.Sender.Name, PeerEvent: received,
			Detail: map[string]string{"submitter": v.Submitter.Name, "role": string(who.Role), "dataset": v.Manifest.Dataset}})
		return &hearthv1.PreflightAnswer{Site: p.cfg.Self.Name, Accepted: true, Reason: "would join", Role: string(who.Role),
			TrainSamples: int64(j.train.Rows()), Gpus: int64(p.cfg.Resources.GPUs)}
	}
	if err := p.cfg.Ledger.Record(v.Nonce, m.JobId, string(who.Role), now, v.NotAfter); err != nil {
		return refuse(err.Error())
	}
	out := &hearthv1.JobJoined{JobId: m.JobId, TrainSamples: int64(j.train.Rows()),
		Features: int64(j.train.Features), Classes: int64(j.train.Classes), ValSamples: rows(j.val), TestSamples: rows(j.test)}
	enter := func(j *joined, out *hearthv1.JobJoined) any { return p.enter(ctx, m, v, j, out, from, received) }
	if v.Manifest.Trainer.Custom() { // its trainer starts first, off the actor
		return p.joinWithCode(ctx, m, j, out, enter, from, received)
	}
	return enter(j, out)
}

// enter joins a job this site admitted, with out its answer to the
// server: the job's swarm or HE keys made, the answer past the Outgoing
// hook, a job joined before (resumed) replaced.
func (p *Participant) enter(ctx actor.Context, m *hearthv1.JoinJob, v *job.Verified, j *joined, out *hearthv1.JobJoined, from bridge.Origin, received string) any {
	refuse := func(reason string) any { return p.refuseJob(m.JobId, from, received, reason, false) }
	var err error
	if v.Manifest.Workflow == job.WorkflowSwarm {
		if j.swarm, err = p.newSwarmJob(m.JobId, v.Nonce); err != nil {
			return refuse(err.Error())
		}
		j.swarm.roundTimeout = v.Manifest.RoundTimeout
		out.SealingKey = j.swarm.key
	}
	if v.Manifest.HE != nil {
		if j.he, err = p.newHEJob(m.JobId, v.Nonce, int64(j.train.Rows())); err != nil {
			return refuse(err.Error())
		}
		out.SealingKey = j.he.key
	}
	if err := p.outgoing(v.Manifest, nil, out); err != nil {
		return refuse(err.Error())
	}
	if old := p.jobs[m.JobId]; old != nil { // re-joined (a resumed job): its round count starts again
		if j.privacy != nil && old.privacy != nil {
			j.privacy.last = old.privacy.last // a round released before may be asked again
		}
		old.cancel()
		p.leaveSwarm(ctx, old)
		p.closeCode(old)
		old.spare.Close()
		old.updates.Close()
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	if j.swarm != nil { // who may reach this site for the job until its first task says
		if v.Manifest.Attested() {
			p.peers.setHosts(m.JobId, v.Manifest.Placement.Hosts)
		}
		if v.Manifest.Sites[0] == job.AllSites {
			p.peers.setAny(m.JobId)
		} else {
			p.peers.set(m.JobId, v.Manifest.Sites)
		}
	}
	p.jobs[m.JobId] = j
	if r := v.Manifest.Resources; r != nil && r.GPUs > 0 {
		p.gpus[m.JobId] = r.GPUs // until the job ends here (LeaveJob)
	}
	id := p.audit(auditor.Event{Action: "job.joined", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: received,
		Detail: map[string]string{"submitter": v.Submitter.Name, "dataset": v.Manifest.Dataset, "nonce": v.Nonce,
			"train_samples": fmt.Sprint(j.train.Rows()), "val_samples": fmt.Sprint(rows(j.val)), "test_samples": fmt.Sprint(rows(j.test))}})
	p.cfg.Log.Info("job joined", "job", m.JobId, "name", v.Manifest.Name, "submitter", v.Submitter.Name, "samples", j.train.Rows())
	out.AuditEvent = id
	return out
}

// rows counts a split's samples, 0 for none.
func rows(s *dataset.Set) int64 {
	if s == nil {
		return 0
	}
	return int64(s.Rows())
}

func deployedHere(sites []string, self string) bool {
	for _, s := range sites {
		if s == job.AllSites || s == self {
			return true
		}
	}
	return false
}

// load reads one split of the site's local copy of a dataset.
func (p *Participant) load(name, split string) (*dataset.Set, error) {
	if p.cfg.DataDir == "" {
		return nil, errors.New("this site's kit names no data_dir")
	}
	path := filepath.Join(p.cfg.DataDir, name, split+".bin")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("local data for %s: %w", name, err)
	}
	defer f.Close()
	s, err := dataset.Read(f)
	if err != nil {
		return nil, fmt.Errorf("local data %s: %w", path, err)
	}
	return s, nil
}

// train evaluates the global model on local validation data and trains
// from it, off the actor's goroutine so that other jobs go on meanwhile.
func (p *Participant) train(ctx actor.Context, m *hearthv1.TrainTask) {
	from, ok := p.fromServer(ctx)
	if !ok {
		return
	}
	received := p.audit(auditor.Event{Action: "task.received", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: m.AuditEvent})
	j := p.jobs[m.JobId]
	if j == nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site has not joined job "+m.JobId))
		return
	}
	var err error
	if n := p.tasks[m.JobId]; n >= j.manifest.Rounds+maxResumes {
		err = fmt.Errorf("%d training tasks for this job already: its %d rounds and %d resumed", n, j.manifest.Rounds, maxResumes)
	} else if err = j.beginRound(m.Round); err == nil {
		p.tasks[m.JobId]++
	}
	if err != nil {
		p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: received,
			Detail: map[string]string{"reason": err.Error()}})
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
		return
	}
	if m.GlobalStream != nil {
		if j.code != nil { // its models travel inline (jobcode.go)
			j.endRound()
			p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: received,
				Detail: map[string]string{"reason": "a streamed model in a job with its own trainer"}})
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "a job with its own trainer trains on models sent inline only"))
			return
		}
		if j.he != nil { // a streamed update would leave in the clear
			j.endRound()
			p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: received,
				Detail: map[string]string{"reason": "a streamed model in a job under homomorphic encryption"}})
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "a job under homomorphic encryption trains on models sent inline only"))
			return
		}
		p.trainStreamed(ctx, m, j, from, received)
		return
	}
	global, err := job.FromWire(m.Global)
	if err != nil {
		j.endRound()
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, err.Error()))
		return
	}
	var released []string // an HE job's: the round and global model its encrypted update is released from
	if j.he != nil {
		if err = p.checkHEGlobal(j, m.Round, global, m.HeProof); err == nil {
			released, err = p.checkHETraining(j, m.Round, global, global)
		}
		if err != nil {
			j.endRound()
			p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: received,
				Detail: map[string]string{"reason": err.Error()}})
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
			return
		}
	}
	if res := j.privacy.resend(m.Round, global); res != nil { // the same round from the same model again: no new ε
		j.endRound()
		p.audit(auditor.Event{Action: "privacy.resent", JobID: m.JobId, Round: m.Round, PeerEvent: received,
			Detail: map[string]string{"why": "the round was released before from the same global model; sent again, spending nothing"}})
		res.AuditEvent = p.audit(auditor.Event{Action: "result.sent", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: received})
		ctx.Respond(res)
		return
	}
	reply, system := ctx.Sender(), ctx.ActorSystem()
	go func() {
		defer j.endRound()
		start := time.Now()
		res := &hearthv1.TrainResult{JobId: m.JobId, Round: m.Round}
		fail := func(code hearthv1.FailureCode, reason string) { // audited here, answered to the server
			p.audit(auditor.Event{Action: "task.failed", JobID: m.JobId, Round: m.Round, PeerEvent: received, Detail: map[string]string{"reason": reason}})
			system.Root.Send(reply, failure(code, reason))
		}
		asReceived := global
		if j.code != nil { // the job's own code sees only what the site's incoming filters let in, its validation too
			if global, err = p.filterIncoming(j, m.JobId, m.Round, global); err != nil {
				system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error()))
				return
			}
		}
		if j.val != nil {
			mt, err := p.evaluateOn(j, global, codetrainer.Validation)
			if err != nil {
				fail(evaluationFailure(j), "validation: "+err.Error())
				return
			}
			res.Validation = metrics(mt)
		}
		spec := j.spec
		spec.Seed += m.Round // a different local order each round
		if j.code == nil {
			if global, err = p.filterIncoming(j, m.JobId, m.Round, global); err != nil {
				system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error()))
				return
			}
		}
		if j.he != nil && global != asReceived { // the model trained on, as the site's incoming filters made it
			if released, err = p.checkHETraining(j, m.Round, asReceived, global); err != nil {
				p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Round: m.Round, PeerEvent: received, Detail: map[string]string{"reason": err.Error()}})
				system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
				return
			}
		}
		update, r, eps, err := p.trainLocally(j, m.Round, spec, global)
		if errors.Is(err, errBudget) {
			system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
			return
		}
		if err != nil {
			fail(hearthv1.FailureCode_FAILURE_CODE_TRAINING_FAILED, err.Error())
			return
		}
		var excluded []string
		if update, excluded, err = p.filterUpdateExcluding(j, m.JobId, m.Round, global, update); err != nil {
			system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error()))
			return
		}
		eps = max(eps, epsilonOf(j)) // DP-SGD's and the filters'
		res.TrainMicros = time.Since(start).Microseconds()
		res.Samples, res.TrainLoss, res.Epsilon, res.Excluded = int64(r.Samples), r.Loss, eps, excluded
		if j.he != nil { // encrypted: the server never sees the update itself
			if res.Encrypted, err = p.encryptUpdate(j, m.Round, update); err == nil {
				for _, k := range released { // before it leaves: never again in this round, nor from this model
					if err = p.cfg.Ledger.RecordRelease(j.nonce, m.JobId, k); err != nil {
						break
					}
				}
			}
			if err != nil {
				p.audit(auditor.Event{Action: "task.failed", JobID: m.JobId, Round: m.Round, PeerEvent: received, Detail: map[string]string{"reason": "encrypting the update: " + err.Error()}})
				system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_TRAINING_FAILED, "encrypting the update: "+err.Error()))
				return
			}
		} else {
			res.Update = job.ToWire(update)
		}
		if err := p.outgoing(j.manifest, global, res); err != nil {
			system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error()))
			return
		}
		executed := p.audit(auditor.Event{Action: "task.executed", JobID: m.JobId, Round: m.Round, PeerEvent: received,
			Detail: map[string]string{"samples": fmt.Sprint(r.Samples), "loss": fmt.Sprintf("%.4f", r.Loss)}})
		j.privacy.released(m.Round, global, res)
		res.AuditEvent = p.audit(auditor.Event{Action: "result.sent", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: executed})
		system.Root.Send(reply, res)
	}()
}

func (p *Participant) evaluate(ctx actor.Context, m *hearthv1.EvaluateTask) {
	from, ok := p.fromServer(ctx)
	if !ok {
		return
	}
	received := p.audit(auditor.Event{Action: "eval.received", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: m.AuditEvent})
	j := p.jobs[m.JobId]
	switch {
	case j == nil:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site has not joined job "+m.JobId))
		return
	case j.test == nil:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NO_TEST_DATA, "the job asked for no test evaluation"))
		return
	}
	if err := j.beginEvaluation(); err != nil {
		p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: received,
			Detail: map[string]string{"reason": err.Error()}})
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
		return
	}
	if m.ModelStream != nil {
		switch {
		case j.he != nil:
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "a job under homomorphic encryption evaluates a model sent inline only, with its proof"))
		case j.code != nil:
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "a job with its own trainer evaluates a model sent inline only"))
		default:
			p.evaluateStreamed(ctx, m, j, from, received)
		}
		return
	}
	mdl, err := job.FromWire(m.Model)
	if err == nil && j.he != nil { // the final model must be the last round's decrypted mean
		if err = p.checkHEGlobal(j, int64(j.manifest.Rounds)+1, mdl, m.HeProof); err != nil {
			p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: received, Detail: map[string]string{"reason": err.Error()}})
		}
	}
	if err == nil {
		mdl, err = p.filterIncoming(j, m.JobId, 0, mdl) // the scope's filters on what enters, as for training
	}
	if err != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, err.Error()))
		return
	}
	if j.code != nil { // the job's own code takes its time off the actor, as its training does
		reply, system := ctx.Sender(), ctx.ActorSystem()
		go func() { system.Root.Send(reply, p.testResult(j, m.JobId, mdl, from.Sender.Name, received)) }()
		return
	}
	ctx.Respond(p.testResult(j, m.JobId, mdl, from.Sender.Name, received))
}

// testResult scores mdl on the job's test data and makes the site's
// answer: the metrics, past the site's outgoing filters, audited as sent to
// server (the audit event received answers); or the failure.
func (p *Participant) testResult(j *joined, jobID string, mdl *model.Model, server, received string) proto.Message {
	mt, err := p.evaluateOn(j, mdl, codetrainer.Test)
	if err != nil {
		return failure(evaluationFailure(j), err.Error())
	}
	res := &hearthv1.EvaluateResult{JobId: jobID, Test: metrics(mt)}
	if err := p.outgoing(j.manifest, nil, res); err != nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error())
	}
	res.AuditEvent = p.audit(auditor.Event{Action: "result.sent", JobID: jobID, Peer: server, PeerEvent: received,
		Detail: map[string]string{"test_accuracy": fmt.Sprintf("%.4f", mt.Accuracy)}})
	return res
}

// outgoing runs the Outgoing hook, if any.
func (p *Participant) outgoing(m *job.Manifest, global *model.Model, answer proto.Message) error {
	if p.cfg.Outgoing == nil {
		return nil
	}
	return p.cfg.Outgoing(m, global, answer)
}

// audit appends an event and returns its id; a failure to audit is logged
// loudly (the event is not silently lost from the process log).
func (p *Participant) audit(e auditor.Event) string {
	r, err := p.cfg.Audit.Append(e)
	if err != nil {
		p.cfg.Log.Error("audit append failed", "action", e.Action, "job", e.JobID, "err", err)
		return ""
	}
	return r.ID
}

// evaluationFailure is the kind of failure an evaluation's error is: a
// model the built-in trainer cannot score is a bad model; a job's own
// trainer failing is its own failure.
func evaluationFailure(j *joined) hearthv1.FailureCode {
	if j.code != nil {
		return hearthv1.FailureCode_FAILURE_CODE_TRAINING_FAILED
	}
	return hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL
}

func metrics(m trainer.Metrics) *hearthv1.Metrics {
	return &hearthv1.Metrics{Samples: int64(m.Samples), Loss: m.Loss, Accuracy: m.Accuracy}
}

func failure(code hearthv1.FailureCode, msg string) *hearthv1.Failure {
	return &hearthv1.Failure{Kind: code, Message: msg}
}
