package siteadmin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/siteanswer"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Recorder appends to the site's audit log; *auditor.Log is one.
type Recorder interface {
	Append(auditor.Event) (auditor.Record, error)
}

// Authorizer decides by the site's own policy; authz.Site is one.
type Authorizer interface {
	Allow(right string, requester pki.Identity, submitter *pki.Identity) (allowed bool, reason string)
}

// Site is what the commands read and do: the site's own facts, provided
// by the process that runs it.
type Site struct {
	Status    func(ctx context.Context) (facts map[string]string, jobs []string)
	Resources func() map[string]string
	// Logs and Audit are the newest n lines of the site's log and of its
	// audit log, oldest first.
	Logs  func(n int) []string
	Audit func(n int) ([]string, error)
	// Shutdown stops the site, gracefully; called once the answer is sent.
	Shutdown func()
}

// Config is what the actor needs.
type Config struct {
	Self   pki.Identity
	Trust  *pki.Trust
	Policy Authorizer
	Gate   *credential.Gate // nil: the site authenticates nobody beyond certificates
	Signer sealing.Signer   // the site's certificate key: it signs its answers
	Audit  Recorder
	Site   Site
	Log    *slog.Logger
	Now    func() time.Time
	// Started is when the site process started (default: New's time):
	// commands signed before it are refused.
	Started time.Time
}

// Actor answers site commands. Create it with New.
type Actor struct {
	cfg Config

	seen *credential.Once // nonces run
}

// New checks cfg and makes the actor.
func New(cfg Config) (*Actor, error) {
	if cfg.Trust == nil || cfg.Policy == nil || cfg.Audit == nil || cfg.Signer == nil {
		return nil, errors.New("siteadmin: trust, policy, audit and signer are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Started.IsZero() {
		cfg.Started = cfg.Now()
	}
	return &Actor{cfg: cfg, seen: credential.NewOnce(maxSeen)}, nil
}

// Props makes the actor's props.
func (a *Actor) Props() *actor.Props { return actor.PropsFromProducer(func() actor.Actor { return a }) }

// Messages are the types the actor handles, for bridge routes.
func Messages() []proto.Message { return []proto.Message{&hearthv1.SignedSiteCommand{}} }

// maxSeen bounds the nonces remembered.
const maxSeen = 1 << 14

// commandTimeout bounds a command's work at the site: authentication
// included, beyond the longest deadline a site may give its authenticator
// (plugins/authn.MaxTimeout), so that a plugin that hangs meets its own
// deadline first and is killed and restarted.
const commandTimeout = authn.MaxTimeout + 10*time.Second

// done is a command's outcome, back in the actor.
type done struct{ answer proto.Message }

// Receive is the actor's message loop.
func (a *Actor) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*hearthv1.SignedSiteCommand); ok {
		a.command(ctx, m)
	}
}

// command checks a signed command in order (from the server, signed by a
// current admin, for this site, fresh, not seen before), then off the
// actor authenticates the admin at the site's gate, decides by the site's
// policy for the role the gate mapped them to, and does what is asked.
// Every refusal is audited with its reason.
func (a *Actor) command(ctx actor.Context, m *hearthv1.SignedSiteCommand) {
	o, ok := bridge.OriginOf(ctx)
	if !ok || o.Sender.Kind != pki.KindServer {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, "site commands come through the server"))
		return
	}
	now := a.cfg.Now()
	v, err := Verify(m, a.cfg.Trust, a.cfg.Self.Name, now, a.cfg.Started)
	if err != nil {
		a.audit(auditor.Event{Action: "site.command.refused", Peer: o.Sender.Name, Detail: map[string]string{"reason": err.Error()}})
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, a.cfg.Self.Name+" refused a site command: "+err.Error()))
		return
	}
	cmd := authn.Command(v.Command.Command)
	received := a.audit(auditor.Event{Action: "site.command", Peer: v.Admin.Name, Detail: map[string]string{"command": string(cmd)}})
	refuse := func(reason string) proto.Message {
		a.audit(auditor.Event{Action: "site.command.refused", Peer: v.Admin.Name, PeerEvent: received,
			Detail: map[string]string{"command": string(cmd), "reason": reason}})
		return failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, fmt.Sprintf("%s refused %s: %s", a.cfg.Self.Name, cmd, reason))
	}
	if err := a.use(string(v.Command.Nonce), v.NotAfter, now); err != nil {
		ctx.Respond(refuse(err.Error()))
		return
	}
	reply, system := ctx.Sender(), ctx.ActorSystem()
	future := actor.NewFuture(system, commandTimeout+time.Second)
	go func() {
		cctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		system.Root.Send(future.PID(), &done{answer: a.decide(cctx, m, v, cmd, received, refuse)})
	}()
	ctx.ReenterAfter(future, func(res any, err error) {
		d, _ := res.(*done)
		if err == nil && d == nil {
			err = fmt.Errorf("answered %T", res)
		}
		if err != nil {
			ctx.Send(reply, refuse(err.Error()))
			return
		}
		ctx.Send(reply, d.answer)
		if _, ok := d.answer.(*hearthv1.SealedSiteAnswer); ok && cmd == authn.CommandSiteShutdown && a.cfg.Site.Shutdown != nil {
			a.cfg.Log.Warn("shutting down at an admin's command", "admin", v.Admin.Name)
			time.AfterFunc(500*time.Millisecond, a.cfg.Site.Shutdown) // the answer leaves first
		}
	})
}

