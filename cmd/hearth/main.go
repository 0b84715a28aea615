// Command hearth is Hearth's single binary: provisioning, certificates, the
// server (hub), a site (leaf gateway), and the local proof of concept. Each
// subcommand lives in its own file; this file only dispatches.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hearthfl/hearth/actors/swarm"
)

// cli is what a subcommand may touch of the outside world besides files.
type cli struct {
	stdin          io.Reader     // nil reads as empty
	stdinLines     *bufio.Reader // stdin's lines, once read by line (promptSecret)
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name, summary string
	run           func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"provision", "create or extend a project's CA and startup kits from a project file", runProvision},
		{"cert", "certificate requests, approvals and revocation (request|approve|revoke)", runCert},
		{"server", "run the server: the NATS hub with JetStream, and the server's actors", runServer},
		{"site", "run a site: a NATS leaf node dialing the hub, and the site's actors", runSite},
		{"aggregator", "run an aggregation host: a leaf node that aggregates the jobs placed on it, with TEE evidence", runAggregator},
		{"admin", "the admin console: submit, list, status, abort, download jobs", runAdmin},
		{"dashboard", "serve the web dashboard: invitations, site registration, certificate requests and approvals", runDashboard},
		{"audit", "verify audit logs and their peers' anchors; trace one action across logs", runAudit},
		{"policy", "check an authorization.json: parse it and decide requests as a site would", runPolicy},
		{"privacy", "differential privacy: ε of DP-SGD's parameters, or the noise for a target ε", runPrivacy},
		{"bench", "measure model exchange: plain NATS next to full FedAvg rounds of large models", runBench},
		{"poc", "run everything on this machine: provision, hub, sites, and a job", runPOC},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "hearth:", err)
		}
		os.Exit(exitCode(err))
	}
}

func run(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stderr)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	for _, cmd := range commands() {
		if cmd.name == args[0] {
			if err := sealfreeRefuses(c, cmd.name); err != nil {
				return err
			}
			return cmd.run(ctx, c, args[1:])
		}
	}
	usage(c.stderr)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

var errUsage = errors.New("usage")

// sealfreeBench marks the server and site processes that a sealfree
// build's bench starts.
const sealfreeBench = "HEARTH_SEALFREE_BENCH"

// sealfreeRefuses refuses, in a build that does not encrypt models (`-tags
// sealfree`, which measures what sealing costs: see swarm.Sealfree), every
// command but bench and the server and sites a bench starts: nothing that
// would carry a real model runs unencrypted.
func sealfreeRefuses(c *cli, name string) error {
	if !swarm.Sealfree || name == "bench" || (c.getenv(sealfreeBench) == "1" && (name == "server" || name == "site")) {
		return nil
	}
	return errors.New("this hearth was built with -tags sealfree to measure what sealing costs, and sends models unencrypted: it runs only bench")
}

// errUsageMsg is a usage error with a message.
func errUsageMsg(msg string) error { return fmt.Errorf("%w: %s", errUsage, msg) }

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hearth <command> [flags]\n\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'hearth <command> -h' for a command's flags.")
}

// newFlags makes a flag set for a subcommand that reports errors instead of
// exiting, and prints its usage to c.stderr.
func newFlags(c *cli, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("hearth "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: hearth %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}
