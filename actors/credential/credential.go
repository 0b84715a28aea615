// Package credential carries an admin's per-site credentials (a directory
// password, an OIDC token) from the admin console to the sites that check
// them, so that the server in between can neither read them nor move one
// onto another command.
//
// The console fetches each site's credential key (an X25519 key the site
// binds to its certificate under the scope sealing.Credentials) through the
// server, verifies the binding against the project root, and seals one
// Credential per site to it with Seal, signed with the admin's certificate
// key: anyone may seal to a site's key, so the signature is what tells the
// site the admin made it, not the server trying passwords in their name. A Credential names what it is for:
// the site, the command, the requester, the job (its id, or for a submit
// the hash of the signed job), a fresh random command id and a not-after a
// few minutes ahead. The site opens it with its Opener, which checks every
// one of those against what the site itself knows of the command and
// accepts each command id once. The site's key lives in its memory only: a
// credential sealed before a restart no longer opens after it.
package credential

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// sealContext is the associated data every credential is sealed under; a
// new format gets a new string.
const sealContext = "hearth.credential.v1"

// Bounds on what crosses the wire.
const (
	// MaxLifetime is the longest a credential may be valid for: long
	// enough for a job to reach its sites, short enough that a captured
	// one is soon worthless.
	MaxLifetime = 10 * time.Minute
	// MaxSealed bounds a sealed credential before it is opened.
	MaxSealed = 16 << 10
	// MaxSecret bounds a password or token.
	MaxSecret = 12 << 10
	// maxSeen bounds the command ids an Opener remembers.
	maxSeen       = 1 << 16
	commandIDSize = 16
)

// Errors an Opener returns, each wrapped with the detail.
var (
	// ErrNone is a command that carries no credential for this site.
	ErrNone = errors.New("no credential for this site")
	// ErrInvalid is a credential that does not open or is malformed.
	ErrInvalid = errors.New("credential invalid")
	// ErrMisbound is a credential made for another site, command,
	// requester or job.
	ErrMisbound = errors.New("credential bound to another command")
	// ErrExpired is a credential past its not-after (or one valid for
	// longer than MaxLifetime).
	ErrExpired = errors.New("credential expired")
	// ErrReplayed is a command id seen before.
	ErrReplayed = errors.New("credential used before")
	// ErrNotTheRequesters is a credential the requester did not sign.
	ErrNotTheRequesters = errors.New("credential not signed by the requester")
)

// Binding is what a credential is for. The console fills it in when it
// seals; the site fills it in from what it knows of the command in hand and
// Open compares the two.
type Binding struct {
	Site      string
	Command   authn.Command
	Requester string // the admin's certificate name
	JobID     string // commands on an existing job
	JobHash   []byte // submit: job.Hash of the signed job
}

// signingContext prefixes what a credential's signature covers.
const signingContext = sealContext + "\x00"

// Seal seals c for b.Site to key (a verified credential key of that
// site), signed with signer (the requester's certificate key), valid from
// now for lifetime (at most MaxLifetime).
func Seal(key *ecdh.PublicKey, c authn.Credential, b Binding, signer ed25519.PrivateKey, now time.Time, lifetime time.Duration) (*hearthv1.SealedCredential, error) {
	switch {
	case lifetime <= 0 || lifetime > MaxLifetime:
		return nil, fmt.Errorf("seal credential: lifetime %v, want up to %v", lifetime, MaxLifetime)
	case len(c.Secret) == 0 || len(c.Secret) > MaxSecret:
		return nil, fmt.Errorf("seal credential: a secret of %d bytes, want 1 to %d", len(c.Secret), MaxSecret)
	case c.Kind != authn.CredentialPassword && c.Kind != authn.CredentialToken:
		return nil, fmt.Errorf("seal credential: kind %q, want %s or %s", c.Kind, authn.CredentialPassword, authn.CredentialToken)
	}
	id := make([]byte, commandIDSize)
	rand.Read(id) // never fails
	body, err := proto.Marshal(&hearthv1.Credential{Kind: c.Kind, User: c.User, Secret: c.Secret, Site: b.Site,
		Command: string(b.Command), Requester: b.Requester, JobId: b.JobID, JobSha256: b.JobHash, CommandId: id,
		NotAfterUnixNano: now.Add(lifetime).UnixNano()})
	if err != nil {
		return nil, fmt.Errorf("seal credential: %w", err)
	}
	if len(signer) != ed25519.PrivateKeySize {
		return nil, errors.New("seal credential: no signing key")
	}
	signed, err := proto.Marshal(&hearthv1.SignedCredential{Credential: body, Signature: ed25519.Sign(signer, append([]byte(signingContext), body...))})
	if err != nil {
		return nil, fmt.Errorf("seal credential: %w", err)
	}
	sb, err := envelope.Seal([]byte(sealContext), signed, key)
	if err != nil {
		return nil, fmt.Errorf("seal credential for %s: %w", b.Site, err)
	}
	return &hearthv1.SealedCredential{Site: b.Site, Sealed: sb}, nil
}

