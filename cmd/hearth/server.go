package main

import (
	"context"

	"github.com/hearthfl/hearth/bus/node"
)

func runServer(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "server", "-k KIT [flags]")
	var d daemonFlags
	d.register(fs, "server")
	listen := fs.String("listen", "0.0.0.0", "address the hub's listeners bind to")
	k, log, stopProfile, err := d.open(c, fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	o, err := d.options(c, log)
	if err != nil {
		return err
	}
	o.ListenHost = *listen
	n, err := node.StartServer(ctx, k, o)
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
	if err := startCoordinator(ctx, n, audit); err != nil {
		return err
	}
	stopTap, err := hostileServer(n, c.getenv) // nothing but in the integration tests' hostile build
	if err != nil {
		return err
	}
	defer stopTap()
	n.Log().Info("ready", "kind", "server", "leaf", n.Hub.LeafAddr(), "client", n.Hub.ClientAddr(),
		"websocket", n.Hub.WebsocketAddr(), "participants", len(k.Participants))
	<-ctx.Done()
	n.Log().Info("stopping")
	return nil
}
