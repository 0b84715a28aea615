package main

import (
	"context"
	"fmt"

	"github.com/hearthfl/hearth/actors/siteadmin"
	"github.com/hearthfl/hearth/bus/node"
)

func runSite(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "site", "-k KIT [flags]")
	var d daemonFlags
	d.register(fs, "site")
	logs := newLineRing(siteadmin.MaxLines) // for admin site logs
	d.tee = logs
	k, log, stopProfile, err := d.open(c, fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
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
	policy, err := loadPolicy(n)
	if err != nil {
		return err
	}
	offer, err := siteResources(k)
	if err != nil {
		return err
	}
	gate, closeGate, err := openGate(ctx, n, audit) // the site's own authentication of admins, if it has one
	if err != nil {
		return err
	}
	defer closeGate()
	pid, closeFilters, err := startParticipant(ctx, n, audit, policy, gate, offer)
	if err != nil {
		return err
	}
	defer closeFilters()
	ctx, shutdown := context.WithCancel(ctx) // admin site shutdown stops the site as a signal would
	defer shutdown()
	if err := startSiteAdmin(n, audit, policy, gate, pid, logs, offer, shutdown); err != nil {
		return err
	}
	n.Log().Info("waiting for the hub", "urls", k.Config.LeafURLs(), "local", n.Leaf.LocalAddr())
	if err := n.WaitHub(ctx); err != nil {
		return fmt.Errorf("site %s: %w", k.Config.Name, err)
	}
	n.Log().Info("ready", "kind", string(k.Config.Kind), "hub", k.Config.LeafURLs(), "local", n.Leaf.LocalAddr())
	<-ctx.Done()
	n.Log().Info("stopping")
	return nil
}