// Opener opens the credentials sealed to one site's key. It is safe for
// concurrent use.
type Opener struct {
	site string
	key  *ecdh.PrivateKey

	seen *Once // command ids
}

// NewOpener opens credentials for site with key, the private half of the
// site's credential key.
func NewOpener(site string, key *ecdh.PrivateKey) *Opener {
	return &Opener{site: site, key: key, seen: NewOnce(maxSeen)}
}

// Public is the credential key's public half, for the site to bind (see
// sealing.BindKey with sealing.Credentials).
func (o *Opener) Public() *ecdh.PublicKey { return o.key.PublicKey() }

// Open checks sc against want (the command in hand, as the site knows it)
// and requester (the public key of the certificate that signed the
// command) at now, and returns the credential in it. Every check comes
// before the command id is recorded, so a refused credential does not burn
// the id.
func (o *Opener) Open(sc *hearthv1.SealedCredential, want Binding, requester ed25519.PublicKey, now time.Time) (*authn.Credential, error) {
	if sc == nil || sc.Sealed == nil {
		return nil, ErrNone
	}
	if sc.Site != o.site {
		return nil, fmt.Errorf("%w: sealed for %q, this is %s", ErrMisbound, envelope.Clip(sc.Site, 64), o.site)
	}
	if n := proto.Size(sc.Sealed); n > MaxSealed {
		return nil, fmt.Errorf("%w: %d bytes sealed, more than %d", ErrInvalid, n, MaxSealed)
	}
	opened, err := envelope.Unseal([]byte(sealContext), sc.Sealed, o.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (sealed before this site restarted, or not to it)", ErrInvalid, err)
	}
	var signed hearthv1.SignedCredential
	if err := proto.Unmarshal(opened, &signed); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(requester) != ed25519.PublicKeySize || len(signed.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(requester, append([]byte(signingContext), signed.Credential...), signed.Signature) {
		return nil, fmt.Errorf("%w: its signature is not by %s's certificate key", ErrNotTheRequesters, want.Requester)
	}
	var c hearthv1.Credential
	if err := proto.Unmarshal(signed.Credential, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch {
	case c.Kind != authn.CredentialPassword && c.Kind != authn.CredentialToken:
		return nil, fmt.Errorf("%w: kind %q", ErrInvalid, envelope.Clip(c.Kind, 32))
	case len(c.Secret) == 0 || len(c.Secret) > MaxSecret:
		return nil, fmt.Errorf("%w: a secret of %d bytes", ErrInvalid, len(c.Secret))
	case len(c.CommandId) != commandIDSize:
		return nil, fmt.Errorf("%w: a command id of %d bytes", ErrInvalid, len(c.CommandId))
	case c.Site != o.site:
		return nil, fmt.Errorf("%w: made for site %q", ErrMisbound, envelope.Clip(c.Site, 64))
	case c.Command != string(want.Command):
		return nil, fmt.Errorf("%w: made for the command %q, not %q", ErrMisbound, envelope.Clip(c.Command, 32), want.Command)
	case c.Requester != want.Requester:
		return nil, fmt.Errorf("%w: made for %q, the requester is %q", ErrMisbound, envelope.Clip(c.Requester, 64), want.Requester)
	case c.JobId != want.JobID:
		return nil, fmt.Errorf("%w: made for job %q, not %q", ErrMisbound, envelope.Clip(c.JobId, 64), want.JobID)
	case !bytes.Equal(c.JobSha256, want.JobHash):
		return nil, fmt.Errorf("%w: made for another signed job (its hash differs from this job's)", ErrMisbound)
	}
	notAfter := time.Unix(0, c.NotAfterUnixNano)
	switch {
	case now.After(notAfter):
		return nil, fmt.Errorf("%w: its not-after %s has passed", ErrExpired, notAfter.UTC().Format(time.RFC3339))
	case notAfter.Sub(now) > MaxLifetime:
		return nil, fmt.Errorf("%w: valid until %s, more than %v ahead", ErrExpired, notAfter.UTC().Format(time.RFC3339), MaxLifetime)
	}
	if err := o.use(string(c.CommandId), notAfter, now); err != nil {
		return nil, err
	}
	return &authn.Credential{Kind: c.Kind, User: c.User, Secret: c.Secret}, nil
}

// use records a command id until its not-after, refusing one seen before.
func (o *Opener) use(id string, notAfter, now time.Time) error {
	switch err := o.seen.Use(id, notAfter, now); {
	case errors.Is(err, ErrUsed):
		return ErrReplayed
	case err != nil:
		return fmt.Errorf("%w: %d credentials in flight, the most this site keeps", ErrInvalid, maxSeen)
	}
	return nil
}
