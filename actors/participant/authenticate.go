package participant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Authenticator is the site's own check of the person behind an admin
// command (plugins/authn's Site, which runs the site's pinned plugin).
type Authenticator interface {
	// Needs says whether the site authenticates cmd.
	Needs(cmd authn.Command) bool
	// Authenticate decides r; an error is "could not decide", on which the
	// site denies as well.
	Authenticate(ctx context.Context, r authn.Request) (authn.Decision, error)
}

// authenticateTimeout bounds one authentication as the participant waits
// for it; the authenticator's own deadline is normally shorter.
const authenticateTimeout = 70 * time.Second

// authenticated is an authentication's outcome, back in the actor.
type authenticated struct {
	decision authn.Decision
	err      error
}

// authenticateJoin checks the submitter of a verified job with the site's
// authenticator, off the actor (a directory may take seconds), and then
// admits the job for the role the site's mapping gave them, or refuses it.
// The credential is opened first: one that is not for this site, this
// submitter and this signed job never reaches the authenticator. It
// answers the server itself, and returns nil.
func (p *Participant) authenticateJoin(ctx actor.Context, m *hearthv1.JoinJob, v *job.Verified, from bridge.Origin, received string, dry bool) any {
	refuse := func(reason string) any { return p.refuseJob(m.JobId, from, received, "authentication: "+reason, dry) }
	cmd := joinCommand(dry)
	req := authn.Request{Site: p.cfg.Self.Name, Command: cmd, JobID: m.JobId, Manifest: m.Job.Manifest,
		Requester: authn.Requester{Name: v.Submitter.Name, Org: v.Submitter.Org, Role: string(v.Submitter.Role)}}
	cred, err := p.cfg.Credentials.Open(m.Credential, credential.Binding{Site: p.cfg.Self.Name, Command: cmd,
		Requester: v.Submitter.Name, JobHash: job.Hash(m.Job)}, p.cfg.Now())
	switch {
	case errors.Is(err, credential.ErrNone): // the authenticator says what it makes of no credential
	case err != nil:
		return refuse(err.Error())
	default:
		req.Credential = cred
	}
	reply, system := ctx.Sender(), ctx.ActorSystem()
	future := actor.NewFuture(system, authenticateTimeout)
	go func() {
		actx, cancel := context.WithTimeout(context.Background(), authenticateTimeout)
		defer cancel()
		d, err := p.cfg.Authn.Authenticate(actx, req)
		system.Root.Send(future.PID(), &authenticated{decision: d, err: err})
	}()
	ctx.ReenterAfter(future, func(res any, err error) {
		a, _ := res.(*authenticated)
		if err == nil && a == nil {
			err = fmt.Errorf("authentication answered %T", res)
		}
		var out any
		switch {
		case err != nil:
			out = refuse("could not decide: " + err.Error())
		case a.err != nil:
			out = refuse("could not decide: " + envelope.Clip(a.err.Error(), 256))
		case !a.decision.Authenticated:
			out = refuse("denied: " + envelope.Clip(a.decision.Reason, 256))
		case !validRole(a.decision.Role):
			out = refuse(fmt.Sprintf("denied: the authenticator mapped %s to no usable role (%q)", v.Submitter.Name, envelope.Clip(a.decision.Role, 64)))
		default:
			p.audit(auditor.Event{Action: "admin.authenticated", JobID: m.JobId, Peer: v.Submitter.Name, PeerEvent: received,
				Detail: map[string]string{"command": string(cmd), "subject": envelope.Clip(a.decision.Subject, 256),
					"groups": envelope.Clip(strings.Join(a.decision.Groups, ","), 512), "role": a.decision.Role}})
			who := v.Submitter
			who.Role = pki.Role(a.decision.Role)
			out = p.admit(ctx, m, v, from, received, who, dry)
		}
		ctx.Send(reply, out)
	})
	return nil
}

// validRole is a role name a policy could list: short, lower-case letters,
// digits, '_' and '-'.
func validRole(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// credentialKey answers the server with this site's credential key, bound
// to its certificate; a site that authenticates nobody has none.
func (p *Participant) credentialKey(ctx actor.Context) {
	if _, ok := p.fromServer(ctx); !ok {
		return
	}
	if p.cfg.Credentials == nil || p.cfg.Signer == nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NOT_FOUND, p.cfg.Self.Name+" authenticates no admins: it takes no credentials"))
		return
	}
	k, err := sealing.BindKey(p.cfg.Signer, sealing.Credentials, p.cfg.Credentials.Public())
	if err != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error()))
		return
	}
	ctx.Respond(k)
}
