package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
)

// passphraseEnv names the environment variable read for the CA passphrase
// when no --passphrase-file is given.
const passphraseEnv = "HEARTH_CA_PASSPHRASE"

func runProvision(_ context.Context, c *cli, args []string) error {
	fs := newFlags(c, "provision", "-p project.yml -o WORKSPACE [--passphrase-file FILE] [--json]")
	projectPath := fs.String("p", "", "project file (YAML)")
	out := fs.String("o", "", "workspace folder: the CA, and one startup kit per participant under kits/")
	passFile := passphraseFlag(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *projectPath == "" || *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: provision needs -p and -o, and no other arguments", errUsage)
	}
	data, err := os.ReadFile(*projectPath)
	if err != nil {
		return fmt.Errorf("read project file: %w", err)
	}
	p, err := provision.ParseProject(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *projectPath, err)
	}
	pass, err := readPassphrase(c, *passFile)
	if err != nil {
		return err
	}
	res, err := provision.Provision(p, *out, pass, policies.Defaults(), time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if res.CreatedCA {
		fmt.Fprintf(c.stdout, "created the root CA of project %s in %s/ca (its key is encrypted under your passphrase: keep both safe)\n", p.Name, res.Workspace)
	} else {
		fmt.Fprintf(c.stdout, "kept the root CA of project %s in %s/ca\n", p.Name, res.Workspace)
	}
	fmt.Fprintf(c.stdout, "project root fingerprint: %s\n", res.RootFingerprint)
	for _, group := range []struct {
		verb  string
		names []string
	}{{"added", res.Added}, {"kept", res.Kept}} {
		for _, name := range group.names {
			fmt.Fprintf(c.stdout, "%-6s %-24s %s\n", group.verb, name, provision.KitDir(res.Workspace, name))
		}
	}
	if len(res.Added) > 0 {
		fmt.Fprintln(c.stdout, "\nsend each new kit to its participant over a private channel; it holds the participant's private key")
		fmt.Fprintf(c.stdout, "tell each the root fingerprint over another channel (a call, a signed mail): they start with\n  --root-fingerprint %s (or $%s)\nso that a kit whose root was replaced on the way refuses to start\n", res.RootFingerprint, rootFingerprintEnv)
	}
	return nil
}

// passphraseFlag registers --passphrase-file, where the CA passphrase comes
// from when it is not in the environment.
func passphraseFlag(fs *flag.FlagSet) *string {
	return fs.String("passphrase-file", "", "file holding the CA passphrase (default: $"+passphraseEnv+")")
}

// readPassphrase reads the CA passphrase from file, or else from the
// environment; one trailing newline is dropped.
func readPassphrase(c *cli, file string) ([]byte, error) {
	var pass string
	switch {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		pass = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	case c.getenv(passphraseEnv) != "":
		pass = c.getenv(passphraseEnv)
	default:
		return nil, errors.New("no CA passphrase: pass --passphrase-file FILE or set " + passphraseEnv)
	}
	if pass == "" {
		return nil, errors.New("the CA passphrase is empty")
	}
	return []byte(pass), nil
}
