package participant

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A swarm job at a site. The server's SwarmTask names the round's attempt
// and its aggregator; the site checks the aggregator against the job's
// rotation (actors/swarm) and every sealing key against the PKI, then
//
//   - as a member, trains from the basis model it holds and sends the
//     update sealed to the aggregator, answering the server with its
//     figures once the aggregator confirmed it;
//   - as the round's aggregator, folds the members' updates (its own
//     included) in an aggregator actor of its own, sends the new global
//     model sealed to every holder, and answers the server with what it
//     aggregated and who confirmed the model;
//   - as a holder catching up, waits for the new model.
//
// Weights never reach the server. A site hears another site only while
// both are in the swarm job (Admit), takes an update only as the round's
// aggregator and a model only from it, and keeps the newest global model in
// its state folder: the job's final model stays at the sites.

// swarmJob is a joined swarm job's state at this site.
type swarmJob struct {
	nonce  []byte
	key    *hearthv1.SealingKey // this site's sealing key, bound for the job
	models map[roundKey]*model.Model
	task   *hearthv1.SwarmTask // the newest attempt's task
	at     roundKey            // and its round and attempt
	keys   map[string]*ecdh.PublicKey
	agg    *aggregation // while this site aggregates the newest attempt
	local  *model.Model // this site's newest update
	early  []earlyArrival
	// wait is the server's request for the newest attempt, answered once
	// this site holds the attempt's new model (or cannot).
	wait *modelWait
	// verified caches the sealing-key bindings checked for the job.
	verified map[string]verifiedKey
	layout   *model.Model // the job's model layout, for checking received models
	keeper   *modelKeeper // writes the accepted global model to the state folder
	kept     roundKey     // the round and attempt of the model kept there
	// pullingModel: the newest attempt's model is streaming in.
	pullingModel bool
	// attemptCtx bounds the newest attempt's training and streams: a newer
	// task, the round timeout or leaving the job ends them.
	attemptCtx  context.Context
	stopAttempt context.CancelFunc
	// eligible is the rotation's sites, pinned by the job's first task when
	// the signed job does not name them.
	eligible     []string
	roundTimeout time.Duration
	// cross is the cross-site evaluation in progress; locals are other
	// sites' local models that came before it.
	cross  *crossEval
	locals map[string]*model.Model
}

// modelWait is a holder's answer to the server, held until the new model
// comes: the server counts the holders that confirm the aggregator's model.
type modelWait struct {
	at    roundKey
	reply *actor.PID
	res   *hearthv1.SwarmTrained
	// trained: the member's own training is done (res has its figures);
	// got: the new model came.
	trained, got bool
	sealMicros   int64 // decrypting the streamed new model
}

// roundKey is one attempt at one round; round 0 is the initial model.
type roundKey struct{ round, attempt int64 }

func (k roundKey) after(o roundKey) bool {
	return k.round > o.round || k.round == o.round && k.attempt > o.attempt
}

func (k roundKey) String() string { return fmt.Sprintf("round %d attempt %d", k.round, k.attempt) }

func keyOf(round, attempt int64) roundKey { return roundKey{round, attempt} }

// aggregation is an attempt this site aggregates.
type aggregation struct {
	at      roundKey
	task    *hearthv1.SwarmTask
	pid     *actor.PID             // the aggregator actor: the only holder of the updates
	reply   *actor.PID             // the server's request, answered when the round is done
	expect  map[string]bool        // members whose update is awaited
	folded  map[string]bool        // members whose update was folded
	refused map[string]string      // and those refused here, with the reason
	pulling map[string]bool        // members whose streamed update is being pulled
	own     *hearthv1.SwarmTrained // this site's own figures, once trained
	started time.Time
	closing bool
	result  *hearthv1.SwarmAggregated
	// sealMicros: time spent decrypting streamed updates and encrypting
	// the streamed model.
	sealMicros int64
}

// Process-local messages of the swarm role.
type (
	// trainedLocal is a member's training, done off the actor.
	trainedLocal struct {
		jobID  string
		at     roundKey
		update *model.Model
		res    *hearthv1.SwarmTrained
		reply  *actor.PID
		err    error
	}
	// closeAggregation ends an aggregation's wait for updates.
	closeAggregation struct {
		jobID string
		at    roundKey
	}
	// modelOverdue ends a holder's wait for the new model.
	modelOverdue struct {
		jobID string
		at    roundKey
	}
)

// swarmPeers is who may address this site in which swarm job: the members
// and holders of the job's newest attempt. The bridge asks Admit from its
// own goroutines, so it has its own lock.
type swarmPeers struct {
	mu   sync.Mutex
	jobs map[string]map[string]bool
}

func (s *swarmPeers) set(jobID string, sites []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = map[string]map[string]bool{}
	}
	m := map[string]bool{}
	for _, site := range sites {
		m[site] = true
	}
	s.jobs[jobID] = m
}

// setAny admits every site of the project for jobID until the job's first
// task names its members: a job on every site lists no sites, and another
// site's first update may overtake that task. What is admitted then only
// waits for the task (early), which decides on it.
func (s *swarmPeers) setAny(jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = map[string]map[string]bool{}
	}
	s.jobs[jobID] = map[string]bool{anySite: true}
}

// anySite in a job's peers admits every site (setAny).
const anySite = "@any"

func (s *swarmPeers) drop(jobID string) {
	s.mu.Lock()
	delete(s.jobs, jobID)
	s.mu.Unlock()
}

// Admit is bridge.Config.Admit for a site: another site is heard only in
// a swarm job this site has joined, and only while the server's newest task
// for it lists that site as a member or holder. Every other envelope is
// refused by the bridge (audited as a refusal) before its body is opened.
func (p *Participant) Admit(sender pki.Identity, messageType, jobID string) error {
	p.peers.mu.Lock()
	defer p.peers.mu.Unlock()
	if sender.Kind != pki.KindSite {
		return fmt.Errorf("%s is a %s, not a site", sender.Name, sender.Kind)
	}
	if !swarmTypes[messageType] {
		return fmt.Errorf("%s is not a swarm message", envelope.Clip(messageType, 64))
	}
	if peers := p.peers.jobs[jobID]; !peers[sender.Name] && !peers[anySite] {
		return fmt.Errorf("%s is in no swarm job %q with this site", sender.Name, envelope.Clip(jobID, 64))
	}
	return nil
}

// swarmTypes are what one site may send another (Admit).
var swarmTypes = map[string]bool{
	string(proto.MessageName(&hearthv1.SwarmUpdate{})): true, string(proto.MessageName(&hearthv1.SwarmModel{})): true,
	string(proto.MessageName(&hearthv1.SwarmLocal{})): true,
}

// maxSwarmSites bounds a SwarmTask's lists before anything in it is checked.
const maxSwarmSites = 1024

// newSwarmJob makes a joined swarm job's state: a sealing key binding.
func (p *Participant) newSwarmJob(jobID, nonceHex string) (*swarmJob, error) {
	if p.cfg.Signer == nil || p.cfg.SealKey == nil || p.cfg.Bridge == nil {
		return nil, errors.New("this site is not set up for swarm learning (no sealing key)")
	}
	nonce, err := hex.DecodeString(nonceHex)
	if err != nil {
		return nil, fmt.Errorf("job nonce: %w", err)
	}
	key, err := swarm.BindKey(p.cfg.Signer, jobID, p.cfg.SealKey)
	if err != nil {
		return nil, err
	}
	return &swarmJob{nonce: nonce, key: key, models: map[roundKey]*model.Model{}, verified: map[string]verifiedKey{}}, nil
}

