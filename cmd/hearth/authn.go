package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"crypto/ecdh"
	"crypto/rand"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/plugins/authn"
)

// authenticationFile is a site's own authentication policy in its kit's
// local/ folder (plugins/authn.Policy): which authenticator plugin it
// runs, pinned by hash, for which commands. A site without one
// authenticates admins by their certificates alone.
const authenticationFile = "authentication.json"

// openGate starts the site's authentication, if its kit's local/ has an
// authentication.json: the pinned plugin and a fresh credential key (in
// memory only). A plugin that is refused (its hash differs from the pin,
// it is missing) does not stop the site: it starts, audits why, and
// refuses every command that needs authentication with that reason. A
// policy that does not parse stops it. The returned function stops the
// plugin.
func openGate(ctx context.Context, n *node.Node, audit *auditor.Log) (*credential.Gate, func(), error) {
	path := n.Kit.PolicyPath(authenticationFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, func() {}, nil
	}
	state, err := n.Kit.StateDir()
	if err != nil {
		return nil, nil, err
	}
	site, err := authn.OpenSite(ctx, authn.SiteConfig{File: path, KitDir: n.Kit.Dir, WorkDir: state,
		Logger: n.Log().With("component", "authn")})
	if err != nil {
		return nil, nil, fmt.Errorf("site authentication: %w", err)
	}
	if err := site.Err(); err != nil {
		if _, aerr := audit.Append(auditor.Event{Action: "authn.plugin.refused", Detail: map[string]string{"reason": err.Error()}}); aerr != nil {
			n.Log().Error("audit append failed", "err", aerr)
		}
	}
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		site.Close()
		return nil, nil, fmt.Errorf("credential key: %w", err)
	}
	gate := credential.NewGate(siteAuthenticator{site}, credential.NewOpener(n.Identity.Name, key))
	return gate, func() { site.Close() }, nil
}

// siteAuthenticator is the site's authentication (plugins/authn.Site) as
// the gate asks it.
type siteAuthenticator struct{ s *authn.Site }

func (a siteAuthenticator) Needs(cmd authn.Command) bool { return a.s.Policy().Requires(cmd) }

// Authenticate turns the site's outcome into a decision, or an error when
// it could not decide (the plugin failed, hung, or was refused).
func (a siteAuthenticator) Authenticate(ctx context.Context, r authn.Request) (authn.Decision, error) {
	o := a.s.Authenticate(ctx, r)
	switch o.Verdict {
	case authn.VerdictAuthenticated:
		return o.Decision, nil
	case authn.VerdictDenied:
		d := o.Decision
		d.Authenticated, d.Reason = false, strings.TrimPrefix(o.Reason, "denied: ")
		return d, nil
	}
	return authn.Decision{}, errors.New(o.Reason)
}
