package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/hearthfl/hearth/plugins"
)

// Verdict is what a site concludes about one command's requester.
type Verdict uint8

// The verdicts. The zero value is VerdictUndecided, which denies.
const (
	// VerdictUndecided: the authenticator could not decide (its plugin
	// failed, hung, is restarting or could not be loaded, or it answered
	// an error). The site denies.
	VerdictUndecided Verdict = iota
	// VerdictDenied: the authenticator decided the requester is not who
	// they claim, or the site refused its answer (no credential, no
	// role). The site denies.
	VerdictDenied
	// VerdictAuthenticated: the authenticator proved the requester's
	// identity and mapped it to a local role.
	VerdictAuthenticated
	// VerdictNotRequired: the site's policy does not authenticate this
	// command; authorization decides on the certificate alone.
	VerdictNotRequired
)

// String is the verdict's name for logs and audit records.
func (v Verdict) String() string {
	switch v {
	case VerdictDenied:
		return "denied"
	case VerdictAuthenticated:
		return "authenticated"
	case VerdictNotRequired:
		return "not_required"
	}
	return "undecided"
}

// Outcome is a site's answer to one authentication request. It always
// carries a reason; only VerdictAuthenticated and VerdictNotRequired let
// the command go on to authorization.
type Outcome struct {
	Verdict Verdict
	// Decision is the authenticator's decision, when it made one.
	Decision Decision
	// Reason says why, bounded in length, for the site's log and audit
	// record; it can name the plugin's path and its errors, so what the
	// requester is told is the caller's choice.
	Reason string
	// Err is the failure behind VerdictUndecided.
	Err error
}

// Allowed reports whether the command may go on to authorization.
func (o Outcome) Allowed() bool {
	return o.Verdict == VerdictAuthenticated || o.Verdict == VerdictNotRequired
}

// maxReason bounds an Outcome's reason.
const maxReason = 1024

// SiteConfig is what OpenSite needs.
type SiteConfig struct {
	// File is the site's policy, normally its kit's
	// local/authentication.json.
	File string
	// KitDir is the kit's folder, against which a relative plugin path
	// is resolved.
	KitDir string
	// WorkDir is where the plugin loader stages its private copy of the
	// binary; "" means the system's temporary folder.
	WorkDir string
	// Logger receives the site's and the plugin's logs; nil discards
	// them.
	Logger *slog.Logger
}

// Validate reports what is missing in c.
func (c *SiteConfig) Validate() error {
	if c.File == "" {
		return errors.New("authn: site config: no policy file")
	}
	return nil
}

// Site is a site's authentication as its policy configures it: the
// pinned authenticator plugin, run under the plugin loader's controls,
// and the commands it must approve. It fails closed: any failure of the
// plugin is VerdictUndecided, which denies, with the failure as the
// reason. It is safe for concurrent use.
type Site struct {
	policy *Policy
	client *Client // nil when the plugin could not be loaded
	err    error   // why the plugin is not running after OpenSite, nil if it is
	log    *slog.Logger
}

// OpenSite parses the site's policy file, loads the pinned plugin (its
// hash checked, see plugins.Load), starts it and configures it.
//
// A policy that does not parse is an error (a *ParseError; a missing
// file wraps fs.ErrNotExist): the site's authentication is not
// configured as written, so the site should not start. Every other
// failure still returns a Site, with a nil error, so that the site can
// start and audit its refusals: when the plugin could not be loaded (its
// hash differs from the pin, it is missing or not a regular executable
// file), the Site refuses every command that needs authentication with
// that reason for its whole life; when it was loaded but could not be
// started or configured, calls try to start it again (with backoff) and
// are refused while it fails. Err reports either failure.
func OpenSite(ctx context.Context, cfg SiteConfig) (*Site, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	policy, err := ParsePolicyFile(cfg.File)
	if err != nil {
		return nil, err
	}
	s := &Site{policy: policy, log: log}
	pin, err := policy.Pin(cfg.KitDir)
	if err != nil {
		s.err = err
		log.Error("authentication plugin refused; every command that needs authentication will be refused", "err", err)
		return s, nil
	}
	client, err := NewClient(ClientConfig{Pin: pin, Timeout: policy.Timeout, WorkDir: cfg.WorkDir, Logger: log})
	if err != nil {
		s.err = err
		log.Error("authentication plugin refused; every command that needs authentication will be refused", "err", err)
		return s, nil
	}
	s.client = client
	if err := client.Configure(ctx, policy.Config); err != nil {
		s.err = err
		log.Error("authentication plugin did not start; calls will retry it", "err", err)
	}
	return s, nil
}

// Err is why the plugin was not running when the site opened, or nil. An
// error wrapping plugins.ErrChecksum (or another reason the binary was
// refused) is permanent; plugins.ErrStart is not (calls retry).
func (s *Site) Err() error { return s.err }

// Policy is the site's parsed policy.
func (s *Site) Policy() *Policy { return s.policy }

// Authenticate decides r at this site. The checks, in order: a command
// the policy does not list is VerdictNotRequired (an unknown command is
// VerdictUndecided); a plugin that could not be loaded is
// VerdictUndecided with that reason; a request without a credential is
// VerdictDenied without asking the plugin; the plugin's error is
// VerdictUndecided; its denial is VerdictDenied; an authentication
// without a role is VerdictDenied; else VerdictAuthenticated.
func (s *Site) Authenticate(ctx context.Context, r Request) Outcome {
	switch {
	case !r.Command.Known():
		return undecided(fmt.Errorf("authn: unknown command %q", plugins.Clip(string(r.Command), 64)))
	case !s.policy.Requires(r.Command):
		return Outcome{Verdict: VerdictNotRequired, Reason: fmt.Sprintf("this site does not authenticate %s", r.Command)}
	case s.client == nil:
		return undecided(s.err)
	case r.Credential == nil:
		return Outcome{Verdict: VerdictDenied, Reason: "denied: no credential attached for this site"}
	}
	d, err := s.client.Authenticate(ctx, r)
	if err != nil {
		s.log.Warn("authentication could not decide", "command", r.Command, "requester", r.Requester.Name, "err", err)
		return undecided(err)
	}
	switch {
	case !d.Authenticated:
		why := d.Reason
		if why == "" {
			why = "the authenticator gave no reason"
		}
		return Outcome{Verdict: VerdictDenied, Decision: d, Reason: plugins.Clip("denied: "+why, maxReason)}
	case strings.TrimSpace(d.Role) == "":
		return Outcome{Verdict: VerdictDenied, Decision: d, Reason: plugins.Clip(fmt.Sprintf("denied: %q authenticated, but their groups map to no role here", d.Subject), maxReason)}
	}
	return Outcome{
		Verdict:  VerdictAuthenticated,
		Decision: d,
		Reason:   plugins.Clip(fmt.Sprintf("authenticated as %q, role %q", d.Subject, d.Role), maxReason),
	}
}

// Close stops the plugin and removes its staged copy.
func (s *Site) Close() error {
	if s.client == nil {
		return nil
	}
	return s.client.Close()
}

// undecided is the outcome of a failure: deny, with the failure as the
// reason.
func undecided(err error) Outcome {
	if err == nil {
		err = errors.New("authn: no authenticator")
	}
	return Outcome{Verdict: VerdictUndecided, Reason: plugins.Clip("could not decide: "+err.Error(), maxReason), Err: err}
}