// swarmTask takes the server's task for one attempt at a round.
func (p *Participant) swarmTask(ctx actor.Context, m *hearthv1.SwarmTask) {
	from, ok := p.fromServer(ctx)
	if !ok {
		return
	}
	received := p.audit(auditor.Event{Action: "task.received", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: m.AuditEvent,
		Detail: map[string]string{"attempt": fmt.Sprint(m.Attempt), "aggregator": envelope.Clip(m.Aggregator, 64)}})
	j := p.jobs[m.JobId]
	refuse := func(code hearthv1.FailureCode, reason string) {
		p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: received,
			Detail: map[string]string{"reason": reason}})
		p.cfg.Log.Warn("swarm task refused", "job", m.JobId, "round", m.Round, "attempt", m.Attempt, "reason", reason)
		ctx.Respond(failure(code, reason))
	}
	if j == nil || j.swarm == nil {
		refuse(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site has joined no swarm job "+envelope.Clip(m.JobId, 64))
		return
	}
	at := keyOf(m.Round, m.Attempt)
	if err := p.checkSwarmTask(j, m); err != nil {
		refuse(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error())
		return
	}
	sj := j.swarm
	keys := map[string]*ecdh.PublicKey{}
	for _, k := range m.Keys {
		pub, err := p.verifyKey(sj, k, m.JobId)
		if err != nil {
			refuse(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error())
			return
		}
		keys[k.Site] = pub
	}
	for _, s := range append(append(slices.Clone(m.Members), m.Holders...), m.Aggregator) {
		if keys[s] == nil { // the aggregator's too: nothing leaves this site unsealed
			refuse(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "no sealing key for "+envelope.Clip(s, 64))
			return
		}
	}
	self := p.cfg.Self.Name
	member, aggregates := slices.Contains(m.Members, self), m.Aggregator == self
	if member {
		limit := j.manifest.Rounds*len(sj.eligible) + maxResumes
		if n := p.tasks[m.JobId]; n >= limit {
			refuse(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%d swarm trainings for this job already, its bound (rounds times eligible aggregators, plus %d)", n, maxResumes))
			return
		}
		p.tasks[m.JobId]++
	}
	var basis *model.Model
	if member || aggregates {
		var err error
		if basis, err = p.basis(j, m); err != nil {
			refuse(hearthv1.FailureCode_FAILURE_CODE_NO_BASIS, err.Error())
			return
		}
	}
	// The task names the basis: the server accepted that model, kept now.
	p.keepModel(j, keyOf(m.BasisRound, m.BasisAttempt), false)
	// The task is taken: an older attempt's aggregation, answer, training
	// and streams end here.
	p.endAttempt(ctx, sj, "superseded by "+at.String())
	sj.task, sj.at, sj.keys = m, at, keys
	sj.attemptCtx, sj.stopAttempt = context.WithTimeout(j.ctx, j.manifest.RoundTimeout)
	p.peers.set(m.JobId, append(slices.Clone(m.Members), m.Holders...))
	if member { // training starts first: the rest is set up while it runs
		p.startTraining(ctx, j, m, basis)
	}
	if aggregates {
		p.beginAggregation(ctx, j, m, basis)
	}
	reply := ctx.Sender()
	if !aggregates {
		// The server hears from this site once it holds the new model: with
		// the model's digest, and a member's figures once it trained.
		sj.wait = &modelWait{at: at, reply: reply, trained: !member,
			res: &hearthv1.SwarmTrained{JobId: m.JobId, Round: m.Round, Attempt: m.Attempt, AuditEvent: received}}
		self, system, jobID := ctx.Self(), ctx.ActorSystem(), m.JobId
		time.AfterFunc(j.manifest.RoundTimeout*3/4, func() { system.Root.Send(self, &modelOverdue{jobID: jobID, at: at}) })
	}
	p.takeEarly(ctx, sj)
	if member && p.cfg.OnSwarmTask != nil && !aggregates { // the hostile build's compromised site acts here
		p.cfg.OnSwarmTask(j.manifest, m, basis, func(to string, msg proto.Message) {
			if k := keys[to]; k != nil {
				ctx.Send(p.cfg.Bridge, &bridge.Send{To: to, Msg: msg, JobID: m.JobId, Round: m.Round, SealTo: k})
			}
		})
	}
}

// startTraining trains a member's update from basis off the actor; the
// result comes back as *trainedLocal.
func (p *Participant) startTraining(ctx actor.Context, j *joined, m *hearthv1.SwarmTask, basis *model.Model) {
	at, reply := keyOf(m.Round, m.Attempt), ctx.Sender()
	self2, system := ctx.Self(), ctx.ActorSystem()
	jobCtx, spec, train, val := j.swarm.attemptCtx, j.spec, j.train, j.val
	go func() {
		out := &trainedLocal{jobID: m.JobId, at: at, reply: reply}
		defer func() { system.Root.Send(self2, out) }()
		start := time.Now()
		res := &hearthv1.SwarmTrained{JobId: m.JobId, Round: m.Round, Attempt: m.Attempt, Trained: true}
		if val != nil {
			mt, err := trainer.Evaluate(spec, basis, val)
			if err != nil {
				out.err = fmt.Errorf("%w: %v", errBadModel, err)
				return
			}
			res.Validation = metrics(mt)
		}
		update, r := basis, trainer.Result{Samples: train.Rows()} // a noop update is the basis itself: no copy (read only from here on)
		if spec.Kind != trainer.KindNoop {
			spec.Seed += m.Round // a different local order each round
			var err error
			if update, r, err = trainer.Train(jobCtx, spec, basis, train); err != nil {
				out.err = fmt.Errorf("training: %w", err)
				return
			}
		}
		res.TrainMicros = time.Since(start).Microseconds()
		res.Samples, res.TrainLoss = int64(r.Samples), r.Loss
		out.update, out.res = update, res
	}()
}

// verifyKey checks a sealing-key binding, once per binding and job.
func (p *Participant) verifyKey(sj *swarmJob, k *hearthv1.SealingKey, jobID string) (*ecdh.PublicKey, error) {
	raw, err := proto.Marshal(k)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	now := p.cfg.Now()
	if v, ok := sj.verified[k.GetSite()]; ok && v.sum == sum && now.Before(v.notAfter) && v.crl == p.cfg.Trust.CRLNumber() {
		return ecdh.X25519().NewPublicKey(k.PublicKey)
	}
	pub, err := swarm.VerifyKey(k, p.cfg.Trust, jobID, k.GetSite(), now)
	if err != nil {
		return nil, err
	}
	if len(sj.verified) < 2*maxSwarmSites {
		cert, _ := x509.ParseCertificate(k.Certificate) // it parsed in VerifyKey
		sj.verified[k.Site] = verifiedKey{sum: sum, notAfter: cert.NotAfter, crl: p.cfg.Trust.CRLNumber()}
	}
	return pub, nil
}

// verifiedKey is a binding checked once: valid until its certificate
// expires or a newer revocation list comes.
type verifiedKey struct {
	sum      [32]byte
	notAfter time.Time
	crl      int64
}

// checkSwarmTask checks a task's round, attempt, aggregator and lists
// against the signed job and what this site took before.
func (p *Participant) checkSwarmTask(j *joined, m *hearthv1.SwarmTask) error {
	sj := j.swarm
	at := keyOf(m.Round, m.Attempt)
	switch {
	case m.Round < 1 || m.Round > int64(j.manifest.Rounds):
		return fmt.Errorf("round %d is not in the job's 1..%d", m.Round, j.manifest.Rounds)
	case sj.task != nil && !at.after(sj.at):
		return fmt.Errorf("%s comes after %s: rounds and attempts only move forward", at, sj.at)
	case len(m.Members) > maxSwarmSites || len(m.Holders) > maxSwarmSites || len(m.Eligible) > maxSwarmSites || len(m.Keys) > 2*maxSwarmSites:
		return fmt.Errorf("more than %d sites in a task", maxSwarmSites)
	case !slices.Contains(m.Members, p.cfg.Self.Name) && !slices.Contains(m.Holders, p.cfg.Self.Name) && m.Aggregator != p.cfg.Self.Name:
		return errors.New("this site is neither a member nor a holder of the round")
	case m.BasisRound < 0 || m.BasisRound >= m.Round:
		return fmt.Errorf("basis round %d for round %d", m.BasisRound, m.Round)
	}
	for _, s := range append(append(slices.Clone(m.Members), m.Holders...), m.Aggregator) {
		if !inJob(j.manifest, s) {
			return fmt.Errorf("%s is not one of the signed job's sites", envelope.Clip(s, 64))
		}
	}
	if !slices.Contains(m.Holders, m.Aggregator) {
		return fmt.Errorf("the aggregator %s is not among the round's holders", envelope.Clip(m.Aggregator, 64))
	}
	eligible, err := eligibleFor(j.manifest, m.Eligible)
	if err != nil {
		return err
	}
	if sj.eligible == nil { // pinned: a compromised server cannot shrink it later
		sj.eligible = slices.Clone(eligible)
	} else if a, b := slices.Sorted(slices.Values(sj.eligible)), slices.Sorted(slices.Values(eligible)); !slices.Equal(a, b) {
		return errors.New("the task's eligible aggregators differ from the job's first task's")
	}
	rotation := swarm.NewRotation(sj.nonce, sj.eligible)
	if err := rotation.Check(m.Round, m.Attempt, m.Aggregator); err != nil {
		return fmt.Errorf("the task's aggregator: %w", err)
	}
	// An honest server skips an aggregator only when it is down or lacks
	// the global model, and then it is no member of the round either.
	for a := int64(0); a < m.Attempt; a++ {
		if skipped := rotation.Aggregator(m.Round, a); slices.Contains(m.Members, skipped) {
			return fmt.Errorf("attempt %d skips %s, which the task lists as a member", m.Attempt, skipped)
		}
	}
	return nil
}

// inJob says whether site is one of the signed job's sites.
func inJob(m *job.Manifest, site string) bool {
	return m.Sites[0] == job.AllSites || slices.Contains(m.Sites, site)
}

// eligibleFor is the rotation's sites: the manifest's aggregators, or its
// sites; only for a job on every site that names no aggregators does the
// server's list (the joined sites) stand, and then it must not be empty.
func eligibleFor(m *job.Manifest, fromServer []string) ([]string, error) {
	want := m.Aggregators
	if len(want) == 0 && m.Sites[0] != job.AllSites {
		want = m.Sites
	}
	if len(want) == 0 {
		if len(fromServer) == 0 {
			return nil, errors.New("no eligible aggregators listed")
		}
		return fromServer, nil
	}
	a, b := slices.Clone(want), slices.Clone(fromServer)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return nil, fmt.Errorf("the task lists %d eligible aggregators, the signed job %d others", len(fromServer), len(want))
	}
	return want, nil
}

