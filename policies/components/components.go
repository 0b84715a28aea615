// Package components is a site's component allow-list: it parses the
// site's local/components.json and decides, before anything of a job is
// built at the site, whether every component the job names may run there
// (FLARE's unsafe-component check before BEFORE_BUILD_COMPONENT, as an
// allow-list the site writes).
//
// Format:
//
//	{"trainers":  ["logreg", "mlp", "noop", "pytorch"],
//	 "workflows": ["fedavg", "swarm"],
//	 "filters":   ["exclude_vars", "gaussian_privacy", ...],
//	 "scripts":   ["any"]}
//
// trainers, workflows and filters list the names a job may use (a job's
// own filters by their built-in names: exclude_vars, percentile_privacy,
// svt_privacy, gaussian_privacy, quantize; a FLARE class path in a job
// counts as the filter it names); a name not listed is refused. scripts lists the SHA-256
// (hex) of each job script the site allows, or ["any"] for any script the
// submitter's byoc right lets in (the default); [] allows none. Every key
// is required; unknown keys are refused. A site's own filter plugins are
// pinned by hash in its privacy.json, which the job cannot name.
package components

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// MaxFileBytes bounds components.json before it is parsed.
const MaxFileBytes = 64 << 10

// AnyScript in scripts allows every script the byoc right lets in.
const AnyScript = "any"

// AllowList is a parsed components.json.
type AllowList struct {
	Trainers  []string `json:"trainers"`
	Workflows []string `json:"workflows"`
	Filters   []string `json:"filters"`
	Scripts   []string `json:"scripts"`
}

// Parse parses components.json strictly.
func Parse(data []byte) (*AllowList, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("components.json: %d bytes, more than %d", len(data), MaxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a AllowList
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("components.json: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("components.json: more than one JSON value")
	}
	for _, l := range []struct {
		name string
		list []string
	}{{"trainers", a.Trainers}, {"workflows", a.Workflows}, {"filters", a.Filters}, {"scripts", a.Scripts}} {
		if l.list == nil {
			return nil, fmt.Errorf("components.json: %s: required (a list; [] allows none)", l.name)
		}
		if len(l.list) > 256 {
			return nil, fmt.Errorf("components.json: %s: %d entries, more than 256", l.name, len(l.list))
		}
	}
	for i, s := range a.Scripts {
		if s == AnyScript {
			if len(a.Scripts) > 1 {
				return nil, fmt.Errorf("components.json: scripts: %q stands alone", AnyScript)
			}
			continue
		}
		if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("components.json: scripts[%d]: want a SHA-256 in hex or %q", i, AnyScript)
		}
	}
	return &a, nil
}

// ParseFile reads and parses path.
func ParseFile(path string) (*AllowList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("components: %w", err)
	}
	return Parse(b)
}

// Job is what a job would build at the site.
type Job struct {
	Trainer  string
	Workflow string
	Filters  []string // the job's own filters, by built-in name
	// ScriptSHA256 is the job's script's pin ("" for none).
	ScriptSHA256 string
}

// Decision is Check's answer; Reason always says why.
type Decision struct {
	Allowed bool
	Reason  string
}

// Check decides whether every component of j may run here.
func (a *AllowList) Check(j Job) Decision {
	switch {
	case !slices.Contains(a.Trainers, j.Trainer):
		return Decision{false, fmt.Sprintf("components: trainer %q is not in this site's allow-list", j.Trainer)}
	case !slices.Contains(a.Workflows, j.Workflow):
		return Decision{false, fmt.Sprintf("components: workflow %q is not in this site's allow-list", j.Workflow)}
	}
	for _, f := range j.Filters {
		if !slices.Contains(a.Filters, f) {
			return Decision{false, fmt.Sprintf("components: filter %q is not in this site's allow-list", f)}
		}
	}
	if j.ScriptSHA256 != "" && !(len(a.Scripts) == 1 && a.Scripts[0] == AnyScript) &&
		!slices.ContainsFunc(a.Scripts, func(s string) bool { return strings.EqualFold(s, j.ScriptSHA256) }) {
		return Decision{false, fmt.Sprintf("components: the job's script (SHA-256 %s) is not one this site allows", j.ScriptSHA256)}
	}
	return Decision{true, "every component is in this site's allow-list"}
}

// Builtins is the allow-list of a site whose kit has no components.json
// (kits made before it existed): the built-in trainers, workflows and
// filters, and no job's script.
func Builtins() *AllowList {
	return &AllowList{Trainers: []string{"logreg", "mlp", "noop"}, Workflows: []string{"fedavg", "swarm"},
		Filters: []string{"exclude_vars", "percentile_privacy", "svt_privacy", "gaussian_privacy", "quantize"}, Scripts: []string{}}
}
