package credential

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Authenticator is a site's own check of the person behind an admin
// command (plugins/authn's Site, which runs the site's pinned plugin).
type Authenticator interface {
	// Needs says whether the site authenticates cmd.
	Needs(cmd authn.Command) bool
	// Authenticate decides r; an error is "could not decide", on which the
	// site denies as well.
	Authenticate(ctx context.Context, r authn.Request) (authn.Decision, error)
}

// Gate is a site's authentication of admin commands: it opens the
// credential attached for the command and has the site's authenticator
// decide on it. A nil *Gate, or one without an authenticator,
// authenticates nothing: the certificate's identity is all there is.
type Gate struct {
	Authn  Authenticator
	Opener *Opener
	Now    func() time.Time

	slots chan struct{} // bounds the authentications running at once
}

// MaxConcurrent bounds the authentications a gate runs at once: a flood of
// commands waits for a slot (or its deadline) instead of starting a
// plugin call each.
const MaxConcurrent = 8

// NewGate is a gate for a site's authenticator and credential opener.
func NewGate(a Authenticator, o *Opener) *Gate {
	return &Gate{Authn: a, Opener: o, Now: time.Now, slots: make(chan struct{}, MaxConcurrent)}
}

// Needs says whether the gate authenticates cmd.
func (g *Gate) Needs(cmd authn.Command) bool {
	return g != nil && g.Authn != nil && g.Authn.Needs(cmd)
}

// Authenticated is the gate's account of an authenticated command, for the
// site's audit.
type Authenticated struct {
	Who      pki.Identity // the requester, with the role the site mapped them to
	Decision authn.Decision
}

// Check authenticates who (from their verified certificate) for the
// command bound as b, with sc, the credential they attached, and the job
// (its id, known once the server has named it, and its manifest) where
// there is one. It blocks on the authenticator: call it off
// an actor. The error says why the site refuses, ready for its audit: a
// credential that does not open or is bound elsewhere, a denial, or
// "could not decide".
//
// requester is the public key of who's certificate: the credential must be
// signed with it.
func (g *Gate) Check(ctx context.Context, who pki.Identity, requester ed25519.PublicKey, sc *hearthv1.SealedCredential, b Binding, jobID string, manifest []byte) (*Authenticated, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	req := authn.Request{Site: b.Site, Command: b.Command, JobID: jobID, Manifest: manifest,
		Requester: authn.Requester{Name: who.Name, Org: who.Org, Role: string(who.Role)}}
	cred, err := g.Opener.Open(sc, b, requester, now())
	switch {
	case errors.Is(err, ErrNone): // the authenticator says what it makes of no credential
	case err != nil:
		return nil, err
	default:
		req.Credential = cred
	}
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
			defer func() { <-g.slots }()
		case <-ctx.Done():
			return nil, fmt.Errorf("could not decide: %d authentications already running here: %w", MaxConcurrent, ctx.Err())
		}
	}
	d, err := g.Authn.Authenticate(ctx, req)
	switch {
	case err != nil:
		return nil, fmt.Errorf("could not decide: %s", envelope.Clip(err.Error(), 256))
	case !d.Authenticated && req.Credential == nil:
		return nil, fmt.Errorf("%w: denied: %s", ErrNone, envelope.Clip(d.Reason, 256))
	case !d.Authenticated:
		return nil, fmt.Errorf("denied: %s", envelope.Clip(d.Reason, 256))
	case authn.ValidRole(d.Role) != nil:
		return nil, fmt.Errorf("denied: %s was mapped to no usable role: %v", who.Name, authn.ValidRole(envelope.Clip(d.Role, 64)))
	}
	d.Subject, d.Reason = envelope.Clip(d.Subject, 256), envelope.Clip(d.Reason, 256)
	if len(d.Groups) > 64 {
		d.Groups = d.Groups[:64]
	}
	who.Role = pki.Role(d.Role)
	return &Authenticated{Who: who, Decision: d}, nil
}

// Kind is what kind of refusal a gate's error is, for those outside the
// site: "denied", "could not decide", or the credential's fault
// ("credential expired", "credential bound to another command", ...),
// without the detail (directory names, groups, claims), which stays in the
// site's audit log.
func Kind(err error) string {
	for _, e := range []error{ErrNone, ErrInvalid, ErrMisbound, ErrExpired, ErrReplayed, ErrNotTheRequesters} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if s := err.Error(); strings.HasPrefix(s, "could not decide") {
		return "could not decide"
	}
	return "denied"
}

// AuditDetail is an authenticated command's audit detail.
func (a *Authenticated) AuditDetail(cmd authn.Command) map[string]string {
	return map[string]string{"command": string(cmd), "subject": a.Decision.Subject,
		"groups": envelope.Clip(strings.Join(a.Decision.Groups, ","), 512), "role": a.Decision.Role}
}
