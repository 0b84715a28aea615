package coordinator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// maxSignedAnswer bounds a site's signed pre-flight answer as relayed.
const maxSignedAnswer = 64 << 10

// preflightTimeout bounds how long the server waits for a site's
// pre-flight answer (an authentication may take seconds).
const preflightTimeout = 20 * time.Second

// preflight asks every site the job deploys to whether it would run it,
// and answers the admin with one row per site: what each site decided for
// itself, or why it could not be asked. Nothing is stored and nothing
// runs; the server's part (the request and each site's answer) is
// audited, as is each site's decision at the site.
func (c *Coordinator) preflight(ctx actor.Context, signed *hearthv1.SignedJob, m *job.Manifest, creds map[string]*hearthv1.SealedCredential, who pki.Identity) {
	targets := c.cfg.Sites
	if m.Sites[0] != job.AllSites {
		targets = m.Sites
	}
	asked := c.audit(auditor.Event{Action: "job.preflight", Peer: who.Name, Detail: map[string]string{"name": m.Name, "sites": strings.Join(targets, ",")}})
	report := &hearthv1.PreflightReport{}
	reply := ctx.Sender()
	done := func() {
		slices.SortFunc(report.Sites, func(a, b *hearthv1.PreflightAnswer) int { return cmp.Compare(a.Site, b.Site) })
		c.audit(auditor.Event{Action: "job.preflight.answered", Peer: who.Name, PeerEvent: asked,
			Detail: map[string]string{"answered": fmt.Sprint(len(report.Signed)), "not_asked": fmt.Sprint(len(report.Sites))}})
		ctx.Send(reply, report)
	}
	var ask []string
	for _, s := range targets {
		if c.cfg.Reachable != nil && !c.cfg.Reachable(s) {
			report.Sites = append(report.Sites, &hearthv1.PreflightAnswer{Site: s, Reason: "not connected to the hub"})
			continue
		}
		ask = append(ask, s)
	}
	c.askSites(ctx, ask, func(site string) proto.Message {
		return &hearthv1.Preflight{Job: signed, Credential: creds[site], AuditEvent: asked}
	}, preflightTimeout, func(site string, m proto.Message, why string) {
		switch a, ok := m.(*hearthv1.SignedPreflightAnswer); {
		case ok && proto.Size(a) <= maxSignedAnswer:
			report.Signed = append(report.Signed, a) // the console checks it is the site's
		case why != "":
			report.Sites = append(report.Sites, &hearthv1.PreflightAnswer{Site: site, Reason: why})
		default:
			report.Sites = append(report.Sites, &hearthv1.PreflightAnswer{Site: site, Reason: fmt.Sprintf("answered %T", m)})
		}
	}, done)
}
