package participant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/bus/bridge"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies/components"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// What a site decides of a job before anything of it is built or loaded
// here, beside its authorization (participant.go's admit): the job's
// components and code, and its resources.

// checkComponents decides, before anything of the job is built here,
// whether its components may run at this site: a job's own code needs the
// submitter's byoc right here (FLARE's, decided by this site's own
// authorization.json) and must be what the signed manifest pins; every
// trainer, workflow, filter and script must be in the site's allow-list;
// and the site must run job code at all (Config.StartCode).
func (p *Participant) checkComponents(v *job.Verified, who pki.Identity, code []*hearthv1.JobFile) error {
	m := v.Manifest
	if m.Trainer.Custom() {
		if allowed, reason := p.cfg.Policy.Allow("byoc", who, nil); !allowed {
			return errors.New("site policy: byoc: " + reason)
		}
	}
	if err := job.CheckCode(m, code); err != nil {
		return err
	}
	allow := p.cfg.Components
	if allow == nil {
		allow = components.Builtins()
	}
	c := components.Job{Trainer: m.Trainer.Kind, Workflow: m.Workflow, ScriptSHA256: m.Trainer.ScriptSHA256}
	for _, f := range m.ResultFilters {
		c.Filters = append(c.Filters, f.Name)
	}
	if d := allow.Check(c); !d.Allowed {
		return errors.New(d.Reason)
	}
	if m.Trainer.Custom() && p.cfg.StartCode == nil {
		return errNoCodeRunner
	}
	return nil
}

// checkResources decides a job's resource spec against what the site
// offers and what other jobs hold of it: each GPU serves one job at a time.
func (p *Participant) checkResources(m *job.Manifest, jobID string) error {
	r := m.Resources
	if r == nil {
		return nil
	}
	inUse := 0
	for id, n := range p.gpus {
		if id != jobID { // a job joined again keeps its own
			inUse += n
		}
	}
	if d := p.cfg.Resources.Admit(*r, inUse); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}

// checkAggregation decides, by the site's local/resources.json, whether it
// may be one of a swarm job's aggregators, as the job names them: its
// aggregators list, or without one every site of the job. A site that does
// not aggregate refuses a job naming it (the site decides, not the
// server); a job placed on attested aggregation hosts names no site.
func (p *Participant) checkAggregation(m *job.Manifest) error {
	if m.Workflow != job.WorkflowSwarm || m.Attested() {
		return nil
	}
	named := len(m.Aggregators) == 0 || slices.Contains(m.Aggregators, p.cfg.Self.Name)
	if d := p.cfg.Resources.AdmitAggregation(named); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}

// JobChecker is one of the site's checker plugins (plugins/checker's
// Client, pinned by hash in local/components.json): it sees a job's whole
// configuration before anything of it is built at the site, and may
// refuse it with a reason (FLARE's BEFORE_BUILD_COMPONENT check and its
// UnsafeComponentError). An error (the plugin crashed, hung, or answered
// outside its contract) refuses the job too: a check that did not happen
// passes nothing.
type JobChecker struct {
	Name  string
	Check func(ctx context.Context, j CheckedJob) (allowed bool, reason string, err error)
}

// CheckedJob is what a checker sees of a job: the signed manifest's exact
// bytes, its code, who submitted it (with the role this site's
// authentication gave them) and what the site parsed of it.
type CheckedJob struct {
	JobID                                  string
	Submitter, SubmitterOrg, SubmitterRole string
	Workflow, Trainer                      string
	Manifest                               []byte
	Code                                   []*hearthv1.JobFile
}

// admitting is a job being admitted off the actor: its work's context,
// and whether the server left the job meanwhile.
type admitting struct {
	ctx    context.Context
	cancel context.CancelFunc
	left   bool
}

