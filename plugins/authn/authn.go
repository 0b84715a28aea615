// Package authn is the contract between a site and its authenticator: the
// plugin kind that lets each site check, with its own identity system
// (LDAP, OIDC, ...), the person behind an admin command before the site's
// authorization policy decides on it.
//
// The Go interface and its plain types are here. The go-plugin glue, the
// host side (a client that runs a pinned plugin binary) and the plugin
// side (Serve, for a plugin's one-line main) sit beside it; built-in
// authenticators are packages below this one (ldap, oidc), each shipped
// as its own plugin binary.
//
// An authenticator answers one of three things, as caddy's authenticators
// do: authenticated (Decision.Authenticated, with the identity provider's
// subject, its groups and the local role the site maps them to), denied
// (Decision.Authenticated false, with Decision.Reason), or could not
// decide (a non-nil error: the directory is down, the plugin crashed).
// The site denies in both of the last two cases, with the reason; only
// the audit log tells them apart.
package authn

import (
	"context"
	"fmt"
)

// Command is the admin command a site is asked to accept.
type Command string

// The commands a site authenticates. Job commands name a job; site
// commands concern the site itself.
const (
	CommandSubmit    Command = "submit"   // run a new job here (the site joins it)
	CommandAbort     Command = "abort"    // abort a job running here
	CommandDownload  Command = "download" // a job's results
	CommandStatus    Command = "status"   // a job's status
	CommandPreflight Command = "preflight"

	CommandSiteStatus    Command = "site.status"
	CommandSiteResources Command = "site.resources"
	CommandSiteLogs      Command = "site.logs"
	CommandSiteAudit     Command = "site.audit"
	CommandSiteShutdown  Command = "site.shutdown"
)

// DecidedAtSite says whether a site receives cmd and decides it: joining
// a job (submit), its dry run and the site commands. The server decides
// abort, download and status alone, so a site cannot authenticate them.
func (c Command) DecidedAtSite() bool {
	switch c {
	case CommandSubmit, CommandPreflight, CommandSiteStatus, CommandSiteResources, CommandSiteLogs, CommandSiteAudit, CommandSiteShutdown:
		return true
	}
	return false
}

// Requester is who asks, from their verified certificate: facts the site
// established itself, never claims relayed by the server.
type Requester struct {
	Name string // the certificate's common name
	Org  string // the certificate's organization
	Role string // the role the certificate carries
}

// Credential kinds.
const (
	CredentialPassword = "password" // a directory password (LDAP bind)
	CredentialToken    = "token"    // a bearer token (an OIDC ID token, a JWT)
)

// Credential is what the requester attached for this site, opened by the
// site (it travels sealed to the site's key, so the server never reads
// it). Secret is never logged.
type Credential struct {
	Kind   string // CredentialPassword or CredentialToken
	User   string // the directory user name, for passwords; empty for tokens
	Secret string // the password or the token
}

// Request is one authentication question.
type Request struct {
	// Site is the name of the site deciding: an OIDC token must be meant
	// for it (its audience).
	Site      string
	Command   Command
	Requester Requester
	// JobID names the job for job commands; empty otherwise.
	JobID string
	// Manifest is the job's signed manifest (its exact bytes), where the
	// command has one (submit, preflight); nil otherwise.
	Manifest []byte
	// Credential is nil when the requester attached none for this site.
	Credential *Credential
}

// Decision is an authenticator's answer when it could decide.
type Decision struct {
	// Authenticated is true when the credential proves the requester's
	// identity at this site; false is a denial, with Reason.
	Authenticated bool
	// Subject is the identity provider's name for the person (an LDAP DN,
	// an OIDC subject); Groups their groups there.
	Subject string
	Groups  []string
	// Role is the local role the site's mapping gives the groups: what
	// the site's authorization.json decides on, whatever role the
	// certificate carries.
	Role string
	// Reason says why it was denied (or, when authenticated, how).
	Reason string
}

// Authenticator is an identity check one site runs.
type Authenticator interface {
	// Configure hands the authenticator its section of the site's
	// policy (JSON, the plugin's own schema, including the mapping of
	// groups to roles) once, before any Authenticate. An error means the
	// authenticator cannot run; the site then denies every command with
	// that reason.
	Configure(ctx context.Context, config []byte) error
	// Authenticate decides r. A nil error with Authenticated false is a
	// denial; a non-nil error is "could not decide", which the site also
	// denies on.
	Authenticate(ctx context.Context, r Request) (Decision, error)
}

// MaxRole bounds a role name.
const MaxRole = 64

// ValidRole says what is wrong with a role an authenticator maps groups
// to, nil if nothing: a site's authorization policy lists roles by name
// (FLARE's files may name their own), so a role is 1 to MaxRole of the
// characters a-z, 0-9, '_' and '-'.
func ValidRole(r string) error {
	if r == "" || len(r) > MaxRole {
		return fmt.Errorf("a role of %d bytes, want 1 to %d", len(r), MaxRole)
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("role %q: only a-z, 0-9, '_' and '-'", r)
		}
	}
	return nil
}
