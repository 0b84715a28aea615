package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/liveness"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/jetstore"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	pluginfilter "github.com/hearthfl/hearth/plugins/filter"
	"github.com/hearthfl/hearth/policies/authz"
	"github.com/hearthfl/hearth/policies/components"
	"github.com/hearthfl/hearth/policies/privacy"
	"github.com/hearthfl/hearth/policies/resources"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Files in a kit's state folder: the audit log, and a site's ledger of the
// signed jobs it ran.
const (
	auditFile  = "audit.jsonl"
	ledgerFile = "jobs-run.jsonl"
)

// spillAbove is the model size above which the server's global models and
// sums, and the sites' copies, are kept in file mappings (state/spill)
// rather than memory.
const spillAbove = 2 << 30

// spillDir is the kit's folder for models kept on disk, emptied at start.
func spillDir(n *node.Node) (string, error) {
	state, err := n.Kit.StateDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(state, "spill")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o700)
}

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
	p, err := authz.ParseFile(n.Kit.PolicyPath("authorization.json"))
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
	js, err := jetstore.New(n.Conn)
	if err != nil {
		return err
	}
	store, err := coordinator.OpenStore(ctx, js)
	if err != nil {
		return err
	}
	spill, err := spillDir(n)
	if err != nil {
		return err
	}
	var sites, hosts []string
	for _, p := range n.Kit.Participants {
		switch p.Kind {
		case pki.KindSite:
			sites = append(sites, p.Name)
		case pki.KindAggregator:
			hosts = append(hosts, p.Name)
		}
	}
	c, err := coordinator.New(coordinator.Config{Self: n.Identity, Trust: n.Trust, Sites: sites, Hosts: hosts, Policy: policy,
		Store: store, Bridge: n.Bridge.PID(), Audit: audit, Log: n.Log().With("component", "coordinator"),
		Reachable: n.Hub.Reachable, Streams: hostileStreams(n.Streams), SpillDir: spill, SpillAbove: spillAbove, Limits: limits(n.Kit.Config.Limits)})
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

// limits are the coordinator's limits from the project's settings in the
// server's kit.
func limits(l *kit.Limits) coordinator.Limits {
	if l == nil {
		return coordinator.Limits{}
	}
	out := coordinator.Limits{JobsPerSubmitter: l.JobsPerSubmitter, CheckpointsPerSubmitter: l.CheckpointsPerSubmitter}
	switch d := l.CheckpointRetentionDays; {
	case d < 0:
		out.CheckpointRetention = -1
	case d > 0:
		out.CheckpointRetention = time.Duration(d) * 24 * time.Hour
	}
	return out
}

// startParticipant runs the site's learning participant and routes the
// server's job messages to it, with the site's own filters (the plugin
// binaries its privacy.json pins) and checkers (those its
// components.json pins) started; the returned function stops them. A plugin that is refused (its hash differs from its pin) does not
// stop the site: it starts, audits why, and refuses every job in that
// plugin's scope.
func startParticipant(ctx context.Context, n *node.Node, audit *auditor.Log, policy authz.Site, gate *credential.Gate, offer resources.Offer) (*actor.PID, func(), error) {
	scopes, err := privacy.ParseFile(n.Kit.PolicyPath("privacy.json"))
	if err != nil {
		return nil, nil, err
	}
	hostileSigns(n.Signer) // nothing but in the integration tests' hostile build
	state, err := n.Kit.StateDir()
	if err != nil {
		return nil, nil, err
	}
	own, err := pluginfilter.OpenSite(ctx, pluginfilter.SiteConfig{Policy: scopes, KitDir: n.Kit.Dir, WorkDir: state,
		Logger: n.Log().With("component", "filter")})
	if err != nil {
		return nil, nil, fmt.Errorf("site filters: %w", err)
	}
	for _, perr := range own.Problems() {
		if _, aerr := audit.Append(auditor.Event{Action: "privacy.plugin.refused", Detail: map[string]string{"reason": perr.Error()}}); aerr != nil {
			n.Log().Error("audit append failed", "err", aerr)
		}
	}
	allowed, err := siteComponents(n.Kit)
	if err != nil {
		own.Close()
		return nil, nil, err
	}
	checkers, stopCheckers := siteCheckers(ctx, allowed, n.Identity.Name, state, func(reason string) {
		if _, aerr := audit.Append(auditor.Event{Action: "components.checker.refused", Detail: map[string]string{"reason": reason}}); aerr != nil {
			n.Log().Error("audit append failed", "err", aerr)
		}
	}, n.Log().With("component", "checker"))
	pid, err := spawnParticipant(n, audit, policy, gate, offer, scopes, own, state, allowed, checkers)
	if err != nil {
		stopCheckers()
		own.Close()
		return nil, nil, err
	}
	return pid, func() { stopCheckers(); own.Close() }, nil
}

// spawnParticipant makes the participant actor and routes to it.
func spawnParticipant(n *node.Node, audit *auditor.Log, policy authz.Site, gate *credential.Gate, offer resources.Offer,
	scopes *privacy.Policy, own *pluginfilter.Site, state string, allowed *components.AllowList, checkers []participant.JobChecker) (*actor.PID, error) {
	spill, err := spillDir(n)
	if err != nil {
		return nil, err
	}
	ledger, err := participant.OpenLedger(filepath.Join(state, ledgerFile))
	if err != nil {
		return nil, err
	}
	attestation, err := siteAttestation(n.Kit, n.Log()) // nil without local/attestation.json: no attested job is joined
	if err != nil {
		return nil, err
	}
	p, err := participant.New(participant.Config{Self: n.Identity, Trust: n.Trust, Policy: policy,
		DataDir: n.Kit.DataDir(), Audit: audit, Log: n.Log().With("component", "participant"),
		Streams: hostileStreams(n.Streams), SpillDir: spill, SpillAbove: spillAbove, Ledger: ledger, Outgoing: hostileSite,
		Signer: n.Signer, SealKey: n.SealKey.PublicKey(), Bridge: n.Bridge.PID(), StateDir: state, OnSwarmTask: hostileSwarm,
		Gate: gate, Resources: offer, Privacy: scopes, FilterPlugins: own, Attestation: attestation, Components: allowed,
		Checkers: checkers, StartCode: codeRunner(allowed, state, n.Log().With("component", "trainer"))})
	if err != nil {
		return nil, err
	}
	return runParticipant(n, p)
}

// runParticipant spawns a site's (or an aggregation host's) participant
// actor, routes its messages to it, and lets it admit peers' envelopes.
func runParticipant(n *node.Node, p *participant.Participant) (*actor.PID, error) {
	pid, err := n.System.Root.SpawnNamed(p.Props(), "participant")
	if err != nil {
		return nil, fmt.Errorf("participant: %w", err)
	}
	for _, m := range participant.Messages() {
		n.Bridge.Route(protocol.Name(m), pid)
	}
	n.SetAdmit(p.Admit)
	return pid, nil
}

// siteComponents is the site's allow-list (local/components.json); nil
// for a kit made before the file existed (the participant then allows the
// built-ins and no job's code).
func siteComponents(k *kit.Kit) (*components.AllowList, error) {
	path := k.PolicyPath("components.json")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return components.ParseFile(path)
}
