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
//	 "scripts":   ["any"],
//	 "job_code":  {"memory_mib": 4096, "cpu_seconds": 3600, "open_files": 256, "threads": 1, "call_timeout": "10m"},
//	 "checkers":  [{"name": "imports", "path": "/opt/hearth/hearth-checker-imports", "sha256": "...", "config": {...}}]}
//
// trainers, workflows and filters list the names a job may use (a job's
// own filters by their built-in names: exclude_vars, percentile_privacy,
// svt_privacy, gaussian_privacy, quantize; a FLARE class path in a job
// counts as the filter it names); a name not listed is refused. scripts lists the SHA-256
// (hex) of each job script the site allows, or ["any"] for any script the
// submitter's byoc right lets in (the default); [] allows none. Every key
// is required but job_code (how the site runs a job's own code: see
// JobCodeLimits) and checkers (checker plugins, pinned by hash, that see
// a job's whole configuration and may refuse it); unknown keys are
// refused. A site's own filter plugins are
// pinned by hash in its privacy.json, which the job cannot name.
package components

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
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
	// JobCode is how the site runs a job's own code (optional: absent,
	// the defaults of JobCodeLimits).
	JobCode *JobCodeLimits `json:"job_code,omitempty"`
	// Checkers are the site's checker plugins, each pinned by hash: every
	// one sees a job's whole configuration before anything of it is
	// built here, and any one can refuse it (optional).
	Checkers []Checker `json:"checkers,omitempty"`
}

// JobCodeLimits are what a job's own trainer may use at the site, each
// zero meaning its default: memory_mib (address space, default 4096),
// cpu_seconds (over the trainer process's life, default 3600),
// open_files (default 256), threads (PyTorch's, default 1), and
// call_timeout (a Go duration bounding each call after the start, which
// has its own bound of a few minutes: default "10m"). sandbox: false runs the code without its Landlock and
// seccomp confinement (for a kernel without Landlock), and is named as
// such wherever the site shows its policy.
type JobCodeLimits struct {
	MemoryMiB   int64  `json:"memory_mib,omitempty"`
	CPUSeconds  int64  `json:"cpu_seconds,omitempty"`
	OpenFiles   int    `json:"open_files,omitempty"`
	Threads     int    `json:"threads,omitempty"`
	CallTimeout string `json:"call_timeout,omitempty"`
	Sandbox     *bool  `json:"sandbox,omitempty"`
	// timeout is CallTimeout parsed.
	timeout time.Duration
}

// Timeout is the bound on each call of a job's own trainer.
func (l *JobCodeLimits) Timeout() time.Duration {
	if l == nil || l.timeout == 0 {
		return DefaultCallTimeout
	}
	return l.timeout
}

// Sandboxed says whether job code runs confined (the default).
func (l *JobCodeLimits) Sandboxed() bool { return l == nil || l.Sandbox == nil || *l.Sandbox }

// DefaultCallTimeout bounds each call of a job's own trainer when
// job_code.call_timeout is not set.
const DefaultCallTimeout = 10 * time.Minute

func (l *JobCodeLimits) validate() error {
	switch {
	case l.MemoryMiB != 0 && (l.MemoryMiB < 256 || l.MemoryMiB > 1<<20):
		return fmt.Errorf("memory_mib %d: want 256..%d", l.MemoryMiB, 1<<20)
	case l.CPUSeconds != 0 && (l.CPUSeconds < 1 || l.CPUSeconds > 30*24*3600):
		return fmt.Errorf("cpu_seconds %d: want 1..%d", l.CPUSeconds, 30*24*3600)
	case l.OpenFiles != 0 && (l.OpenFiles < 32 || l.OpenFiles > 1<<20):
		return fmt.Errorf("open_files %d: want 32..%d", l.OpenFiles, 1<<20)
	case l.Threads != 0 && (l.Threads < 1 || l.Threads > 1024):
		return fmt.Errorf("threads %d: want 1..1024", l.Threads)
	}
	if l.CallTimeout != "" {
		d, err := time.ParseDuration(l.CallTimeout)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return fmt.Errorf("call_timeout %q: want a Go duration in 1s..24h", l.CallTimeout)
		}
		l.timeout = d
	}
	return nil
}

// Checker is one checker plugin: a name for the site's records, the
// binary (an absolute path) and its SHA-256, and its configuration (a
// JSON value of the checker's own schema, handed to it as it is).
type Checker struct {
	Name   string          `json:"name"`
	Path   string          `json:"path"`
	SHA256 string          `json:"sha256"`
	Config json.RawMessage `json:"config,omitempty"`
}

// MaxCheckers bounds the checkers a site runs on each job.
const MaxCheckers = 8

func (c Checker) validate() error {
	switch {
	case !validName(c.Name):
		return fmt.Errorf("name %q: want 1..64 of a-z, 0-9, '-', '_'", c.Name)
	case !filepath.IsAbs(c.Path):
		return fmt.Errorf("%s: path %q is not absolute", c.Name, c.Path)
	}
	if b, err := hex.DecodeString(c.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("%s: sha256: want the binary's SHA-256 in hex", c.Name)
	}
	return nil
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
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
	if a.JobCode != nil {
		if err := a.JobCode.validate(); err != nil {
			return nil, fmt.Errorf("components.json: job_code: %w", err)
		}
	}
	if len(a.Checkers) > MaxCheckers {
		return nil, fmt.Errorf("components.json: checkers: %d, more than %d", len(a.Checkers), MaxCheckers)
	}
	names := map[string]bool{}
	for i, c := range a.Checkers {
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("components.json: checkers[%d]: %w", i, err)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("components.json: checkers[%d]: %q named twice", i, c.Name)
		}
		names[c.Name] = true
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
