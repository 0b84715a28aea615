package coordinator

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The server's part in credentials is a courier's: it asks the sites for
// their credential keys on an admin's behalf, and hands each site the
// credential sealed to it with the job. It cannot open them, and keeps
// them in memory only, until the site has been asked to join.

// credentials checks a submission's sealed credentials: at most one per
// project site, each of bounded size, by site.
func (c *Coordinator) credentials(list []*hearthv1.SealedCredential) (map[string]*hearthv1.SealedCredential, error) {
	if len(list) > len(c.cfg.Sites) {
		return nil, fmt.Errorf("%d credentials for a project of %d sites", len(list), len(c.cfg.Sites))
	}
	out := make(map[string]*hearthv1.SealedCredential, len(list))
	for _, sc := range list {
		switch site := sc.GetSite(); {
		case !slices.Contains(c.cfg.Sites, site):
			return nil, fmt.Errorf("a credential for %q, which is not a site of this project", envelope.Clip(site, 64))
		case out[site] != nil:
			return nil, fmt.Errorf("two credentials for %s", site)
		case proto.Size(sc) > credential.MaxSealed+256:
			return nil, fmt.Errorf("the credential for %s is %d bytes, more than %d", site, proto.Size(sc), credential.MaxSealed)
		}
		out[sc.Site] = sc
	}
	return out, nil
}

// credentialKeyTimeout bounds how long the server waits for a site's key.
const credentialKeyTimeout = 5 * time.Second

// credentialKeys asks each named site (every project site when none is
// named) for its credential key and answers the admin with the keys and
// why the others gave none. The console verifies each binding itself.
func (c *Coordinator) credentialKeys(ctx actor.Context, m *hearthv1.GetCredentialKeys) {
	if _, f := c.requester(ctx, "credential-keys", ""); f != nil {
		ctx.Respond(f)
		return
	}
	sites := m.Sites
	if len(sites) == 0 {
		sites = c.cfg.Sites
	}
	if len(sites) > len(c.cfg.Sites) {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%d sites asked for, the project has %d", len(sites), len(c.cfg.Sites))))
		return
	}
	out := &hearthv1.CredentialKeys{Missing: map[string]string{}}
	var ask []string
	for _, s := range sites {
		switch {
		case !slices.Contains(c.cfg.Sites, s):
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NOT_FOUND, fmt.Sprintf("%q is not a site of this project", envelope.Clip(s, 64))))
			return
		case slices.Contains(ask, s) || out.Missing[s] != "":
		case c.cfg.Reachable != nil && !c.cfg.Reachable(s):
			out.Missing[s] = "not connected"
		default:
			ask = append(ask, s)
		}
	}
	reply := ctx.Sender()
	c.askSites(ctx, ask, func(string) proto.Message { return &hearthv1.GetCredentialKey{} }, credentialKeyTimeout,
		func(site string, m proto.Message, why string) {
			switch k, ok := m.(*hearthv1.SealingKey); {
			case ok:
				out.Keys = append(out.Keys, k)
			case why != "":
				out.Missing[site] = why
			default:
				out.Missing[site] = fmt.Sprintf("answered %T", m)
			}
		},
		func() {
			if len(out.Missing) > 0 {
				c.audit(auditor.Event{Action: "credential-keys.missing", Detail: out.Missing})
			}
			ctx.Send(reply, out)
		})
}

// siteCommandTimeout bounds how long the server waits for a site to answer
// a site command (its authentication included).
const siteCommandTimeout = 75 * time.Second

// siteCommand forwards an admin's signed site command to its site and
// relays the answer. The site checks the signature, authenticates and
// authorizes for itself; the server checks only that an admin asks, for a
// site of the project.
func (c *Coordinator) siteCommand(ctx actor.Context, m *hearthv1.SignedSiteCommand) {
	who, f := c.requester(ctx, "site-command", "")
	if f != nil {
		ctx.Respond(f)
		return
	}
	if !slices.Contains(c.cfg.Sites, m.To) {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NOT_FOUND, fmt.Sprintf("%q is not a site of this project", envelope.Clip(m.To, 64))))
		return
	}
	if c.cfg.Reachable != nil && !c.cfg.Reachable(m.To) {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNAVAILABLE, m.To+" is not connected to the hub"))
		return
	}
	reply, site := ctx.Sender(), m.To
	future := ctx.RequestFuture(c.cfg.Bridge, &bridge.Ask{To: site, Msg: m, Timeout: siteCommandTimeout}, siteCommandTimeout+time.Second)
	ctx.ReenterAfter(future, func(res any, err error) {
		var out any
		switch r := res.(type) {
		case *bridge.Reply:
			out = r.Msg
		case *bridge.Failed:
			out = failureFrom(r.Err)
		default:
			if err == nil {
				err = fmt.Errorf("answered %T", res)
			}
			out = failure(hearthv1.FailureCode_FAILURE_CODE_UNAVAILABLE, err.Error())
		}
		if f, ok := out.(*hearthv1.Failure); ok {
			c.audit(auditor.Event{Action: "site.command.failed", Peer: who.Name, Detail: map[string]string{"site": site, "reason": envelope.Clip(f.Message, maxReason)}})
		}
		ctx.Send(reply, out)
	})
}

// failureFrom relays a site's refusal with its code; any other error is
// the site being unavailable.
func failureFrom(err error) *hearthv1.Failure {
	var remote *bridge.RemoteError
	if errors.As(err, &remote) {
		return failure(remote.Code, remote.Message)
	}
	return failure(hearthv1.FailureCode_FAILURE_CODE_UNAVAILABLE, err.Error())
}
