package participant

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
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

// The aggregator's role at a site: an aggregator actor of its own holds
// the round's global model and folds the members' updates into its sum,
// inline ones whole, streamed ones chunk by chunk as they arrive (each
// chunk decrypted under its stream's sealed key, never the whole update
// held), this site's own update as a stream would be; then the new model
// is sent sealed to every holder.

// arrival is an update the aggregator is folding: who sent it, and whom
// to answer (nil: this site's own).
type arrival struct {
	origin bridge.Origin
	update *hearthv1.SwarmUpdate
	reply  *actor.PID
}

// beginAggregation starts this site's aggregation of an attempt.
func (p *Participant) beginAggregation(ctx actor.Context, j *joined, m *hearthv1.SwarmTask, basis *model.Model) {
	a := &aggregation{at: keyOf(m.Round, m.Attempt), task: m, reply: ctx.Sender(), expect: map[string]bool{},
		folded: map[string]bool{}, refused: map[string]string{}, pulling: map[string]arrival{}, basis: basis, started: time.Now()}
	for _, s := range m.Members {
		a.expect[s] = true
	}
	// The aggregator's model is on the heap: the mean it closes with
	// becomes this site's global model as it is, not copied.
	cfg := aggregator.Config{JobID: m.JobId, Log: p.cfg.Log, HeapModels: true}
	if p.cfg.Streams != nil {
		cfg.Streams = p.cfg.Streams
	}
	a.pid = ctx.Spawn(aggregator.HoldingProps(j.swarm.attemptCtx, cfg))
	self, jobID, at := ctx.Self(), m.JobId, a.at
	a.relay = ctx.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch msg := c.Message().(type) {
		case *aggregator.StreamTaken, *aggregator.StreamPulled:
			c.Send(self, &aggregatorSaid{jobID: jobID, at: at, msg: msg})
		}
	}))
	j.swarm.agg = a
	p.audit(auditor.Event{Action: "aggregation.started", JobID: m.JobId, Round: m.Round,
		Detail: map[string]string{"attempt": fmt.Sprint(m.Attempt), "members": fmt.Sprint(len(m.Members))}})
	// The aggregator holds a copy of the basis (the sum of a streamed round
	// is made in it); the members hold the basis already, so nothing is
	// offered to them, and a lockstep sum waits for every member's update.
	streamed := basis.Bytes() > job.InlineLimit
	held := ctx.RequestFuture(a.pid, &aggregator.Hold{Model: basis, Streamed: streamed}, 30*time.Second)
	begun := ctx.RequestFuture(a.pid, &aggregator.Begin{Round: m.Round, Rule: j.manifest.Aggregation, Expect: m.Members}, 30*time.Second)
	ctx.ReenterAfter(held, func(res any, err error) {
		if h, _ := res.(*aggregator.Held); err == nil && h != nil && h.Err != nil {
			err = h.Err
		}
		if err != nil {
			p.aggregationFailed(ctx, jobID, at, "the aggregator holds no basis: "+err.Error())
		}
	})
	ctx.ReenterAfter(begun, func(res any, err error) {
		if o, _ := res.(*aggregator.Offered); err == nil && o != nil && o.Err != nil {
			err = o.Err
		}
		if err != nil {
			p.aggregationFailed(ctx, jobID, at, "the round could not begin: "+err.Error())
		}
	})
	// Updates are awaited for half the round's time: the rest is for the
	// new model to reach the holders before the server's wait ends.
	system := ctx.ActorSystem()
	time.AfterFunc(j.manifest.RoundTimeout/2, func() { system.Root.Send(self, &closeAggregation{jobID: jobID, at: at}) })
}