// basis is the global model a task trains from: one this site holds, or
// the initial model, made here from the job's trainer and data shape.
func (p *Participant) basis(j *joined, m *hearthv1.SwarmTask) (*model.Model, error) {
	at := keyOf(m.BasisRound, m.BasisAttempt)
	if m.BasisRound == 0 {
		if m.Features != int64(j.train.Features) || m.Classes != int64(j.train.Classes) {
			return nil, fmt.Errorf("the task's data shape (%d features, %d classes) is not this site's (%d, %d)",
				m.Features, m.Classes, j.train.Features, j.train.Classes)
		}
		if mdl := j.swarm.models[at]; mdl != nil {
			return mdl, nil
		}
		mdl, err := trainer.Init(j.spec, j.train.Features, j.train.Classes)
		if err != nil {
			return nil, fmt.Errorf("initial model: %w", err)
		}
		j.swarm.models[at] = mdl
		return mdl, nil
	}
	if mdl := j.swarm.models[at]; mdl != nil {
		return mdl, nil
	}
	return nil, fmt.Errorf("this site does not hold the global model of %s", at)
}

// trainedLocal sends a member's update on: to its own aggregation, or
// sealed to the round's aggregator, then answers the server.
func (p *Participant) trainedLocal(ctx actor.Context, t *trainedLocal) {
	j := p.jobs[t.jobID]
	if j == nil || j.swarm == nil || j.swarm.at != t.at {
		return // the job ended or a newer attempt started: the server no longer waits
	}
	sj := j.swarm
	if t.err != nil {
		p.audit(auditor.Event{Action: "task.failed", JobID: t.jobID, Round: t.at.round, Detail: map[string]string{"reason": t.err.Error()}})
		if a := sj.agg; a != nil && a.at == t.at { // the aggregator's own training: the others' updates still count
			delete(a.expect, p.cfg.Self.Name)
			a.refused[p.cfg.Self.Name] = envelope.Clip(t.err.Error(), 256)
			p.maybeClose(ctx, j)
			return
		}
		ctx.Send(t.reply, failure(hearthv1.FailureCode_FAILURE_CODE_TRAINING_FAILED, t.err.Error()))
		return
	}
	sj.local = t.update
	executed := p.audit(auditor.Event{Action: "task.executed", JobID: t.jobID, Round: t.at.round,
		Detail: map[string]string{"attempt": fmt.Sprint(t.at.attempt), "samples": fmt.Sprint(t.res.Samples), "loss": fmt.Sprintf("%.4f", t.res.TrainLoss)}})
	upd := &hearthv1.SwarmUpdate{JobId: t.jobID, Round: t.at.round, Attempt: t.at.attempt, Samples: t.res.Samples}
	if t.update.Bytes() <= job.InlineLimit {
		upd.Update = job.ToWire(t.update)
	}
	if err := p.outgoing(j.manifest, nil, upd); err != nil {
		ctx.Send(t.reply, failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error()))
		return
	}
	agg := sj.task.Aggregator
	if agg == p.cfg.Self.Name {
		if a := sj.agg; a != nil && a.at == t.at {
			t.res.AuditEvent = executed
			a.own = t.res
			p.fold(ctx, j, p.cfg.Self.Name, t.update, t.res.Samples)
		}
		return
	}
	if sj.keys[agg] == nil {
		ctx.Send(t.reply, failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "no sealing key for the aggregator "+agg))
		return
	}
	var out *stream.Outgoing
	if t.update.Bytes() > job.InlineLimit { // streamed, encrypted, its key in the sealed envelope
		offered, key, spent, err := p.offerModel(sj.attemptCtx, agg, t.update)
		if err != nil {
			ctx.Send(t.reply, failure(hearthv1.FailureCode_FAILURE_CODE_STREAM_FAILED, err.Error()))
			return
		}
		if w := sj.wait; w != nil && w.at == t.at {
			w.sealMicros += spent.Microseconds()
		}
		out = offered
		upd.UpdateStream, upd.StreamKey = offered.Manifest, key
	}
	future := ctx.RequestFuture(p.cfg.Bridge, &bridge.Ask{To: agg, Msg: upd, JobID: t.jobID, Round: t.at.round,
		Timeout: j.manifest.RoundTimeout, SealTo: sj.keys[agg]}, j.manifest.RoundTimeout+time.Second)
	ctx.ReenterAfter(future, func(res any, err error) {
		if out != nil {
			out.Cancel() // pulled by now, or no use any more
		}
		r, ok := res.(*bridge.Reply)
		if err == nil && !ok {
			if f, isFailed := res.(*bridge.Failed); isFailed {
				err = f.Err
			} else {
				err = fmt.Errorf("unexpected %T", res)
			}
		}
		if err == nil {
			if got, isReceived := r.Msg.(*hearthv1.SwarmReceived); !isReceived || keyOf(got.Round, got.Attempt) != t.at || got.JobId != t.jobID {
				err = fmt.Errorf("%s answered %T for another round", agg, r.Msg)
			}
		}
		if err != nil {
			reason := fmt.Sprintf("update not delivered to %s, the aggregator of %s: %v", agg, t.at, err)
			p.audit(auditor.Event{Action: "update.undelivered", JobID: t.jobID, Round: t.at.round, Peer: agg, Detail: map[string]string{"reason": reason}})
			ctx.Send(t.reply, failure(hearthv1.FailureCode_FAILURE_CODE_AGGREGATOR_UNREACHABLE, reason))
			return
		}
		sent := p.audit(auditor.Event{Action: "update.sent", JobID: t.jobID, Round: t.at.round, Peer: agg, PeerEvent: executed,
			Detail: map[string]string{"attempt": fmt.Sprint(t.at.attempt), "sealed": "true"}})
		if w := sj.wait; w != nil && w.at == t.at {
			t.res.ModelSha256 = w.res.ModelSha256
			if !w.got {
				t.res.AuditEvent = sent
			} else {
				t.res.AuditEvent = w.res.AuditEvent
			}
			w.res, w.trained = t.res, true
			p.answerWait(ctx, sj)
		}
	})
}

