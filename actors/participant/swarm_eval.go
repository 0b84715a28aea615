package participant

import (
	"crypto/ecdh"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The final evaluation of a swarm job at a site, and the cross-site
// evaluation of the sites' last local models.

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
	var answer proto.Message
	if entering, err := p.filterIncoming(j, m.JobId, 0, mdl); err != nil { // the scope's filters on what enters, as for training
		answer = failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error())
	} else {
		answer = p.testResult(j, m.JobId, entering, from.Sender.Name, received)
	}
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
		pub, err := p.verifyKey(sj, k, m.JobId, false)
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
	mdl, err := p.filterIncoming(j, j.id, 0, mdl) // another site's model enters this one: the scope's filters first
	var mt trainer.Metrics
	if err == nil {
		mt, err = trainer.Evaluate(j.spec, mdl, j.test)
	}
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