// aggregationFailed fails the attempt's aggregation, if it still runs.
func (p *Participant) aggregationFailed(ctx actor.Context, jobID string, at roundKey, reason string) {
	j := p.jobs[jobID]
	if j == nil || j.swarm == nil || j.swarm.agg == nil || j.swarm.agg.at != at || j.swarm.agg.result != nil {
		return
	}
	p.audit(auditor.Event{Action: "aggregation.failed", JobID: jobID, Round: at.round, Detail: map[string]string{"reason": reason}})
	ctx.Send(j.swarm.agg.reply, failure(hearthv1.FailureCode_FAILURE_CODE_AGGREGATION_FAILED, reason))
	p.endAggregation(ctx, j.swarm, "")
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
	}
	a, site := j.swarm.agg, o.Sender.Name
	if _, pulling := a.pulling[site]; pulling || a.folded[site] || a.refused[site] != "" {
		refuse(fmt.Sprintf("a second update from %s for %s", site, at))
		return
	}
	if m.Samples < 1 {
		a.refused[site] = "no training samples"
		p.leaveOut(ctx, j, site)
		refuse("no training samples")
		p.maybeClose(ctx, j)
		return
	}
	if m.UpdateStream != nil {
		if p.cfg.Streams == nil {
			a.refused[site] = "this site cannot receive streamed models"
			p.leaveOut(ctx, j, site)
			refuse(a.refused[site])
			p.maybeClose(ctx, j)
			return
		}
		a.pulling[site] = arrival{origin: o, update: m, reply: reply}
		ctx.RequestWithCustomSender(a.pid, &aggregator.FoldStream{Round: at.round, Site: site, Manifest: m.UpdateStream, Key: m.StreamKey,
			Weight: a.weight(site, m.Samples)}, a.relay)
		return
	}
	update, err := job.FromWire(m.Update)
	if err == nil {
		// Refused here as it arrives, audited and answered as such, rather
		// than taken and left for the aggregator's close: an update of
		// another layout (an inline one for a streamed round among them).
		err = a.basis.SameLayout(update)
	}
	if err != nil {
		p.updateRefused(ctx, j, site, arrival{origin: o, update: m, reply: reply}, hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, err.Error())
		return
	}
	p.updateTaken(ctx, j, site, arrival{origin: o, update: m, reply: reply})
	p.fold(ctx, j, site, update, m.Samples)
}

// weight is a member's weight in the round: its samples, capped by the
// server's task.
func (a *aggregation) weight(site string, samples int64) float64 {
	return min(a.task.Weights[site], float64(samples))
}

// updateTaken accounts a member's update folded (or, inline, handed to the
// aggregator) and answers its sender.
func (p *Participant) updateTaken(ctx actor.Context, j *joined, site string, u arrival) {
	a := j.swarm.agg
	delete(a.expect, site)
	a.folded[site] = true
	if u.reply == nil { // this site's own
		return
	}
	m := u.update
	p.audit(auditor.Event{Action: "update.received", JobID: m.JobId, Round: m.Round, Peer: site, PeerEvent: u.origin.MessageID,
		Detail: map[string]string{"attempt": fmt.Sprint(m.Attempt), "samples": fmt.Sprint(m.Samples)}})
	ctx.Send(u.reply, &hearthv1.SwarmReceived{JobId: m.JobId, Round: m.Round, Attempt: m.Attempt})
}

// updateRefused leaves a member's update out of the round for reason,
// audited, and answers its sender with code.
func (p *Participant) updateRefused(ctx actor.Context, j *joined, site string, u arrival, code hearthv1.FailureCode, reason string) {
	a := j.swarm.agg
	reason = envelope.Clip(reason, 256)
	a.refused[site] = reason
	p.leaveOut(ctx, j, site)
	p.audit(auditor.Event{Action: "update.refused", JobID: a.task.JobId, Round: a.at.round, Peer: site, Detail: map[string]string{"reason": reason}})
	if u.reply != nil {
		ctx.Send(u.reply, failure(code, reason))
	}
	p.maybeClose(ctx, j)
}

// leaveOut stops awaiting a member's update: the aggregator no longer
// waits for it either (a lockstep sum would), and a pull of it ends.
func (p *Participant) leaveOut(ctx actor.Context, j *joined, site string) {
	a := j.swarm.agg
	delete(a.expect, site)
	ctx.Send(a.pid, &aggregator.Withdraw{Site: site})
}