// offerModel offers m to recipient as an encrypted stream, returning the
// offer, its key and the time the encryption took.
func (p *Participant) offerModel(ctx context.Context, recipient string, m *model.Model) (*stream.Outgoing, []byte, time.Duration, error) {
	if p.cfg.Streams == nil {
		return nil, nil, 0, errors.New("the model is too large for one envelope and this site streams nothing")
	}
	start := time.Now()
	data, key, err := swarm.EncryptModel(m)
	if err != nil {
		return nil, nil, 0, err
	}
	spent := time.Since(start)
	out, err := p.cfg.Streams.OfferBytes(ctx, recipient, data)
	return out, key, spent, err
}

// answerWait answers the server once the site trained (if a member) and
// holds the new model.
func (p *Participant) answerWait(ctx actor.Context, sj *swarmJob) {
	w := sj.wait
	if w == nil || !w.trained || !w.got {
		return
	}
	w.res.SealMicros = w.sealMicros
	ctx.Send(w.reply, w.res) // its audit event: the model's receipt (model.received), which names the digest
	sj.wait = nil
}

// modelOverdue answers the server's request of a holder whose new model
// did not come in time: it holds the basis still, not the round's model.
func (p *Participant) modelOverdue(ctx actor.Context, m *modelOverdue) {
	j := p.jobs[m.jobID]
	if j == nil || j.swarm == nil || j.swarm.wait == nil || j.swarm.wait.at != m.at {
		return
	}
	w := j.swarm.wait
	reason := fmt.Sprintf("no model from %s, the aggregator of %s, in time", j.swarm.task.Aggregator, m.at)
	p.audit(auditor.Event{Action: "model.overdue", JobID: m.jobID, Round: m.at.round, Peer: j.swarm.task.Aggregator, Detail: map[string]string{"reason": reason}})
	ctx.Send(w.reply, failure(hearthv1.FailureCode_FAILURE_CODE_AGGREGATOR_UNREACHABLE, reason))
	j.swarm.wait = nil
}

// beginAggregation starts this site's aggregation of an attempt.
func (p *Participant) beginAggregation(ctx actor.Context, j *joined, m *hearthv1.SwarmTask, basis *model.Model) {
	a := &aggregation{at: keyOf(m.Round, m.Attempt), task: m, reply: ctx.Sender(), expect: map[string]bool{},
		folded: map[string]bool{}, refused: map[string]string{}, pulling: map[string]bool{}, started: time.Now()}
	for _, s := range m.Members {
		a.expect[s] = true
	}
	a.pid = ctx.Spawn(aggregator.Props())
	ctx.Send(a.pid, &aggregator.Begin{Round: m.Round, Layout: basis, Rule: j.manifest.Aggregation})
	j.swarm.agg = a
	p.audit(auditor.Event{Action: "aggregation.started", JobID: m.JobId, Round: m.Round,
		Detail: map[string]string{"attempt": fmt.Sprint(m.Attempt), "members": fmt.Sprint(len(m.Members))}})
	// Updates are awaited for half the round's time: the rest is for the
	// new model to reach the holders before the server's wait ends.
	self, system, jobID, at := ctx.Self(), ctx.ActorSystem(), m.JobId, a.at
	time.AfterFunc(j.manifest.RoundTimeout/2, func() { system.Root.Send(self, &closeAggregation{jobID: jobID, at: at}) })
}

// arrived takes another site's update (as the round's aggregator) or
// model (from it): refused if its body names another job than the header
// it was admitted by, kept if it overtook the task that announces its
// attempt (early), taken now otherwise.
func (p *Participant) arrived(ctx actor.Context, jobID string, round, attempt int64, msg proto.Message) {
	o, _ := bridge.OriginOf(ctx)
	if o.JobID != jobID {
		p.refuseMismatch(ctx, o, jobID)
		return
	}
	if p.early(ctx, o, jobID, keyOf(round, attempt), msg) {
		return
	}
	switch m := msg.(type) {
	case *hearthv1.SwarmUpdate:
		p.takeUpdate(ctx, o, m, ctx.Sender())
	case *hearthv1.SwarmModel:
		p.takeModel(ctx, o, m, ctx.Sender())
	}
}

// refuseArrival refuses another site's update or model for the reason,
// audited (action) and logged, answering reply.
func (p *Participant) refuseArrival(ctx actor.Context, reply *actor.PID, o bridge.Origin, action, jobID string, round int64, reason string) {
	p.audit(auditor.Event{Action: action, JobID: jobID, Round: round, Peer: o.Sender.Name, Detail: map[string]string{"reason": reason}})
	p.cfg.Log.Warn("swarm "+action, "job", jobID, "round", round, "from", o.Sender.Name, "reason", reason)
	ctx.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason))
}

// takeUpdate takes a member's sealed update as the round's aggregator, and
// answers reply.
func (p *Participant) takeUpdate(ctx actor.Context, o bridge.Origin, m *hearthv1.SwarmUpdate, reply *actor.PID) {
	j := p.jobs[m.JobId]
	at := keyOf(m.Round, m.Attempt)
	refuse := func(reason string) { p.refuseArrival(ctx, reply, o, "update.refused", m.JobId, m.Round, reason) }
	switch {
	case !o.Sealed:
		refuse("an update must come sealed to this site's key")
		return
	case j == nil || j.swarm == nil:
		refuse("no swarm job " + envelope.Clip(m.JobId, 64) + " here")
		return
	case j.swarm.agg == nil || j.swarm.agg.at != at || j.swarm.agg.closing:
		refuse(fmt.Sprintf("this site does not aggregate %s (or no longer takes updates for it)", at))
		return
	case !j.swarm.agg.expect[o.Sender.Name] || o.Sender.Name == p.cfg.Self.Name:
		refuse(fmt.Sprintf("%s is not a member of %s", o.Sender.Name, at))
		return
	case j.swarm.agg.folded[o.Sender.Name] || j.swarm.agg.refused[o.Sender.Name] != "" || j.swarm.agg.pulling[o.Sender.Name]:
		refuse(fmt.Sprintf("a second update from %s for %s", o.Sender.Name, at))
		return
	case m.Samples < 1:
		j.swarm.agg.refused[o.Sender.Name] = "no training samples"
		delete(j.swarm.agg.expect, o.Sender.Name)
		refuse("no training samples")
		p.maybeClose(ctx, j)
		return
	}
	if m.UpdateStream != nil {
		if err := p.pullModel(ctx, j, o.Sender.Name, m.UpdateStream, m.StreamKey, func(mdl *model.Model, err error) *pulled {
			return &pulled{jobID: m.JobId, at: at, origin: o, reply: reply, update: m, model: mdl, err: err}
		}); err != nil {
			refuse(err.Error())
		} else {
			j.swarm.agg.pulling[o.Sender.Name] = true
		}
		return
	}
	update, err := job.FromWire(m.Update)
	p.takenUpdate(ctx, j, o, m, reply, update, err)
}

// takenUpdate folds a member's update, inline or pulled, and answers it.
func (p *Participant) takenUpdate(ctx actor.Context, j *joined, o bridge.Origin, m *hearthv1.SwarmUpdate, reply *actor.PID, update *model.Model, err error) {
	a, site := j.swarm.agg, o.Sender.Name
	delete(a.expect, site)
	delete(a.pulling, site)
	if err != nil {
		reason := envelope.Clip(err.Error(), 256)
		a.refused[site] = reason
		p.audit(auditor.Event{Action: "update.refused", JobID: m.JobId, Round: m.Round, Peer: site, Detail: map[string]string{"reason": reason}})
		ctx.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, reason))
		p.maybeClose(ctx, j)
		return
	}
	p.audit(auditor.Event{Action: "update.received", JobID: m.JobId, Round: m.Round, Peer: site, PeerEvent: o.MessageID,
		Detail: map[string]string{"attempt": fmt.Sprint(m.Attempt), "samples": fmt.Sprint(m.Samples)}})
	ctx.Send(reply, &hearthv1.SwarmReceived{JobId: m.JobId, Round: m.Round, Attempt: m.Attempt})
	p.fold(ctx, j, site, update, m.Samples)
}

