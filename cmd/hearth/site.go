package main

import (
	"context"
	"fmt"

	"github.com/hearthfl/hearth/bus/node"
)

func runSite(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "site", "-k KIT [flags]")
	var d daemonFlags
	d.register(fs, "site")
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
	if err := startParticipant(n, audit); err != nil {
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
