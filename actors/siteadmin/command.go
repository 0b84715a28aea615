// Package siteadmin is a site's own administration: the admin commands
// about the site itself (status, resources, logs, audit, shutdown), which
// the site decides and answers for itself. The server only forwards them:
// the admin signs each command (Sign), and the site checks the signature
// against the project root (Verify), authenticates the admin with its own
// identity system where it does (credential.Gate), decides by its own
// authorization policy, and only then does what is asked. There is no
// remote shell: logs and audit are read-only and bounded.
//
// Each command is decided as the FLARE command it stands for, so a FLARE
// policy's command entries and categories both apply: status is
// check_status (category view), resources report_resources and shutdown
// shutdown (operate), logs and audit tail (shell_commands: FLARE reads a
// site's files with its shell commands).
package siteadmin

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// signingContext prefixes what a site command's signature covers.
const signingContext = "hearth.site-command.v1\x00"

// Bounds.
const (
	// MaxLifetime is how long a signed command may be valid.
	MaxLifetime = 5 * time.Minute
	// MaxLines bounds the lines logs and audit answer with.
	MaxLines = 1000
	// maxLineBytes bounds one line of them, and maxAnswerBytes their sum.
	maxLineBytes   = 4 << 10
	maxAnswerBytes = 512 << 10
	maxCommand     = 1 << 10
	maxCertificate = 16 << 10
	nonceSize      = 16
)

// rights says which right of the site's authorization policy each command
// needs: the FLARE command it stands for.
var rights = map[authn.Command]string{
	authn.CommandSiteStatus:    "check_status",
	authn.CommandSiteResources: "report_resources",
	authn.CommandSiteLogs:      "tail",
	authn.CommandSiteAudit:     "tail",
	authn.CommandSiteShutdown:  "shutdown",
}

// Right is the authorization right cmd needs, "" for a command that is not
// a site command.
func Right(cmd authn.Command) string { return rights[cmd] }

// Sign makes an admin's signed command for site, valid for lifetime; the
// site seals its answer to replyKey (an X25519 public key the console made
// for this command).
func Sign(site string, cmd authn.Command, lines int64, replyKey *ecdh.PublicKey, cert *x509.Certificate, key ed25519.PrivateKey, now time.Time, lifetime time.Duration) (*hearthv1.SignedSiteCommand, error) {
	switch {
	case Right(cmd) == "":
		return nil, fmt.Errorf("%q is not a site command", cmd)
	case lifetime <= 0 || lifetime > MaxLifetime:
		return nil, fmt.Errorf("a site command valid for %v, want up to %v", lifetime, MaxLifetime)
	case lines < 0 || lines > MaxLines:
		return nil, fmt.Errorf("%d lines, want 0 to %d", lines, MaxLines)
	case replyKey == nil || replyKey.Curve() != ecdh.X25519():
		return nil, errors.New("a site command needs an X25519 reply key")
	}
	nonce := make([]byte, nonceSize)
	rand.Read(nonce) // never fails
	b, err := proto.Marshal(&hearthv1.SiteCommand{Site: site, Command: string(cmd), Lines: lines, Nonce: nonce, ReplyKey: replyKey.Bytes(),
		IssuedUnixNano: now.UnixNano(), NotAfterUnixNano: now.Add(lifetime).UnixNano()})
	if err != nil {
		return nil, err
	}
	return &hearthv1.SignedSiteCommand{Command: b, Signature: ed25519.Sign(key, append([]byte(signingContext), b...)), AdminCert: cert.Raw, To: site}, nil
}

// Hash is the SHA-256 of a signed command's bytes: what its credential is
// bound to.
func Hash(sc *hearthv1.SignedSiteCommand) []byte {
	h := sha256.Sum256(sc.GetCommand())
	return h[:]
}

// Verified is a signed site command that passed Verify.
type Verified struct {
	Command  *hearthv1.SiteCommand
	Admin    pki.Identity
	AdminKey ed25519.PublicKey // the admin's certificate key, which signed it
	NotAfter time.Time
}

// ClockSkew is how far an admin's clock may be ahead of a site's.
const ClockSkew = 30 * time.Second

// Verify checks a signed command for site at now: bounded sizes first, then
// the admin's certificate against trust, the signature over the command's
// bytes as they are, and only then the command itself: for this site, a
// known command, a nonce, a not-after ahead but not too far, issued after
// started (the site process's start: it remembers no nonce from before,
// so no allowance for clock skew there: an admin whose clock is behind
// tries again a moment later).
// Replays since are the caller's (the nonce).
func Verify(sc *hearthv1.SignedSiteCommand, trust *pki.Trust, site string, now, started time.Time) (*Verified, error) {
	switch {
	case sc == nil || len(sc.Command) == 0 || len(sc.Signature) != ed25519.SignatureSize || len(sc.AdminCert) == 0:
		return nil, fmt.Errorf("a site command needs the command, its signature and the admin's certificate")
	case len(sc.Command) > maxCommand:
		return nil, fmt.Errorf("a site command of %d bytes, more than %d", len(sc.Command), maxCommand)
	case len(sc.AdminCert) > maxCertificate:
		return nil, fmt.Errorf("an admin certificate of %d bytes, more than %d", len(sc.AdminCert), maxCertificate)
	}
	cert, err := x509.ParseCertificate(sc.AdminCert)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	admin, err := trust.VerifyKind(cert, now, pki.KindAdmin)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !ed25519.Verify(pub, append([]byte(signingContext), sc.Command...), sc.Signature) {
		return nil, fmt.Errorf("the signature of %s does not match the command (changed after signing, or not signed by them)", admin.Name)
	}
	var c hearthv1.SiteCommand
	if err := proto.Unmarshal(sc.Command, &c); err != nil {
		return nil, fmt.Errorf("site command: %w", err)
	}
	notAfter, issued := time.Unix(0, c.NotAfterUnixNano), time.Unix(0, c.IssuedUnixNano)
	switch {
	case c.Site != site:
		return nil, fmt.Errorf("a command for %q, this is %s", envelope.Clip(c.Site, 64), site)
	case Right(authn.Command(c.Command)) == "":
		return nil, fmt.Errorf("%q is not a site command", envelope.Clip(c.Command, 32))
	case len(c.ReplyKey) != 32:
		return nil, fmt.Errorf("a reply key of %d bytes, want an X25519 key", len(c.ReplyKey))
	case len(c.Nonce) != nonceSize:
		return nil, fmt.Errorf("a nonce of %d bytes, want %d", len(c.Nonce), nonceSize)
	case c.Lines < 0 || c.Lines > MaxLines:
		return nil, fmt.Errorf("%d lines, want 0 to %d", c.Lines, MaxLines)
	case now.After(notAfter):
		return nil, fmt.Errorf("the command expired at %s", notAfter.UTC().Format(time.RFC3339))
	case notAfter.Sub(now) > MaxLifetime:
		return nil, fmt.Errorf("the command is valid until %s, more than %v ahead", notAfter.UTC().Format(time.RFC3339), MaxLifetime)
	case issued.Before(started) || issued.After(now.Add(ClockSkew)) || notAfter.Sub(issued) > MaxLifetime:
		return nil, fmt.Errorf("the command was issued at %s, not since this site started at %s (or its times do not add up)",
			issued.UTC().Format(time.RFC3339), started.UTC().Format(time.RFC3339))
	}
	return &Verified{Command: &c, Admin: admin, AdminKey: pub, NotAfter: notAfter}, nil
}