// decide authenticates and authorizes a verified command and runs it.
func (a *Actor) decide(ctx context.Context, m *hearthv1.SignedSiteCommand, v *Verified, cmd authn.Command, received string, refuse func(string) proto.Message) proto.Message {
	who := v.Admin
	if a.cfg.Gate.Needs(cmd) {
		as, err := a.cfg.Gate.Check(ctx, v.Admin, v.AdminKey, m.Credential, credential.Binding{Site: a.cfg.Self.Name, Command: cmd, Requester: v.Admin.Name, JobHash: Hash(m)}, "", nil)
		if err != nil { // the detail stays in the site's audit log
			id := a.audit(auditor.Event{Action: "site.command.refused", Peer: v.Admin.Name, PeerEvent: received,
				Detail: map[string]string{"command": string(cmd), "reason": "authentication: " + err.Error()}})
			return failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, fmt.Sprintf("%s refused %s: authentication: %s (why: its audit log, event %s)",
				a.cfg.Self.Name, cmd, credential.Kind(err), id))
		}
		a.audit(auditor.Event{Action: "admin.authenticated", Peer: v.Admin.Name, PeerEvent: received, Detail: as.AuditDetail(cmd)})
		who = as.Who
	}
	if ok, reason := a.cfg.Policy.Allow(Right(cmd), who, nil); !ok {
		return refuse("site policy: " + reason)
	}
	res := &hearthv1.SiteCommandResult{Site: a.cfg.Self.Name, Command: string(cmd)}
	lines := int(v.Command.Lines)
	if lines == 0 {
		lines = 100
	}
	s := a.cfg.Site
	switch cmd {
	case authn.CommandSiteStatus:
		if s.Status != nil {
			res.Facts, res.Jobs = s.Status(ctx)
		}
	case authn.CommandSiteResources:
		if s.Resources != nil {
			res.Facts = s.Resources()
		}
	case authn.CommandSiteLogs:
		if s.Logs == nil {
			return refuse("this site keeps no log to read")
		}
		res.Lines = bound(s.Logs(lines))
	case authn.CommandSiteAudit:
		if s.Audit == nil {
			return refuse("this site has no audit log to read")
		}
		got, err := s.Audit(lines)
		if err != nil {
			return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, "audit log: "+err.Error())
		}
		res.Lines = bound(got)
	case authn.CommandSiteShutdown:
		if s.Shutdown == nil {
			return refuse("this site cannot be shut down remotely")
		}
	}
	sealed, err := siteanswer.SealCommandAnswer(res, a.cfg.Signer, Hash(m), v.Command.ReplyKey)
	if err != nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	a.audit(auditor.Event{Action: "site.command.done", Peer: v.Admin.Name, PeerEvent: received,
		Detail: map[string]string{"command": string(cmd), "role": string(who.Role), "lines": fmt.Sprint(len(res.Lines))}})
	return sealed
}

// bound clips each line and keeps the newest that fit the answer.
func bound(lines []string) []string {
	if len(lines) > MaxLines {
		lines = lines[len(lines)-MaxLines:]
	}
	out := make([]string, len(lines))
	total := 0
	i := len(lines) - 1
	for ; i >= 0; i-- {
		l := envelope.Clip(lines[i], maxLineBytes)
		if total+len(l) > maxAnswerBytes {
			break
		}
		total += len(l)
		out[i] = l
	}
	return out[i+1:]
}

// use records a nonce until its not-after, refusing one seen before.
func (a *Actor) use(nonce string, notAfter, now time.Time) error {
	switch err := a.seen.Use(nonce, notAfter, now); {
	case errors.Is(err, credential.ErrUsed):
		return errors.New("this signed command ran here before")
	case err != nil:
		return fmt.Errorf("%d site commands in flight, the most this site keeps", maxSeen)
	}
	return nil
}

func (a *Actor) audit(e auditor.Event) string {
	r, err := a.cfg.Audit.Append(e)
	if err != nil {
		a.cfg.Log.Error("audit append failed", "action", e.Action, "err", err)
		return ""
	}
	return r.ID
}

func failure(code hearthv1.FailureCode, msg string) *hearthv1.Failure {
	return &hearthv1.Failure{Kind: code, Message: msg}
}