// fold hands one update held in memory to the aggregator actor: an inline
// round folds it whole, a streamed round chunk by chunk as it would a
// stream (answered through the relay, as a member's stream is).
func (p *Participant) fold(ctx actor.Context, j *joined, site string, update *model.Model, samples int64) {
	a := j.swarm.agg
	if update.Bytes() > job.InlineLimit {
		a.pulling[site] = arrival{}
		ctx.RequestWithCustomSender(a.pid, &aggregator.FoldStream{Round: a.at.round, Site: site, Update: update, Weight: a.weight(site, samples)}, a.relay)
		return
	}
	ctx.Send(a.pid, &aggregator.Fold{Round: a.at.round, Site: site, Update: update, Weight: a.weight(site, samples)})
	delete(a.expect, site)
	a.folded[site] = true
	p.maybeClose(ctx, j)
}

// aggregatorSaid takes the aggregator's answer about an update it folds
// chunk by chunk: refused at once, or its fold ended (counted or failed).
func (p *Participant) aggregatorSaid(ctx actor.Context, m *aggregatorSaid) {
	j := p.jobs[m.jobID]
	if j == nil || j.swarm == nil || j.swarm.agg == nil || j.swarm.agg.at != m.at {
		return // ended: endAggregation answered the senders
	}
	a := j.swarm.agg
	switch r := m.msg.(type) {
	case *aggregator.StreamTaken:
		u, ok := a.pulling[r.Site]
		if !ok || r.Refused == "" {
			return
		}
		delete(a.pulling, r.Site)
		p.updateRefused(ctx, j, r.Site, u, hearthv1.FailureCode_FAILURE_CODE_REFUSED, r.Refused)
	case *aggregator.StreamPulled:
		u, ok := a.pulling[r.Site]
		if !ok {
			return
		}
		delete(a.pulling, r.Site)
		a.seal = a.seal.Add(r.Decrypted)
		switch {
		case r.Err != nil && a.closing:
			p.updateRefused(ctx, j, r.Site, u, hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED,
				fmt.Sprintf("%s was closed while the update streamed: %v", a.at, r.Err))
		case r.Err != nil:
			p.updateRefused(ctx, j, r.Site, u, hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, fmt.Sprintf("%v: %v", errStream, r.Err))
		default:
			p.updateTaken(ctx, j, r.Site, u)
			p.maybeClose(ctx, j)
		}
	}
}

func (p *Participant) maybeClose(ctx actor.Context, j *joined) {
	a := j.swarm.agg
	switch {
	case a == nil:
	case !a.closing && len(a.expect) == 0:
		p.closeAggregation(ctx, j)
	case a.closing:
		p.askClose(ctx, j)
	}
}

// closeAggregation stops taking updates: the members still awaited are
// left out (a pull of theirs ends), and once no update is being folded
// the aggregator is asked for the new global model.
func (p *Participant) closeAggregation(ctx actor.Context, j *joined) {
	a := j.swarm.agg
	a.closing = true
	for _, site := range slices.Sorted(maps.Keys(a.expect)) {
		p.leaveOut(ctx, j, site)
	}
	p.askClose(ctx, j)
}