// fold hands one member's update to the aggregator actor.
func (p *Participant) fold(ctx actor.Context, j *joined, site string, update *model.Model, samples int64) {
	a := j.swarm.agg
	delete(a.expect, site)
	weight := min(a.task.Weights[site], float64(samples))
	ctx.Send(a.pid, &aggregator.Fold{Round: a.at.round, Site: site, Update: update, Weight: weight})
	a.folded[site] = true
	p.maybeClose(ctx, j)
}

// pulled is a streamed update or model, pulled and decrypted off the
// actor (or failed).
type pulled struct {
	jobID  string
	at     roundKey
	origin bridge.Origin
	reply  *actor.PID
	update *hearthv1.SwarmUpdate // or
	global *hearthv1.SwarmModel
	model  *model.Model
	spent  time.Duration // decrypting it
	err    error
}

// pullModel pulls an encrypted model stream of the job's layout from
// sender off the actor, and sends what done makes of it to the actor. It
// refuses a stream that does not fit the job before pulling anything.
func (p *Participant) pullModel(ctx actor.Context, j *joined, sender string, man *hearthv1.StreamManifest, key []byte, done func(*model.Model, error) *pulled) error {
	if p.cfg.Streams == nil {
		return errors.New("this site cannot receive streamed models")
	}
	layout, err := p.layoutOf(j)
	if err != nil {
		return err
	}
	sink, err := swarm.NewModelSink(layout, key)
	if err != nil {
		return err
	}
	if man.GetTotalBytes() != sink.Size() {
		return fmt.Errorf("a %d-byte stream for the job's %d-byte model", man.GetTotalBytes(), sink.Size())
	}
	self, system, jobCtx := ctx.Self(), ctx.ActorSystem(), j.swarm.attemptCtx
	go func() {
		_, err := p.cfg.Streams.Receive(jobCtx, sender, man, sink)
		if err != nil {
			system.Root.Send(self, done(nil, fmt.Errorf("%w: %v", errStream, err)))
			return
		}
		r := done(sink.Model(), nil)
		r.spent = sink.Spent()
		system.Root.Send(self, r)
	}()
	return nil
}

// pulledStream takes a pulled update or model back on the actor.
func (p *Participant) pulledStream(ctx actor.Context, m *pulled) {
	j := p.jobs[m.jobID]
	if m.update != nil {
		if j == nil || j.swarm == nil || j.swarm.agg == nil || j.swarm.agg.at != m.at || j.swarm.agg.closing {
			p.audit(auditor.Event{Action: "update.refused", JobID: m.jobID, Round: m.at.round, Peer: m.origin.Sender.Name,
				Detail: map[string]string{"reason": fmt.Sprintf("%s was closed while the update streamed", m.at)}})
			ctx.Send(m.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, fmt.Sprintf("%s was closed while the update streamed", m.at)))
			return
		}
		j.swarm.agg.sealMicros += m.spent.Microseconds()
		p.takenUpdate(ctx, j, m.origin, m.update, m.reply, m.model, m.err)
		return
	}
	if j == nil || j.swarm == nil || j.swarm.at != m.at || j.swarm.models[m.at] != nil {
		p.audit(auditor.Event{Action: "model.refused", JobID: m.jobID, Round: m.at.round, Peer: m.origin.Sender.Name,
			Detail: map[string]string{"reason": fmt.Sprintf("%s is no longer this site's newest task", m.at)}})
		ctx.Send(m.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, fmt.Sprintf("%s is no longer this site's newest task", m.at)))
		return
	}
	if w := j.swarm.wait; w != nil && w.at == m.at {
		w.sealMicros += m.spent.Microseconds()
	}
	if m.err != nil {
		j.swarm.pullingModel = false
		p.audit(auditor.Event{Action: "model.refused", JobID: m.jobID, Round: m.at.round, Peer: m.origin.Sender.Name, Detail: map[string]string{"reason": m.err.Error()}})
		ctx.Send(m.reply, failure(hearthv1.FailureCode_FAILURE_CODE_STREAM_FAILED, m.err.Error()))
		return
	}
	p.acceptModel(ctx, j, m.origin, m.global, m.model, m.reply)
}

// layoutOf is the job's model layout (values zero), made once.
func (p *Participant) layoutOf(j *joined) (*model.Model, error) {
	if j.swarm.layout == nil {
		want, err := trainer.Init(j.spec, j.train.Features, j.train.Classes)
		if err != nil {
			return nil, err
		}
		j.swarm.layout = want
	}
	return j.swarm.layout, nil
}

func (p *Participant) maybeClose(ctx actor.Context, j *joined) {
	if a := j.swarm.agg; a != nil && len(a.expect) == 0 && !a.closing {
		p.closeAggregation(ctx, j)
	}
}

// closeAggregation stops taking updates and asks the aggregator actor for
// the new global model.
func (p *Participant) closeAggregation(ctx actor.Context, j *joined) {
	a := j.swarm.agg
	a.closing = true
	future := ctx.RequestFuture(a.pid, &aggregator.Close{Round: a.at.round}, 30*time.Second)
	jobID, at := a.task.JobId, a.at
	ctx.ReenterAfter(future, func(res any, err error) {
		c, _ := res.(*aggregator.Closed)
		if err == nil && c == nil {
			err = fmt.Errorf("aggregator answered %T", res)
		}
		if err == nil {
			err = c.Err
		}
		p.aggregated(ctx, jobID, at, c, err)
	})
}

