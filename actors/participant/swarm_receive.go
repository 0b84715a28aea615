package participant

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// What reaches a site from another site in a swarm job: updates and models,
// inline or streamed (encrypted), those that overtook their task, and the
// global models a site holds and keeps.

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
	if o.OneWay || ctx.Sender() == nil {
		// Members and aggregators send updates and models as requests and
		// wait for the answer; one sent one-way has no one to answer (and
		// nothing to account it to): refused, audited, never taken.
		action := "update.refused"
		if _, isModel := msg.(*hearthv1.SwarmModel); isModel {
			action = "model.refused"
		}
		p.refuseArrival(ctx, nil, o, action, jobID, round, "sent one-way: an update or a model comes as a request")
		return
	}
	if p.early(o, jobID, keyOf(round, attempt), msg, ctx.Sender()) {
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
// audited (action) and logged, answering reply if there is one.
func (p *Participant) refuseArrival(ctx actor.Context, reply *actor.PID, o bridge.Origin, action, jobID string, round int64, reason string) {
	p.audit(auditor.Event{Action: action, JobID: jobID, Round: round, Peer: o.Sender.Name, Detail: map[string]string{"reason": reason}})
	p.cfg.Log.Warn("swarm "+action, "job", jobID, "round", round, "from", o.Sender.Name, "reason", reason)
	if reply != nil {
		ctx.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason))
	}
}

// pulled is a streamed model from the round's aggregator, pulled and
// decrypted off the actor (or failed). (Updates are folded chunk by chunk
// by the aggregator actor instead: see takeUpdate.)
type pulled struct {
	jobID  string
	at     roundKey
	origin bridge.Origin
	reply  *actor.PID
	global *hearthv1.SwarmModel
	model  *model.Model
	checks *modelChecks   // found while it was decrypted
	spent  swarm.SealTime // decrypting it
	err    error
}

// modelChecks are what acceptModel finds of a model's values: its digest
// (swarm.Digest) and the first tensor that holds a NaN or an infinity.
type modelChecks struct {
	digest    []byte
	nonFinite string
}

// checksOf computes a model's checks.
func checksOf(m *model.Model) *modelChecks {
	c := &modelChecks{digest: swarm.Digest(m)}
	for _, t := range m.Tensors {
		if model.FirstNonFinite(t.Data) >= 0 {
			c.nonFinite = t.Name
			break
		}
	}
	return c
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
		r.checks = &modelChecks{}
		r.checks.digest, r.checks.nonFinite = sink.Checked()
		system.Root.Send(self, r)
	}()
	return nil
}

// pulledStream takes a pulled model back on the actor.
func (p *Participant) pulledStream(ctx actor.Context, m *pulled) {
	j := p.jobs[m.jobID]
	if j == nil || j.swarm == nil || j.swarm.at != m.at || j.swarm.models[m.at] != nil {
		p.audit(auditor.Event{Action: "model.refused", JobID: m.jobID, Round: m.at.round, Peer: m.origin.Sender.Name,
			Detail: map[string]string{"reason": fmt.Sprintf("%s is no longer this site's newest task", m.at)}})
		ctx.Send(m.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, fmt.Sprintf("%s is no longer this site's newest task", m.at)))
		return
	}
	if w := j.swarm.wait; w != nil && w.at == m.at {
		w.seal = w.seal.Add(m.spent)
	}
	if m.err != nil {
		j.swarm.pullingModel = false
		p.audit(auditor.Event{Action: "model.refused", JobID: m.jobID, Round: m.at.round, Peer: m.origin.Sender.Name, Detail: map[string]string{"reason": m.err.Error()}})
		ctx.Send(m.reply, failure(hearthv1.FailureCode_FAILURE_CODE_STREAM_FAILED, m.err.Error()))
		return
	}
	p.acceptModel(ctx, j, m.origin, m.global, m.model, m.checks, m.reply)
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
	p.acceptModel(ctx, j, o, m, mdl, checksOf(mdl), reply)
}

// acceptModel checks a new global model (inline or pulled), whose values'
// checks were made, and holds it.
func (p *Participant) acceptModel(ctx actor.Context, j *joined, o bridge.Origin, m *hearthv1.SwarmModel, mdl *model.Model, checks *modelChecks, reply *actor.PID) {
	at := keyOf(m.Round, m.Attempt)
	j.swarm.pullingModel = false
	err := p.checkLayout(j, mdl)
	if err == nil && checks.nonFinite != "" {
		err = nonFinite(checks.nonFinite)
	}
	if err != nil {
		p.audit(auditor.Event{Action: "model.refused", JobID: m.JobId, Round: m.Round, Peer: o.Sender.Name, Detail: map[string]string{"reason": err.Error()}})
		ctx.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, err.Error()))
		return
	}
	p.hold(j, at, mdl)
	digest := checks.digest
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
func (p *Participant) early(o bridge.Origin, jobID string, at roundKey, msg proto.Message, reply *actor.PID) bool {
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
	sj.early = append(sj.early, earlyArrival{at: at, origin: o, msg: msg, reply: reply, size: proto.Size(msg), since: time.Now()})
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
	if err := p.checkLayout(j, m); err != nil {
		return err
	}
	for _, t := range m.Tensors {
		if model.FirstNonFinite(t.Data) >= 0 {
			return nonFinite(t.Name)
		}
	}
	return nil
}

// checkLayout checks that a received model has the job's layout.
func (p *Participant) checkLayout(j *joined, m *model.Model) error {
	layout, err := p.layoutOf(j)
	if err != nil {
		return err
	}
	if err := layout.SameLayout(m); err != nil {
		return fmt.Errorf("the model's layout: %w", err)
	}
	return nil
}

// nonFinite is the refusal of a model whose tensor holds a NaN or an
// infinity.
func nonFinite(tensor string) error { return fmt.Errorf("tensor %s holds a non-finite value", tensor) }

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
