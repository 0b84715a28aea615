package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
)

func runCert(_ context.Context, c *cli, args []string) error {
	return runSubcommand(c, "cert", args, certUsage, []subcommand{
		{"request", certRequest}, {"approve", certApprove}, {"revoke", certRevoke}})
}

// subcommand is one verb of a command with several (cert, audit).
type subcommand struct {
	name string
	run  func(*cli, []string) error
}

// runSubcommand runs the subcommand of command that args name first,
// printing usage for help or for a missing or unknown one.
func runSubcommand(c *cli, command string, args []string, usage func(*cli), subs []subcommand) error {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	names := make([]string, len(subs))
	for i, s := range subs {
		if s.name == sub {
			return s.run(c, args)
		}
		names[i] = s.name
	}
	usage(c)
	if sub == "-h" || sub == "--help" || sub == "help" {
		return flag.ErrHelp
	}
	list := names[len(names)-1]
	if len(names) > 1 {
		list = strings.Join(names[:len(names)-1], ", ") + " or " + list
	}
	return fmt.Errorf("%w: %s needs a subcommand: %s", errUsage, command, list)
}

func certUsage(c *cli) {
	fmt.Fprint(c.stderr, `usage:
  hearth cert request --name N --org O --kind site|aggregator|admin [--role R] [--host H ...] -o DIR
  hearth cert approve -w WORKSPACE [--passphrase-file F] FILE.csr
  hearth cert revoke  -w WORKSPACE [--passphrase-file F] NAME
`)
}

// hostList is a repeatable --host flag.
type hostList []string

func (h *hostList) String() string     { return strings.Join(*h, ",") }
func (h *hostList) Set(s string) error { *h = append(*h, s); return nil }

func certRequest(c *cli, args []string) error {
	fs := newFlags(c, "cert request", "--name N --org O --kind site|aggregator|admin [--role R] [--host H ...] -o DIR")
	name := fs.String("name", "", "participant name")
	org := fs.String("org", "", "organization")
	kind := fs.String("kind", "", "participant kind: site, aggregator or admin")
	role := fs.String("role", "", "admin role: project_admin, org_admin, lead or member")
	var hosts hostList
	fs.Var(&hosts, "host", "host name for the certificate (repeatable; sites: localhost, 127.0.0.1)")
	out := fs.String("o", "", "folder for key.pem and NAME.csr")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if *name == "" || *org == "" || *kind == "" || *out == "" {
		fs.Usage()
		return fmt.Errorf("%w: cert request needs --name, --org, --kind and -o", errUsage)
	}
	id := pki.Identity{Name: *name, Org: *org, Kind: pki.Kind(*kind), Role: pki.Role(*role)}
	files, err := provision.Request(*out, id, hosts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, `wrote %s (your private key: it never leaves this machine)
wrote %s

next:
  1. send %s to the project admin, who runs: hearth cert approve -w WORKSPACE %s
  2. you receive a startup kit folder without a key; copy the key into it:
       cp -p %s KIT/key.pem && chmod 600 KIT/key.pem
`, files.Key, files.CSR, files.CSR, files.CSR, files.Key)
	return nil
}

func certApprove(c *cli, args []string) error {
	fs := newFlags(c, "cert approve", "-w WORKSPACE [--passphrase-file F] FILE.csr")
	ca := registerCAFlags(fs)
	rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	ws, pass, err := ca.open(c, fs, "cert approve")
	if err != nil {
		return err
	}
	csr, err := os.ReadFile(rest[0])
	if err != nil {
		return fmt.Errorf("read certificate request: %w", err)
	}
	dir, err := provision.Approve(ws, pass, csr, policies.Defaults(), time.Now())
	if err != nil {
		return err
	}
	root, err := provision.RootFingerprint(ws)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, `approved: startup kit %s
project root fingerprint: %s

send this folder to the requester; it holds no private key. They copy in the
key.pem made by hearth cert request (mode 0600) before starting.
Tell them the root fingerprint over another channel (a call, a signed mail):
they start with --root-fingerprint %s (or $%s), so that a kit whose root
was replaced on the way refuses to start.
`, dir, root, root, rootFingerprintEnv)
	return nil
}

func certRevoke(c *cli, args []string) error {
	fs := newFlags(c, "cert revoke", "-w WORKSPACE [--passphrase-file F] NAME")
	ca := registerCAFlags(fs)
	rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	ws, pass, err := ca.open(c, fs, "cert revoke")
	if err != nil {
		return err
	}
	if err := provision.Revoke(ws, pass, rest[0], time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, `revoked %s: the new revocation list is in %s/ca/crl.pem and in every kit under %s/kits

deliver crl.pem to every participant already running (copy it into its kit) so that they refuse %s
`, rest[0], ws, ws, rest[0])
	return nil
}

// parseArgs parses flags that may come before or after the positional
// arguments, and requires exactly want positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	return parseArgsRange(fs, args, want, want)
}

// parseArgsRange is parseArgs for least to most arguments (most < 0: any
// number from least).
func parseArgsRange(fs *flag.FlagSet, args []string, least, most int) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	switch {
	case least == most && len(rest) != least:
		fs.Usage()
		return nil, fmt.Errorf("%w: want %d argument(s), got %d", errUsage, least, len(rest))
	case len(rest) < least || most >= 0 && len(rest) > most:
		fs.Usage()
		return nil, fmt.Errorf("%w: want at least %d argument(s), got %d", errUsage, least, len(rest))
	}
	return rest, nil
}

// caFlags are the flags of the commands that open a workspace's CA.
type caFlags struct{ workspace, passFile *string }

func registerCAFlags(fs *flag.FlagSet) caFlags {
	return caFlags{
		workspace: fs.String("w", "", "workspace folder made by hearth provision"),
		passFile:  passphraseFlag(fs),
	}
}

// open checks that -w was given and reads the CA passphrase.
func (f caFlags) open(c *cli, fs *flag.FlagSet, command string) (workspace string, passphrase []byte, err error) {
	if *f.workspace == "" {
		fs.Usage()
		return "", nil, fmt.Errorf("%w: %s needs -w", errUsage, command)
	}
	pass, err := readPassphrase(c, *f.passFile)
	return *f.workspace, pass, err
}
