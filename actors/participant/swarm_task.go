package participant

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"slices"
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
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A site's part in a swarm attempt as a member: the server's task checked
// against the signed job, the training, the update sent sealed to the
// round's aggregator, and the answer held until the new model comes.

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
		pub, err := p.verifyKey(sj, k, m.JobId, hostOf(j.manifest, k.GetSite()))
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
	if j.manifest.Attested() && !p.isHost() {
		if err := p.hostAccepted(j, m.Aggregator, keys[m.Aggregator]); err != nil {
			refuse(hearthv1.FailureCode_FAILURE_CODE_ATTESTATION, err.Error())
			return
		}
	}
	if member {
		if err := p.claimTraining(j, m.JobId); err != nil {
			refuse(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error())
			return
		}
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
	if p.isHost() {
		p.peers.put(m.JobId, setOf(m.Members), hostTypes)
	} else {
		p.peers.set(m.JobId, append(slices.Clone(m.Members), m.Holders...))
	}
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
		p.cfg.OnSwarmTask(j.manifest, m, basis, func(to string, msg proto.Message, oneWay bool) {
			k := keys[to]
			switch {
			case k == nil:
			case oneWay:
				ctx.Send(p.cfg.Bridge, &bridge.Send{To: to, Msg: msg, JobID: m.JobId, Round: m.Round, SealTo: k})
			default: // the answer is not awaited
				ctx.RequestFuture(p.cfg.Bridge, &bridge.Ask{To: to, Msg: msg, JobID: m.JobId, Round: m.Round, SealTo: k}, j.manifest.RoundTimeout)
			}
		})
	}
}

// claimTraining counts one more swarm training for the job, or says why
// not: at most one per round and eligible aggregator (each attempt), plus
// maxResumes, counted across re-joins, so a compromised server cannot keep
// the site training by re-joining it or by opening attempts.
func (p *Participant) claimTraining(j *joined, jobID string) error {
	limit := j.manifest.Rounds*len(j.swarm.eligible) + maxResumes
	if n := p.tasks[jobID]; n >= limit {
		return fmt.Errorf("%d swarm trainings for this job already, its bound (rounds times eligible aggregators, plus %d)", n, maxResumes)
	}
	p.tasks[jobID]++
	return nil
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
			var eps float64
			if basis, err = p.filterIncoming(j, m.JobId, m.Round, basis); err != nil {
				out.err = err
				return
			}
			if update, r, eps, err = p.trainPrivately(jobCtx, j, m.JobId, m.Round, spec, basis, train); err != nil {
				out.err = fmt.Errorf("training: %w", err)
				return
			}
			if update, err = p.filterUpdate(j, m.JobId, m.Round, basis, update); err != nil {
				out.err = err
				return
			}
			res.Epsilon = max(eps, epsilonOf(j))
		}
		res.TrainMicros = time.Since(start).Microseconds()
		res.Samples, res.TrainLoss = int64(r.Samples), r.Loss
		out.update, out.res = update, res
	}()
}