// askClose asks the aggregator for the new global model once no update is
// being folded.
func (p *Participant) askClose(ctx actor.Context, j *joined) {
	a := j.swarm.agg
	if a.asked || len(a.pulling) > 0 {
		return
	}
	a.asked = true
	future := ctx.RequestFuture(a.pid, &aggregator.Close{Round: a.at.round, WantMean: true}, 30*time.Second)
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
	// The digest is made beside the encryption below: two passes over the
	// model on two cores while the holders wait.
	digested := make(chan []byte, 1)
	go func(m *model.Model) { digested <- swarm.Digest(m) }(c.Mean)
	var wire *hearthv1.Model
	var payload *stream.Payload
	var data, key []byte // data: the model encrypted under key, for a large one
	if c.Mean.Bytes() <= job.InlineLimit {
		wire = job.ToWire(c.Mean)
	} else {
		// A large model is encrypted once, under one key for every holder,
		// and streamed to each.
		timer := swarm.StartSeal()
		data, key, err = swarm.EncryptModel(c.Mean)
		a.seal = a.seal.Add(timer.Stop())
		if err == nil && p.cfg.Streams != nil {
			payload, err = p.cfg.Streams.Prepare(j.swarm.attemptCtx, data)
		} else if err == nil {
			err = errors.New("the model is too large for one envelope and this site streams nothing")
		}
		if err != nil {
			<-digested
			fail(err.Error())
			return
		}
	}
	digest := <-digested
	a.result = &hearthv1.SwarmAggregated{Contributors: slices.Sorted(slices.Values(c.Sites)), Refused: refused, Clipped: c.Clipped, Screened: c.Screened,
		ModelSha256: digest, AggregateMicros: time.Since(a.started).Microseconds()}
	p.hold(j, at, c.Mean)
	closed := p.audit(auditor.Event{Action: "aggregation.closed", JobID: jobID, Round: at.round, Detail: map[string]string{
		"attempt": fmt.Sprint(at.attempt), "contributors": fmt.Sprint(a.result.Contributors), "model_sha256": hex.EncodeToString(digest)}})
	// The holders confirm the model to the server themselves (with its
	// digest); a failed delivery is audited here. A large model goes to
	// every holder as one cast (bus/stream): published once, and the hub
	// hands a copy to each holder's leaf.
	var holders []string
	for _, h := range a.task.Holders {
		if h != p.cfg.Self.Name {
			holders = append(holders, h)
		}
	}
	var cast *stream.Cast
	if payload != nil && len(holders) > 0 {
		if cast, err = p.cfg.Streams.OfferCast(j.swarm.attemptCtx, holders, payload); err != nil {
			for _, h := range holders {
				p.audit(auditor.Event{Action: "model.undelivered", JobID: jobID, Round: at.round, Peer: h, PeerEvent: closed,
					Detail: map[string]string{"reason": err.Error()}})
			}
			holders = nil
		}
	}
	switch {
	case cast != nil:
		go func() { // for the next encryption: the cast reads it until it ends
			<-cast.Done()
			swarm.Recycle(data)
		}()
	case data != nil:
		swarm.Recycle(data)
	}
	pending := len(holders)
	for _, holder := range holders {
		msg := &hearthv1.SwarmModel{JobId: jobID, Round: at.round, Attempt: at.attempt, Global: wire}
		if cast != nil {
			msg.Global, msg.ModelStream, msg.StreamKey = nil, cast.Manifest, key
		}
		timeout := max(j.manifest.RoundTimeout/4, 100*time.Millisecond)
		future := ctx.RequestFuture(p.cfg.Bridge, &bridge.Ask{To: holder, Msg: msg,
			JobID: jobID, Round: at.round, Timeout: timeout, SealTo: j.swarm.keys[holder]}, timeout+time.Second)
		ctx.ReenterAfter(future, func(res any, err error) {
			if f, ok := res.(*bridge.Failed); ok && err == nil {
				err = f.Err
			}
			if err != nil && cast != nil {
				// It refused the model or did not answer in time: it
				// pulls no more, and the cast does not wait its hold
				// time on it while the other holders wait behind it.
				cast.Drop(holder, err)
			}
			if pending--; pending == 0 && cast != nil {
				cast.Cancel() // every holder answered: none pulls any more
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
	a.result.SealMicros, a.result.SealCpuMicros = a.seal.Wall.Microseconds(), a.seal.CPU.Microseconds()
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
	for _, site := range slices.Sorted(maps.Keys(a.pulling)) {
		if u := a.pulling[site]; u.reply != nil {
			ctx.Send(u.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, fmt.Sprintf("the aggregation of %s ended while the update streamed", a.at)))
		}
	}
	ctx.Stop(a.pid)
	ctx.Stop(a.relay)
	sj.agg = nil
}
