package main

import (
	"context"
	"fmt"

	"github.com/hearthfl/hearth/cmd/hearth/dashboard"
	"github.com/hearthfl/hearth/policies"
)

func runDashboard(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "dashboard", "-w WORKSPACE [--listen HOST:PORT] [--cert F --key F] [--host H ...] [--passphrase-file F]")
	ca := registerCAFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	certFile := fs.String("cert", "", "TLS certificate (PEM) to serve instead of one issued by the project root")
	keyFile := fs.String("key", "", "its private key (PEM)")
	var hosts hostList
	fs.Var(&hosts, "host", "extra host name for the certificate issued by the project root (repeatable)")
	var logs logFlags
	logs.register(fs)
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if (*certFile == "") != (*keyFile == "") {
		fs.Usage()
		return errUsageMsg("dashboard: give both --cert and --key, or neither")
	}
	ws, pass, err := ca.open(c, fs, "dashboard")
	if err != nil {
		return err
	}
	log, err := logs.logger(c.stderr)
	if err != nil {
		return errUsageMsg(err.Error())
	}
	stopProfile, err := logs.profile()
	if err != nil {
		return err
	}
	defer stopProfile()
	srv, err := dashboard.New(ctx, dashboard.Config{
		Workspace: ws, Passphrase: pass, Listen: *listen, Hosts: hosts,
		CertFile: *certFile, KeyFile: *keyFile,
		Defaults: policies.Defaults(), Log: log, Notice: c.stderr,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if *certFile == "" {
		fmt.Fprintf(c.stderr, "serving a certificate issued by the project root (%s/ca/rootCA.pem); browsers do not verify its Ed25519 signature: give --cert/--key for one they trust\n", ws)
	}
	return srv.Serve(ctx)
}