// checkSwarmTask checks a task's round, attempt, aggregator and lists
// against the signed job and what this site took before.
func (p *Participant) checkSwarmTask(j *joined, m *hearthv1.SwarmTask) error {
	sj := j.swarm
	at := keyOf(m.Round, m.Attempt)
	member := slices.Contains(m.Members, p.cfg.Self.Name)
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
	for _, s := range m.Members {
		if !inJob(j.manifest, s) {
			return fmt.Errorf("%s is not one of the signed job's sites", envelope.Clip(s, 64))
		}
	}
	for _, s := range append(slices.Clone(m.Holders), m.Aggregator) {
		if !inJob(j.manifest, s) && !hostOf(j.manifest, s) {
			return fmt.Errorf("%s is not one of the signed job's sites", envelope.Clip(s, 64))
		}
	}
	if j.manifest.Attested() && !hostOf(j.manifest, m.Aggregator) {
		return fmt.Errorf("the aggregator %s is not one of the signed job's aggregation hosts", envelope.Clip(m.Aggregator, 64))
	}
	for _, s := range m.Holders { // the model goes to the sites and to the one host the sites attested for the round
		if hostOf(j.manifest, s) && s != m.Aggregator {
			return fmt.Errorf("%s, an aggregation host, is a holder of a round it does not aggregate", envelope.Clip(s, 64))
		}
	}
	if p.isHost() && (member || m.Aggregator != p.cfg.Self.Name) {
		return errors.New("an aggregation host only aggregates, the rounds the rotation gives it")
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
	return !hostOf(m, site) && (m.Sites[0] == job.AllSites || slices.Contains(m.Sites, site))
}

// hostOf says whether name is one of an attested job's aggregation hosts.
func hostOf(m *job.Manifest, name string) bool {
	return m.Attested() && slices.Contains(m.Placement.Hosts, name)
}

// eligibleFor is the rotation's sites: the manifest's aggregators, or its
// sites; only for a job on every site that names no aggregators does the
// server's list (the joined sites) stand, and then it must not be empty.
func eligibleFor(m *job.Manifest, fromServer []string) ([]string, error) {
	if m.Attested() { // the hosts every site accepted: some of the signed job's
		seen := map[string]bool{}
		for _, h := range fromServer {
			if !hostOf(m, h) || seen[h] {
				return nil, fmt.Errorf("the task's eligible aggregator %s is not one of the signed job's hosts, or is listed twice", envelope.Clip(h, 64))
			}
			seen[h] = true
		}
		if len(fromServer) == 0 {
			return nil, errors.New("no eligible aggregation hosts listed")
		}
		return fromServer, nil
	}
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
		if j.train == nil { // an aggregation host holds no data: the sites check the model's shape
			if m.Features < 1 || m.Classes < 2 || m.Features > maxShape || m.Classes > maxShape || m.Features*m.Classes > maxShape {
				return nil, fmt.Errorf("the task's data shape (%d features, %d classes) is out of bounds", m.Features, m.Classes)
			}
			if mdl := j.swarm.models[at]; mdl != nil {
				return mdl, nil
			}
			if j.swarm.initMade { // one initial model per job: a compromised server cannot make it allocate one per attempt
				return nil, errors.New("the initial model was made for another shape")
			}
			j.swarm.initMade = true
			mdl, err := trainer.Init(j.spec, int(m.Features), int(m.Classes))
			if err != nil {
				return nil, fmt.Errorf("initial model: %w", err)
			}
			j.swarm.models[at] = mdl
			return mdl, nil
		}
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
			a.refused[p.cfg.Self.Name] = envelope.Clip(t.err.Error(), 256)
			p.leaveOut(ctx, j, p.cfg.Self.Name)
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
	if j.manifest.Attested() {
		if err := p.hostAccepted(j, agg, sj.keys[agg]); err != nil { // its re-attestation may have failed meanwhile
			p.audit(auditor.Event{Action: "update.withheld", JobID: t.jobID, Round: t.at.round, Peer: agg, Detail: map[string]string{"reason": err.Error()}})
			ctx.Send(t.reply, failure(hearthv1.FailureCode_FAILURE_CODE_ATTESTATION, err.Error()))
			return
		}
	}
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
			w.seal = w.seal.Add(spent)
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
func (p *Participant) offerModel(ctx context.Context, recipient string, m *model.Model) (*stream.Outgoing, []byte, swarm.SealTime, error) {
	if p.cfg.Streams == nil {
		return nil, nil, swarm.SealTime{}, errors.New("the model is too large for one envelope and this site streams nothing")
	}
	timer := swarm.StartSeal()
	data, key, err := swarm.EncryptModel(m)
	spent := timer.Stop()
	if err != nil {
		return nil, nil, spent, err
	}
	out, err := p.cfg.Streams.OfferBytes(ctx, recipient, data)
	if err != nil {
		swarm.Recycle(data)
		return nil, nil, spent, err
	}
	go func() { // for the next round's update: the stream reads it until it ends
		<-out.Done()
		swarm.Recycle(data)
	}()
	return out, key, spent, nil
}

// answerWait answers the server once the site trained (if a member) and
// holds the new model.
func (p *Participant) answerWait(ctx actor.Context, sj *swarmJob) {
	w := sj.wait
	if w == nil || !w.trained || !w.got {
		return
	}
	w.res.SealMicros, w.res.SealCpuMicros = w.seal.Wall.Microseconds(), w.seal.CPU.Microseconds()
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