// aggregated sends the new global model to the holders, sealed to each.
func (p *Participant) aggregated(ctx actor.Context, jobID string, at roundKey, c *aggregator.Closed, err error) {
	j := p.jobs[jobID]
	if j == nil || j.swarm == nil || j.swarm.agg == nil || j.swarm.agg.at != at {
		return
	}
	a := j.swarm.agg
	fail := func(reason string) {
		p.audit(auditor.Event{Action: "aggregation.failed", JobID: jobID, Round: at.round, Detail: map[string]string{"reason": reason}})
		ctx.Send(a.reply, failure(hearthv1.FailureCode_FAILURE_CODE_AGGREGATION_FAILED, reason))
		p.endAggregation(ctx, j.swarm, "")
	}
	if err != nil {
		fail(err.Error())
		return
	}
	if n := len(c.Sites) + len(c.Screened); n < j.manifest.MinSites {
		fail(fmt.Sprintf("%s: %d updates taken, min_sites %d", at, n, j.manifest.MinSites))
		return
	}
	refused := a.refused
	for s, r := range c.Refused {
		refused[s] = r
	}
	var wire *hearthv1.Model
	if c.Mean.Bytes() <= job.InlineLimit {
		wire = job.ToWire(c.Mean)
	}
	digest := swarm.Digest(c.Mean)
	a.result = &hearthv1.SwarmAggregated{Contributors: slices.Sorted(slices.Values(c.Sites)), Refused: refused, Clipped: c.Clipped, Screened: c.Screened,
		ModelSha256: digest, AggregateMicros: time.Since(a.started).Microseconds()}
	p.hold(j, at, c.Mean)
	closed := p.audit(auditor.Event{Action: "aggregation.closed", JobID: jobID, Round: at.round, Detail: map[string]string{
		"attempt": fmt.Sprint(at.attempt), "contributors": fmt.Sprint(a.result.Contributors), "model_sha256": hex.EncodeToString(digest)}})
	// The holders confirm the model to the server themselves (with its
	// digest); a failed delivery is audited here. A large model is
	// encrypted once, under one key for every holder, and streamed to each.
	var payload *stream.Payload
	var key []byte
	if c.Mean.Bytes() > job.InlineLimit {
		var data []byte
		start := time.Now()
		data, key, err = swarm.EncryptModel(c.Mean)
		a.sealMicros += time.Since(start).Microseconds()
		if err == nil && p.cfg.Streams != nil {
			payload, err = p.cfg.Streams.Prepare(j.swarm.attemptCtx, data)
		} else if err == nil {
			err = errors.New("the model is too large for one envelope and this site streams nothing")
		}
		if err != nil {
			fail(err.Error())
			return
		}
	}
	for _, h := range a.task.Holders {
		if h == p.cfg.Self.Name {
			continue
		}
		holder := h
		msg := &hearthv1.SwarmModel{JobId: jobID, Round: at.round, Attempt: at.attempt, Global: wire}
		var out *stream.Outgoing
		if payload != nil {
			if out, err = p.cfg.Streams.OfferPayload(j.swarm.attemptCtx, holder, payload); err != nil {
				p.audit(auditor.Event{Action: "model.undelivered", JobID: jobID, Round: at.round, Peer: holder, Detail: map[string]string{"reason": err.Error()}})
				continue
			}
			msg.Global, msg.ModelStream, msg.StreamKey = nil, out.Manifest, key
		}
		timeout := max(j.manifest.RoundTimeout/4, 100*time.Millisecond)
		future := ctx.RequestFuture(p.cfg.Bridge, &bridge.Ask{To: holder, Msg: msg,
			JobID: jobID, Round: at.round, Timeout: timeout, SealTo: j.swarm.keys[holder]}, timeout+time.Second)
		ctx.ReenterAfter(future, func(res any, err error) {
			if out != nil {
				out.Cancel()
			}
			if f, ok := res.(*bridge.Failed); ok && err == nil {
				err = f.Err
			}
			if err != nil {
				p.audit(auditor.Event{Action: "model.undelivered", JobID: jobID, Round: at.round, Peer: holder, PeerEvent: closed,
					Detail: map[string]string{"reason": err.Error()}})
			}
		})
	}
	p.answerAggregation(ctx, j)
}

// answerAggregation answers the server's task: the aggregator's account,
// with its own training figures when it trained.
func (p *Participant) answerAggregation(ctx actor.Context, j *joined) {
	a := j.swarm.agg
	res := a.own
	if res == nil {
		res = &hearthv1.SwarmTrained{JobId: a.task.JobId, Round: a.at.round, Attempt: a.at.attempt}
	}
	a.result.SealMicros = a.sealMicros
	res.Aggregated, res.ModelSha256 = a.result, a.result.ModelSha256
	res.AuditEvent = p.audit(auditor.Event{Action: "result.sent", JobID: a.task.JobId, Round: a.at.round, PeerEvent: res.AuditEvent,
		Detail: map[string]string{"attempt": fmt.Sprint(a.at.attempt), "model_sha256": hex.EncodeToString(a.result.ModelSha256)}})
	ctx.Send(a.reply, res)
	p.endAggregation(ctx, j.swarm, "")
}

// endAttempt ends what this site does for the newest attempt: its
// aggregation, its held answer to the server (with reason, if given), and
// its training and streams (their context).
func (p *Participant) endAttempt(ctx actor.Context, sj *swarmJob, reason string) {
	p.endAggregation(ctx, sj, reason)
	if w := sj.wait; w != nil {
		if reason != "" {
			ctx.Send(w.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, reason))
		}
		sj.wait = nil
	}
	if sj.stopAttempt != nil {
		sj.stopAttempt()
	}
	sj.pullingModel = false
}

// endAggregation stops this site's aggregation, if any; with a reason, the
// server's request is answered with it (a newer attempt took over).
func (p *Participant) endAggregation(ctx actor.Context, sj *swarmJob, reason string) {
	a := sj.agg
	if a == nil {
		return
	}
	if reason != "" && a.result == nil {
		ctx.Send(a.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, reason))
	}
	ctx.Stop(a.pid)
	sj.agg = nil
}

// takeModel takes a round's new global model from its aggregator, and
// answers reply.
func (p *Participant) takeModel(ctx actor.Context, o bridge.Origin, m *hearthv1.SwarmModel, reply *actor.PID) {
	j := p.jobs[m.JobId]
	at := keyOf(m.Round, m.Attempt)
	refuse := func(reason string) { p.refuseArrival(ctx, reply, o, "model.refused", m.JobId, m.Round, reason) }
	switch {
	case !o.Sealed:
		refuse("a model must come sealed to this site's key")
		return
	case j == nil || j.swarm == nil:
		refuse("no swarm job " + envelope.Clip(m.JobId, 64) + " here")
		return
	case j.swarm.task == nil || j.swarm.at != at:
		refuse(fmt.Sprintf("a model for %s, and this site's task is for %v", at, j.swarm.at))
		return
	case j.swarm.task.Aggregator != o.Sender.Name:
		refuse(fmt.Sprintf("%s is %s's to aggregate, not %s's", at, j.swarm.task.Aggregator, o.Sender.Name))
		return
	case j.swarm.models[at] != nil:
		refuse("a second model for " + at.String())
		return
	}
	if m.ModelStream != nil {
		if j.swarm.pullingModel {
			refuse("a second model for " + at.String())
			return
		}
		if err := p.pullModel(ctx, j, o.Sender.Name, m.ModelStream, m.StreamKey, func(mdl *model.Model, err error) *pulled {
			return &pulled{jobID: m.JobId, at: at, origin: o, reply: reply, global: m, model: mdl, err: err}
		}); err != nil {
			refuse(err.Error())
			return
		}
		j.swarm.pullingModel = true
		return
	}
	mdl, err := job.FromWire(m.Global)
	if err != nil {
		refuse(err.Error())
		return
	}
	p.acceptModel(ctx, j, o, m, mdl, reply)
}

// acceptModel checks a new global model (inline or pulled) and holds it.
func (p *Participant) acceptModel(ctx actor.Context, j *joined, o bridge.Origin, m *hearthv1.SwarmModel, mdl *model.Model, reply *actor.PID) {
	at := keyOf(m.Round, m.Attempt)
	j.swarm.pullingModel = false
	if err := p.checkGlobal(j, mdl); err != nil {
		p.audit(auditor.Event{Action: "model.refused", JobID: m.JobId, Round: m.Round, Peer: o.Sender.Name, Detail: map[string]string{"reason": err.Error()}})
		ctx.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, err.Error()))
		return
	}
	p.hold(j, at, mdl)
	digest := swarm.Digest(mdl)
	got := p.audit(auditor.Event{Action: "model.received", JobID: m.JobId, Round: m.Round, Peer: o.Sender.Name, PeerEvent: o.MessageID,
		Detail: map[string]string{"attempt": fmt.Sprint(m.Attempt), "model_sha256": hex.EncodeToString(digest)}})
	ctx.Send(reply, &hearthv1.SwarmReceived{JobId: m.JobId, Round: m.Round, Attempt: m.Attempt})
	if w := j.swarm.wait; w != nil && w.at == at {
		w.got, w.res.ModelSha256, w.res.AuditEvent = true, digest, got
		p.answerWait(ctx, j.swarm)
	}
}

// An update or a model can overtake the server's task that announces its
// attempt (the task to this site and another site's update take different
// paths through the hub). Such early arrivals, before the job's first task
// or for an attempt after the newest task's (up to the next round), wait
// for the task, at most one of each kind per sender and attempt and
// 2*maxSwarmSites in all, and are taken (or refused) when it comes.
type earlyArrival struct {
	at     roundKey
	origin bridge.Origin
	msg    proto.Message
	reply  *actor.PID
	size   int
	since  time.Time
}

