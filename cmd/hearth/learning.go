package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/liveness"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies"
	"github.com/hearthfl/hearth/policies/authz"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// auditFile is the audit log's name in a kit's state folder.
const auditFile = "audit.jsonl"

// startLiveness runs the liveness responder and routes pings and notices
// to it.
func startLiveness(n *node.Node) {
	r := &liveness.Responder{Self: n.Identity.Name, Log: n.Log().With("component", "liveness")}
	pid := n.System.Root.Spawn(r.Props())
	n.Bridge.Route(protocol.Name(&hearthv1.Ping{}), pid)
	n.Bridge.Route(protocol.Name(&hearthv1.Notice{}), pid)
}

// openAudit opens the participant's audit log in its kit's state folder,
// signed with its own key.
func openAudit(n *node.Node) (*auditor.Log, error) {
	state, err := n.Kit.StateDir()
	if err != nil {
		return nil, err
	}
	return auditor.Open(filepath.Join(state, auditFile), n.Identity.Name, n.Kit.Key, time.Now)
}

// loadPolicy reads the kit's local authorization policy.
func loadPolicy(n *node.Node) (authz.Site, error) {
	p, err := authz.ParseFile(policies.Path(n.Kit.PolicyDir(), "authorization.json"))
	if err != nil {
		return authz.Site{}, err
	}
	return p.At(n.Identity.Org), nil
}

// startCoordinator runs the server's job coordinator, with its store in
// JetStream, and routes the admin requests to it.
func startCoordinator(ctx context.Context, n *node.Node, audit *auditor.Log) error {
	policy, err := loadPolicy(n)
	if err != nil {
		return err
	}
	store, err := coordinator.OpenStore(ctx, n.Conn)
	if err != nil {
		return err
	}
	var sites []string
	for _, p := range n.Kit.Participants {
		if p.Kind == pki.KindSite {
			sites = append(sites, p.Name)
		}
	}
	c, err := coordinator.New(coordinator.Config{Self: n.Identity, Trust: n.Trust, Sites: sites, Policy: policy,
		Store: store, Bridge: n.Bridge.PID(), Audit: audit, Log: n.Log().With("component", "coordinator"),
		Reachable: n.Hub.Reachable})
	if err != nil {
		return err
	}
	pid, err := n.System.Root.SpawnNamed(c.Props(), "coordinator")
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	for _, m := range coordinator.Messages() {
		n.Bridge.Route(protocol.Name(m), pid)
	}
	return nil
}

// startParticipant runs the site's learning participant and routes the
// server's job messages to it.
func startParticipant(n *node.Node, audit *auditor.Log) error {
	policy, err := loadPolicy(n)
	if err != nil {
		return err
	}
	p, err := participant.New(participant.Config{Self: n.Identity, Trust: n.Trust, Policy: policy,
		DataDir: n.Kit.DataDir(), Audit: audit, Log: n.Log().With("component", "participant")})
	if err != nil {
		return err
	}
	pid, err := n.System.Root.SpawnNamed(p.Props(), "participant")
	if err != nil {
		return fmt.Errorf("participant: %w", err)
	}
	for _, m := range participant.Messages() {
		n.Bridge.Route(protocol.Name(m), pid)
	}
	return nil
}
