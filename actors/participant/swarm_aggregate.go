package participant

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The aggregator's role at a site: the members' updates folded in an
// aggregator actor of its own, the new model sent sealed to every holder.

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