// early stashes an arrival that overtook its task; false if it did not.
func (p *Participant) early(ctx actor.Context, o bridge.Origin, jobID string, at roundKey, msg proto.Message) bool {
	j := p.jobs[jobID]
	if j == nil || j.swarm == nil || at.round < 1 || at.round > int64(j.manifest.Rounds) {
		return false
	}
	if j.swarm.task != nil && (!at.after(j.swarm.at) || at.round > j.swarm.at.round+1) {
		return false
	}
	sj := j.swarm
	if at.attempt < 0 || at.attempt >= maxSwarmSites {
		return false
	}
	if sj.eligible != nil { // only what the rotation makes this site's to take
		agg := swarm.NewRotation(sj.nonce, sj.eligible).Aggregator(at.round, at.attempt)
		if _, isUpdate := msg.(*hearthv1.SwarmUpdate); isUpdate && agg != p.cfg.Self.Name || !isUpdate && agg != o.Sender.Name {
			return false
		}
	}
	mine, size := 0, proto.Size(msg)
	for _, e := range sj.early {
		if e.origin.Sender.Name == o.Sender.Name {
			if mine++; mine >= maxEarlyPerSender || e.at == at && proto.MessageName(e.msg) == proto.MessageName(msg) {
				return false // a second one, or too many: refused at once
			}
		}
		size += e.size
	}
	if size > maxEarlyBytes {
		return false
	}
	sj.early = append(sj.early, earlyArrival{at: at, origin: o, msg: msg, reply: ctx.Sender(), size: proto.Size(msg), since: time.Now()})
	return true
}

// Bounds of the early-arrival stash of one job: entries per sender, bytes
// in all (a streamed update is a manifest, not its model).
const (
	maxEarlyPerSender = 2
	maxEarlyBytes     = 64 << 20
)

// takeEarly takes the arrivals that waited for the task just taken, and
// refuses those for an attempt it superseded.
func (p *Participant) takeEarly(ctx actor.Context, sj *swarmJob) {
	waiting := sj.early
	sj.early = nil
	for _, e := range waiting {
		switch {
		case e.at.after(sj.at) && time.Since(e.since) < sj.roundTimeout:
			sj.early = append(sj.early, e)
		case e.at.after(sj.at):
			ctx.Send(e.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, fmt.Sprintf("no task for %s came in time", e.at)))
		case e.at != sj.at:
			reason := fmt.Sprintf("%s was superseded by %s before its task came", e.at, sj.at)
			p.audit(auditor.Event{Action: "arrival.refused", JobID: sj.task.JobId, Round: e.at.round, Peer: e.origin.Sender.Name,
				Detail: map[string]string{"type": string(proto.MessageName(e.msg)), "reason": reason}})
			ctx.Send(e.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, reason))
		default:
			switch m := e.msg.(type) {
			case *hearthv1.SwarmUpdate:
				p.takeUpdate(ctx, e.origin, m, e.reply)
			case *hearthv1.SwarmModel:
				p.takeModel(ctx, e.origin, m, e.reply)
			}
		}
	}
}

// checkGlobal checks a received global model: the job's layout, finite.
func (p *Participant) checkGlobal(j *joined, m *model.Model) error {
	layout, err := p.layoutOf(j)
	if err != nil {
		return err
	}
	if err := layout.SameLayout(m); err != nil {
		return fmt.Errorf("the model's layout: %w", err)
	}
	for _, t := range m.Tensors {
		for _, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("tensor %s holds a non-finite value", t.Name)
			}
		}
	}
	return nil
}

// hold keeps a round's global model in memory for the rounds to come (the
// newest two rounds' attempts); keepModel writes the accepted one to the
// state folder, so that the job's final model stays at the site.
func (p *Participant) hold(j *joined, at roundKey, m *model.Model) {
	j.swarm.models[at] = m
	for k := range j.swarm.models {
		if k.round < at.round-1 {
			delete(j.swarm.models, k)
		}
	}
}

// keepModel writes the global model of at, once the server has named it
// the basis of a round or of the final evaluation (an attempt's model the
// server did not accept is never kept): small ones off the actor, a large
// one only for the evaluation or when the job is left.
func (p *Participant) keepModel(j *joined, at roundKey, final bool) {
	m := j.swarm.models[at]
	if p.cfg.StateDir == "" || m == nil || at.round == 0 {
		return
	}
	j.swarm.kept = at
	if m.Bytes() > job.InlineLimit {
		if final {
			if err := writeModel(ModelPath(p.cfg.StateDir, j.id), m); err != nil {
				p.cfg.Log.Error("swarm model not kept in the state folder", "job", j.id, "err", err)
			}
		}
		return
	}
	if j.swarm.keeper == nil {
		j.swarm.keeper = newModelKeeper(ModelPath(p.cfg.StateDir, j.id), p.cfg.Log)
	}
	j.swarm.keeper.keep(m)
}

// newest is the newest global model this site holds for the job.
func (sj *swarmJob) newest() *model.Model {
	var at roundKey
	var m *model.Model
	for k, mdl := range sj.models {
		if m == nil || k.after(at) {
			at, m = k, mdl
		}
	}
	return m
}

// modelKeeper writes a job's newest global model to its file off the
// actor: a newer model replaces one not written yet, and close waits for
// the last write, so the job's final model is on disk when it is left.
type modelKeeper struct {
	next chan *model.Model
	done chan struct{}
}

func newModelKeeper(path string, log *slog.Logger) *modelKeeper {
	k := &modelKeeper{next: make(chan *model.Model, 1), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for m := range k.next {
			if err := writeModel(path, m); err != nil {
				log.Error("swarm model not kept in the state folder", "file", path, "err", err)
			}
		}
	}()
	return k
}

// keep queues m, replacing a model still waiting; only the actor calls it.
func (k *modelKeeper) keep(m *model.Model) {
	select {
	case <-k.next:
	default:
	}
	k.next <- m
}

func (k *modelKeeper) close() {
	close(k.next)
	<-k.done
}

// ModelPath is where a site keeps a swarm job's newest global model.
func ModelPath(stateDir, jobID string) string {
	return filepath.Join(stateDir, "swarm", jobID, "model.pb")
}

func writeModel(path string, m *model.Model) error {
	raw, err := proto.Marshal(job.ToWire(m))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// swarmEvaluate scores the final global model on the site's test data.
func (p *Participant) swarmEvaluate(ctx actor.Context, m *hearthv1.SwarmEvaluate) {
	from, ok := p.fromServer(ctx)
	if !ok {
		return
	}
	received := p.audit(auditor.Event{Action: "eval.received", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: m.AuditEvent})
	j := p.jobs[m.JobId]
	switch {
	case j == nil || j.swarm == nil:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site has joined no swarm job "+envelope.Clip(m.JobId, 64)))
		return
	case j.test == nil:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NO_TEST_DATA, "the job asked for no test evaluation"))
		return
	}
	mdl := j.swarm.models[keyOf(m.BasisRound, m.BasisAttempt)]
	if mdl != nil {
		p.keepModel(j, keyOf(m.BasisRound, m.BasisAttempt), true) // the final model
	}
	if mdl == nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NO_BASIS, fmt.Sprintf("this site does not hold the model of %s", keyOf(m.BasisRound, m.BasisAttempt))))
		return
	}
	if err := j.beginEvaluation(); err != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
		return
	}
	answer := p.testResult(j, m.JobId, mdl, from.Sender.Name, received)
	res, ok := answer.(*hearthv1.EvaluateResult)
	if !ok || !m.CrossSite {
		ctx.Respond(answer)
		return
	}
	if !j.manifest.Evaluation.CrossSite {
		p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: received,
			Detail: map[string]string{"reason": "a cross-site evaluation the signed job does not ask for"}})
		ctx.Respond(res) // the global model's figures only
		return
	}
	p.beginCross(ctx, j, m, res)
}

// crossEval is a cross-site evaluation in progress at this site: the
// answer to the server, held until every other site's local model is
// scored here or the wait ends.
type crossEval struct {
	reply  *actor.PID
	res    *hearthv1.EvaluateResult
	expect map[string]bool
}

// crossDue ends a cross-site evaluation's wait for the other sites.
type crossDue struct{ jobID string }

