package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"

	"github.com/hearthfl/hearth/cmd/hearth/dashboard"
	"github.com/hearthfl/hearth/policies"
)

func runDashboard(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "dashboard", "-w WORKSPACE|EMPTY_DIR [--listen HOST:PORT] [--cert F --key F] [--host H ...] [--passphrase-file F] [--admin-kit KIT] [--oidc-issuer URL --oidc-client-id ID --oidc-client-secret-file F [--oidc-ca-file F]]")
	ca := registerCAFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	certFile := fs.String("cert", "", "TLS certificate (PEM) to serve instead of one issued by the project root")
	keyFile := fs.String("key", "", "its private key (PEM)")
	adminKit := fs.String("admin-kit", "", "an admin's startup kit (with its key) that the jobs pages and the participants' connected status are read through, under the server's policy for that admin")
	var hosts hostList
	fs.Var(&hosts, "host", "extra host name for the certificate issued by the project root (repeatable)")
	oidcIssuer := fs.String("oidc-issuer", "", "an OpenID Connect provider's issuer URL (https): the sign-in page offers \"Sign in with\" it, for an account whose e-mail is the ID token's verified email")
	oidcClient := fs.String("oidc-client-id", "", "the dashboard's client id at that provider (a confidential client whose redirect URI is https://HOST:PORT/signin/oidc/callback)")
	oidcSecretFile := fs.String("oidc-client-secret-file", "", "file holding that client's secret")
	oidcCAFile := fs.String("oidc-ca-file", "", "CA certificates (PEM) that verify the provider's TLS certificate (default: the system's)")
	var logs logFlags
	logs.register(fs)
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if (*certFile == "") != (*keyFile == "") {
		fs.Usage()
		return errUsageMsg("dashboard: give both --cert and --key, or neither")
	}
	oidcCfg, err := dashboardOIDC(*oidcIssuer, *oidcClient, *oidcSecretFile, *oidcCAFile)
	if err != nil {
		fs.Usage()
		return err
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
	cfg := dashboard.Config{
		Workspace: ws, Passphrase: pass, Listen: *listen, Hosts: hosts,
		CertFile: *certFile, KeyFile: *keyFile,
		Defaults: policies.Defaults(), Log: log, Notice: c.stderr, OIDC: oidcCfg,
	}
	if *adminKit != "" {
		k, err := kit.Load(*adminKit)
		if err != nil {
			return err
		}
		if k.Config.Kind != pki.KindAdmin {
			return errUsageMsg(fmt.Sprintf("dashboard: --admin-kit %s is a %s kit, not an admin's", *adminKit, k.Config.Kind))
		}
		cfg.ConsoleName, cfg.DialConsole = k.Config.Name, dashboardConsole(k, log)
	}
	srv, err := dashboard.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if *certFile == "" {
		fmt.Fprintf(c.stderr, "serving a certificate issued by the project root (%s/ca/rootCA.pem; a self-signed one until the setup page creates the project in an empty workspace); browsers do not verify its Ed25519 signature: give --cert/--key for one they trust\n", ws)
	}
	return srv.Serve(ctx)
}

// dashboardOIDC reads the OIDC sign-in's flags: none set is no OIDC
// sign-in; the issuer, the client id and the secret file go together.
func dashboardOIDC(issuer, client, secretFile, caFile string) (*dashboard.OIDCConfig, error) {
	if issuer == "" && client == "" && secretFile == "" && caFile == "" {
		return nil, nil
	}
	if issuer == "" || client == "" || secretFile == "" {
		return nil, errUsageMsg("dashboard: OIDC sign-in needs --oidc-issuer, --oidc-client-id and --oidc-client-secret-file together")
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return nil, fmt.Errorf("dashboard: --oidc-client-secret-file: %w", err)
	}
	cfg := &dashboard.OIDCConfig{Issuer: issuer, ClientID: client, ClientSecret: strings.TrimSpace(string(secret))}
	if cfg.ClientSecret == "" {
		return nil, fmt.Errorf("dashboard: --oidc-client-secret-file %s is empty", secretFile)
	}
	if caFile != "" {
		pemCerts, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("dashboard: --oidc-ca-file: %w", err)
		}
		cfg.Roots = x509.NewCertPool()
		if !cfg.Roots.AppendCertsFromPEM(pemCerts) {
			return nil, fmt.Errorf("dashboard: --oidc-ca-file %s holds no PEM certificate", caFile)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, errUsageMsg("dashboard: " + err.Error())
	}
	return cfg, nil
}

// dashboardConsole dials the dashboard's admin console as `hearth admin`
// connects (openConsole), for reading only: it signs no jobs and seals no
// credentials.
func dashboardConsole(k *kit.Kit, log *slog.Logger) dashboard.DialConsole {
	return func(ctx context.Context) (dashboard.Console, func(), error) {
		n, err := node.StartAdmin(ctx, k, node.Options{Protocol: protocol.Table{}, CRLPoll: -1, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return &coordinator.Client{Bus: n.Bridge, Server: k.Config.Server.Name, Timeout: 10 * time.Second}, n.Close, nil
	}
}