// admitOffActor registers work on a job's admission off the actor, bound
// by timeout; an error when such work runs for the job already, or as
// much as the site runs at once. done must be called, on the actor, when
// it ends: it says whether the job is still wanted.
func (p *Participant) admitOffActor(jobID string, timeout time.Duration) (a *admitting, done func() (wanted bool), err error) {
	if p.admitting[jobID] != nil {
		return nil, nil, errors.New("it is being admitted here already")
	}
	select {
	case p.offActor <- struct{}{}:
	default:
		return nil, nil, fmt.Errorf("%d other jobs are being admitted here (checked, or their trainers starting); try again shortly", maxOffActor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	a = &admitting{ctx: ctx, cancel: cancel}
	p.admitting[jobID] = a
	return a, func() bool {
		cancel()
		<-p.offActor
		if p.admitting[jobID] == a {
			delete(p.admitting, jobID)
		}
		return !a.left
	}, nil
}

// leave stops the work: the server left the job.
func (a *admitting) leave() {
	a.left = true
	a.cancel()
}

// checkTimeout bounds all of a job's checkers together, as the
// participant waits for them; each plugin's own deadline is shorter.
const checkTimeout = time.Minute

// checked is the checkers' verdict, back on the actor: "" passed, else
// the refusal.
type checked struct{ refusal string }

// runCheckers runs the site's checkers on a job, off the actor, in order
// until one refuses; then it audits the verdict and refuses the job, or
// goes on with then. It answers the server itself (a pre-flight's answer
// signed) and returns nil.
func (p *Participant) runCheckers(ctx actor.Context, m *hearthv1.JoinJob, v *job.Verified, who pki.Identity, from bridge.Origin, received string, dry bool, then func() any) any {
	cj := CheckedJob{JobID: m.JobId, Submitter: v.Submitter.Name, SubmitterOrg: v.Submitter.Org, SubmitterRole: string(who.Role),
		Workflow: v.Manifest.Workflow, Trainer: v.Manifest.Trainer.Kind, Manifest: m.Job.GetManifest(), Code: m.Job.GetCode()}
	key := m.JobId
	if dry { // a pre-flight names no job id: its signed job is what is being checked
		key = fmt.Sprintf("preflight %x", job.Hash(m.Job))
	}
	a, done, err := p.admitOffActor(key, checkTimeout)
	if err != nil {
		return p.refuseJob(m.JobId, from, received, err.Error(), dry)
	}
	checkers := p.cfg.Checkers
	reply, system := ctx.Sender(), ctx.ActorSystem()
	future := actor.NewFuture(system, checkTimeout+5*time.Second)
	go func() { // its context ends before the future does
		cctx := a.ctx
		verdict := ""
		for _, c := range checkers {
			allowed, reason, err := c.Check(cctx, cj)
			if err != nil {
				verdict = fmt.Sprintf("checker %s: no verdict, so refused: %v", c.Name, err)
				break
			}
			if !allowed {
				verdict = fmt.Sprintf("checker %s: %s", c.Name, reason)
				break
			}
		}
		system.Root.Send(future.PID(), &checked{refusal: verdict})
	}()
	ctx.ReenterAfter(future, func(res any, err error) {
		wanted := done()
		c, _ := res.(*checked)
		var out any
		switch {
		case !wanted:
			out = p.refuseJob(m.JobId, from, received, "the server left the job while its checkers ran", dry)
		case err != nil:
			out = p.refuseJob(m.JobId, from, received, fmt.Sprintf("checkers: no verdict within %v, so refused", checkTimeout), dry)
		case c == nil:
			out = p.refuseJob(m.JobId, from, received, fmt.Sprintf("checkers answered %T, so refused", res), dry)
		case c.refusal != "":
			out = p.refuseJob(m.JobId, from, received, c.refusal, dry)
		default:
			names := ""
			for i, c := range checkers {
				if i > 0 {
					names += ","
				}
				names += c.Name
			}
			p.audit(auditor.Event{Action: joinAction(dry, "checked"), JobID: m.JobId, PeerEvent: received, Detail: map[string]string{"checkers": names}})
			if out = then(); out == nil { // answered once the job's own trainer started (jobcode.go)
				return
			}
		}
		if dry {
			out = p.signPreflight(out, m.Job)
		}
		ctx.Send(reply, out)
	})
	return nil
}