// beginCross sends this site's last local model sealed to the other sites
// of the evaluation and waits for theirs.
func (p *Participant) beginCross(ctx actor.Context, j *joined, m *hearthv1.SwarmEvaluate, res *hearthv1.EvaluateResult) {
	sj, self := j.swarm, p.cfg.Self.Name
	refuse := func(reason string) {
		p.audit(auditor.Event{Action: "task.refused", JobID: m.JobId, Detail: map[string]string{"reason": reason}})
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason))
	}
	if len(m.Sites) > maxSwarmSites || len(m.Keys) > maxSwarmSites {
		refuse(fmt.Sprintf("more than %d sites in a cross-site evaluation", maxSwarmSites))
		return
	}
	keys := map[string]*ecdh.PublicKey{}
	for _, k := range m.Keys {
		pub, err := p.verifyKey(sj, k, m.JobId)
		if err != nil {
			refuse(err.Error())
			return
		}
		keys[k.Site] = pub
	}
	for _, site := range m.Sites { // the evaluated sites: the last round's, of the signed job
		if !inJob(j.manifest, site) || sj.task == nil || !slices.Contains(sj.task.Holders, site) && sj.task.Aggregator != site {
			refuse(envelope.Clip(site, 64) + " is not one of the last round's sites")
			return
		}
	}
	c := &crossEval{reply: ctx.Sender(), res: res, expect: map[string]bool{}}
	var wire *hearthv1.Model
	if sj.local != nil && sj.local.Bytes() <= job.InlineLimit {
		wire = job.ToWire(sj.local)
	}
	for _, site := range m.Sites {
		if site == self || keys[site] == nil {
			continue
		}
		c.expect[site] = true
		if wire != nil {
			ctx.Send(p.cfg.Bridge, &bridge.Send{To: site, Msg: &hearthv1.SwarmLocal{JobId: m.JobId, Model: wire}, JobID: m.JobId, SealTo: keys[site]})
		}
	}
	p.peers.set(m.JobId, m.Sites)
	sj.cross = c
	if sj.local != nil { // its own local model too: the table's diagonal
		c.expect[self] = true
		p.scoreLocal(ctx, j, self, sj.local)
	}
	waiting := sj.locals
	sj.locals = nil
	for site, mdl := range waiting { // those that came before this site's own task
		p.scoreLocal(ctx, j, site, mdl)
	}
	if sj.cross != nil && len(c.expect) == 0 {
		p.finishCross(ctx, j)
		return
	}
	self2, system, jobID := ctx.Self(), ctx.ActorSystem(), m.JobId
	time.AfterFunc(j.manifest.RoundTimeout/2, func() { system.Root.Send(self2, &crossDue{jobID: jobID}) })
}

// refuseMismatch refuses a site's envelope whose body names another job
// than the header it was admitted by.
func (p *Participant) refuseMismatch(ctx actor.Context, o bridge.Origin, bodyJob string) {
	reason := fmt.Sprintf("admitted for job %q, its body is for %q", envelope.Clip(o.JobID, 64), envelope.Clip(bodyJob, 64))
	p.audit(auditor.Event{Action: "message.refused", JobID: o.JobID, Peer: o.Sender.Name, Detail: map[string]string{"reason": reason}})
	if ctx.Sender() != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason))
	}
}

// swarmLocal takes another site's last local model for the cross-site
// evaluation.
func (p *Participant) swarmLocal(ctx actor.Context, m *hearthv1.SwarmLocal) {
	o, _ := bridge.OriginOf(ctx)
	if ctx.Sender() != nil { // one-way; asked as a request, it is answered at once
		ctx.Respond(&hearthv1.SwarmReceived{JobId: m.JobId})
	}
	if o.JobID != m.JobId {
		p.refuseMismatch(ctx, o, m.JobId)
		return
	}
	j := p.jobs[m.JobId]
	refuse := func(reason string) {
		p.audit(auditor.Event{Action: "local.refused", JobID: m.JobId, Peer: o.Sender.Name, Detail: map[string]string{"reason": reason}})
	}
	switch {
	case !o.Sealed:
		refuse("a local model must come sealed to this site's key")
		return
	case j == nil || j.swarm == nil || j.test == nil:
		refuse("no swarm job " + envelope.Clip(m.JobId, 64) + " with test data here")
		return
	}
	mdl, err := job.FromWire(m.Model)
	if err == nil {
		err = p.checkGlobal(j, mdl)
	}
	if err != nil {
		refuse(err.Error())
		return
	}
	sj := j.swarm
	if !j.manifest.Evaluation.CrossSite || sj.task == nil || sj.at.round < int64(j.manifest.Rounds) {
		refuse("no cross-site evaluation is due in this job")
		return
	}
	if !slices.Contains(sj.task.Holders, o.Sender.Name) {
		refuse(fmt.Sprintf("%s was not one of the last round's sites", o.Sender.Name))
		return
	}
	if sj.cross == nil { // before this site's own evaluation task: kept, one per site
		if sj.locals == nil {
			sj.locals = map[string]*model.Model{}
		}
		if _, seen := sj.locals[o.Sender.Name]; seen || len(sj.locals) >= maxSwarmSites {
			refuse("a second local model, or too many, before the evaluation")
			return
		}
		sj.locals[o.Sender.Name] = mdl
		return
	}
	if !sj.cross.expect[o.Sender.Name] {
		refuse(fmt.Sprintf("%s is not an evaluated site, or its model was scored already", o.Sender.Name))
		return
	}
	p.scoreLocal(ctx, j, o.Sender.Name, mdl)
	if sj.cross != nil && len(sj.cross.expect) == 0 {
		p.finishCross(ctx, j)
	}
}

// scoreLocal scores another site's local model on this site's test data.
func (p *Participant) scoreLocal(ctx actor.Context, j *joined, site string, mdl *model.Model) {
	c := j.swarm.cross
	if !c.expect[site] {
		return
	}
	delete(c.expect, site)
	mt, err := trainer.Evaluate(j.spec, mdl, j.test)
	if err != nil {
		p.audit(auditor.Event{Action: "local.refused", JobID: j.id, Peer: site, Detail: map[string]string{"reason": err.Error()}})
		return
	}
	c.res.CrossSite = append(c.res.CrossSite, &hearthv1.CrossSiteMetrics{Model: site, Site: p.cfg.Self.Name, Metrics: metrics(mt)})
	p.audit(auditor.Event{Action: "local.evaluated", JobID: j.id, Peer: site, Detail: map[string]string{"test_accuracy": fmt.Sprintf("%.4f", mt.Accuracy)}})
}

// finishCross answers the server with the global model's figures and the
// other sites' local models scored here.
func (p *Participant) finishCross(ctx actor.Context, j *joined) {
	c := j.swarm.cross
	j.swarm.cross = nil
	slices.SortFunc(c.res.CrossSite, func(a, b *hearthv1.CrossSiteMetrics) int { return strings.Compare(a.Model, b.Model) })
	ctx.Send(c.reply, c.res)
}

// leaveSwarm ends a swarm job's role here.
func (p *Participant) leaveSwarm(ctx actor.Context, j *joined) {
	if j.swarm == nil {
		return
	}
	p.endAttempt(ctx, j.swarm, "the job ended")
	if c := j.swarm.cross; c != nil {
		ctx.Send(c.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, "the job ended"))
		j.swarm.cross = nil
	}
	for _, e := range j.swarm.early {
		ctx.Send(e.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, "the job ended"))
	}
	j.swarm.early = nil
	p.peers.drop(j.id)
	if j.swarm.keeper != nil {
		j.swarm.keeper.close()
		j.swarm.keeper = nil
	}
	if m := j.swarm.newest(); m != nil && j.swarm.kept.round < j.swarm.at.round && p.cfg.StateDir != "" {
		// No evaluation named the final model: the newest one is kept.
		if err := writeModel(ModelPath(p.cfg.StateDir, j.id), m); err != nil {
			p.cfg.Log.Error("swarm model not kept in the state folder", "job", j.id, "err", err)
		}
	}
}
