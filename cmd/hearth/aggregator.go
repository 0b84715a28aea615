package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
)

// runAggregator runs an aggregation host: a leaf node with its own
// identity (a kit of kind aggregator) that aggregates the rounds of the
// jobs placed on it, and answers each site's attestation request with TEE
// evidence bound to its sealing key and the site's nonce.
func runAggregator(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "aggregator", "-k KIT [flags]")
	var d daemonFlags
	d.register(fs, "aggregation host")
	var tee string
	var simulated bool
	fs.StringVar(&tee, "tee", "sev-snp", "the evidence this host presents, comma-separated: sev-snp, nvidia-gpu")
	fs.BoolVar(&simulated, "simulated-tee", false, "make SIMULATED evidence (go-sev-guest's test device and test-only AMD chain, "+
		"a test NVIDIA device chain) on a machine without a TEE: sites accept it only when their policy says \"simulated\": true")
	k, log, stopProfile, err := d.open(c, fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	if k.Config.Kind != pki.KindAggregator {
		return fmt.Errorf("kit %s is a %s kit: hearth aggregator runs an aggregator kit", k.Dir, k.Config.Kind)
	}
	kinds := strings.Split(tee, ",")
	evidence, err := hostEvidence(kinds, simulated, log)
	if err != nil {
		return err
	}
	o, err := d.options(c, log)
	if err != nil {
		return err
	}
	n, err := node.StartSite(ctx, k, o)
	if err != nil {
		return err
	}
	defer n.Close()
	audit, err := openAudit(n)
	if err != nil {
		return err
	}
	defer audit.Close()
	defer auditRefusals(n, audit)()
	startLiveness(n)
	policy, err := loadPolicy(n) // the host decides for itself whose jobs it aggregates
	if err != nil {
		return err
	}
	state, err := n.Kit.StateDir()
	if err != nil {
		return err
	}
	spill, err := spillDir(n)
	if err != nil {
		return err
	}
	ledger, err := participant.OpenLedger(filepath.Join(state, ledgerFile))
	if err != nil {
		return err
	}
	p, err := participant.New(participant.Config{Self: n.Identity, Trust: n.Trust, Policy: policy, Audit: audit,
		Log: n.Log().With("component", "aggregation-host"), Streams: n.Streams, SpillDir: spill, SpillAbove: spillAbove,
		Ledger: ledger, Signer: n.Signer, SealKey: n.SealKey.PublicKey(), Bridge: n.Bridge.PID(), StateDir: state,
		Evidence: evidence})
	if err != nil {
		return err
	}
	if _, err := runParticipant(n, p); err != nil {
		return err
	}
	n.Log().Info("waiting for the hub", "urls", k.Config.LeafURLs(), "local", n.Leaf.LocalAddr())
	if err := n.WaitHub(ctx); err != nil {
		return fmt.Errorf("aggregation host %s: %w", k.Config.Name, err)
	}
	what := "evidence from the TEE"
	if simulated {
		what = "SIMULATED evidence (no TEE)"
	}
	n.Log().Info("ready", "kind", string(k.Config.Kind), "hub", k.Config.LeafURLs(), "tee", kinds, "evidence", what)
	<-ctx.Done()
	n.Log().Info("stopping")
	return nil
}
