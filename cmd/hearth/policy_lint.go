package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearthfl/hearth/policies/attestation"
	"github.com/hearthfl/hearth/policies/authz"
	"github.com/hearthfl/hearth/policies/components"
	"github.com/hearthfl/hearth/policies/privacy"
	"github.com/hearthfl/hearth/policies/resources"
)

// policyLint parses each FILE as the site would at start, by its name
// (authorization.json, privacy.json, resources.json, components.json,
// attestation.json; a provisioned NAME.default too), and says what it
// holds or why it does not parse.
func policyLint(c *cli, args []string) error {
	fs := newFlags(c, "policy lint", "FILE...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsageMsg("policy lint needs at least one FILE")
	}
	var bad int
	for _, path := range fs.Args() {
		summary, err := lintPolicy(path)
		if err != nil {
			fmt.Fprintf(c.stdout, "%s: %s\n", termText(path), termText(err.Error()))
			bad++
			continue
		}
		fmt.Fprintf(c.stdout, "%s: ok: %s\n", termText(path), summary)
	}
	if bad > 0 {
		return inputError{fmt.Errorf("%d of %d policy files do not parse", bad, fs.NArg())}
	}
	return nil
}

func lintPolicy(path string) (string, error) {
	switch name := strings.TrimSuffix(filepath.Base(path), ".default"); name {
	case "authorization.json":
		if _, err := authz.ParseFile(path); err != nil {
			return "", err
		}
		return "FLARE's authorization grammar; decide requests with hearth policy check", nil
	case "privacy.json":
		p, err := privacy.ParseFile(path)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("scopes %s", strings.Join(p.ScopeNames(), ", ")), nil
	case "resources.json":
		o, err := resources.ParseFile(path)
		if err != nil {
			return "", err
		}
		aggregates := "aggregates swarm rounds"
		if !o.Aggregates() {
			aggregates = "aggregates no swarm round (refuses a swarm job naming it an aggregator)"
		}
		return fmt.Sprintf("%d GPUs of %g GiB; %s", o.GPUs, o.MemPerGPU, aggregates), nil
	case "components.json":
		a, err := components.ParseFile(path)
		if err != nil {
			return "", err
		}
		text := fmt.Sprintf("trainers %v, workflows %v, filters %v, scripts %v", a.Trainers, a.Workflows, a.Filters, a.Scripts)
		if l := a.JobCode; l != nil {
			text += fmt.Sprintf("; job code: memory %d MiB, CPU %d s, %d open files, %d threads, %v a call (0: the default)",
				l.MemoryMiB, l.CPUSeconds, l.OpenFiles, l.Threads, l.Timeout())
		}
		if !a.JobCode.Sandboxed() {
			text += "; job code runs UNCONFINED (sandbox: false)"
		}
		for _, c := range a.Checkers {
			text += fmt.Sprintf("; checker %s (%s)", c.Name, c.Path)
		}
		return text, nil
	case "attestation.json":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		p, err := attestation.Parse(b)
		if err != nil {
			return "", err
		}
		roots := "the vendors' roots"
		if p.Simulated {
			roots = "SIMULATED test roots (tests and hearth poc only)"
		}
		return fmt.Sprintf("requires %v under %s, re-attests every %v", p.Require, roots, p.Reattest), nil
	default:
		return "", fmt.Errorf("not a policy file Hearth reads (want authorization.json, privacy.json, resources.json, components.json or attestation.json)")
	}
}
