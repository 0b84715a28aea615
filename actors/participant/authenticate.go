package participant

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/siteanswer"
	"github.com/hearthfl/hearth/bus/bridge"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// authenticateTimeout bounds one authentication as the participant waits
// for it; the authenticator's own deadline is normally shorter.
const authenticateTimeout = 70 * time.Second

// authenticated is a gate's outcome, back in the actor.
type authenticated struct {
	as  *credential.Authenticated
	err error
}

// authenticateJoin checks the submitter of a verified job at the site's
// gate, off the actor (a directory may take seconds), and then admits the
// job for the role the site's mapping gave them, or refuses it. A
// credential that is not for this site, this submitter and this signed job
// never reaches the authenticator. It answers the server itself, and
// returns nil.
func (p *Participant) authenticateJoin(ctx actor.Context, m *hearthv1.JoinJob, v *job.Verified, from bridge.Origin, received string, dry bool) any {
	cmd := joinCommand(dry)
	// The console seals before the server names the job: the signed job's
	// hash is what the credential is bound to.
	binding := credential.Binding{Site: p.cfg.Self.Name, Command: cmd, Requester: v.Submitter.Name, JobHash: job.Hash(m.Job)}
	reply, system := ctx.Sender(), ctx.ActorSystem()
	future := actor.NewFuture(system, authenticateTimeout)
	go func() {
		actx, cancel := context.WithTimeout(context.Background(), authenticateTimeout)
		defer cancel()
		as, err := p.cfg.Gate.Check(actx, v.Submitter, v.SubmitterKey, m.Credential, binding, m.JobId, m.Job.Manifest)
		system.Root.Send(future.PID(), &authenticated{as: as, err: err})
	}()
	ctx.ReenterAfter(future, func(res any, err error) {
		a, _ := res.(*authenticated)
		if err == nil && a == nil {
			err = fmt.Errorf("authentication answered %T", res)
		}
		if err == nil {
			err = a.err
		}
		var out any
		if err != nil {
			out = p.refuseAuthentication(m.JobId, from, received, err, dry)
		} else {
			p.audit(auditor.Event{Action: "admin.authenticated", JobID: m.JobId, Peer: v.Submitter.Name, PeerEvent: received,
				Detail: a.as.AuditDetail(cmd)})
			out = p.admit(ctx, m, v, from, received, a.as.Who, dry)
		}
		if out == nil { // answered once the job's own trainer started (jobcode.go)
			return
		}
		if dry {
			out = p.signPreflight(out, m.Job)
		}
		ctx.Send(reply, out)
	})
	return nil
}

// refuseAuthentication refuses a join whose submitter the site's gate did
// not authenticate: the whole reason goes to the site's audit log, and the
// server (and through it the submitter) hears only its kind and where to
// find it, so that no directory names, groups or claims leave the site.
func (p *Participant) refuseAuthentication(jobID string, from bridge.Origin, received string, err error, dry bool) any {
	id := p.audit(auditor.Event{Action: joinAction(dry, "refused"), JobID: jobID, Peer: from.Sender.Name, PeerEvent: received,
		Detail: map[string]string{"reason": "authentication: " + err.Error()}})
	reason := fmt.Sprintf("authentication: %s (why: %s's audit log, event %s)", credential.Kind(err), p.cfg.Self.Name, id)
	p.cfg.Log.Warn("job refused", "job", jobID, "reason", reason, "preflight", dry)
	if dry {
		return &hearthv1.PreflightAnswer{Site: p.cfg.Self.Name, Reason: reason}
	}
	return failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%s refused job %s: %s", p.cfg.Self.Name, jobID, reason))
}

// signPreflight signs a pre-flight's answer for the admin who asked, so
// that the server relaying it cannot change it; a failure (the request was
// not the server's) passes as it is.
func (p *Participant) signPreflight(res any, sj *hearthv1.SignedJob) any {
	a, ok := res.(*hearthv1.PreflightAnswer)
	if !ok {
		return res
	}
	if p.cfg.Signer == nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, p.cfg.Self.Name+" cannot sign its answer")
	}
	signed, err := siteanswer.SignPreflight(a, p.cfg.Signer, job.Hash(sj))
	if err != nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	return signed
}

// credentialKey answers the server with this site's credential key, bound
// to its certificate; a site that authenticates nobody has none.
func (p *Participant) credentialKey(ctx actor.Context) {
	if _, ok := p.fromServer(ctx); !ok {
		return
	}
	if p.cfg.Gate == nil || p.cfg.Signer == nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NOT_FOUND, p.cfg.Self.Name+" authenticates no admins: it takes no credentials"))
		return
	}
	k, err := sealing.BindKey(p.cfg.Signer, sealing.Credentials, p.cfg.Gate.Opener.Public())
	if err != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error()))
		return
	}
	ctx.Respond(k)
}
