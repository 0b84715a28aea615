package authn_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins/authn"
)

const sum64 = "ab0f5b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"

// TestParsePolicy shows what authentication.json accepts, and that it
// refuses the rest with the offending value's path.
func TestParsePolicy(t *testing.T) {
	plugin := `"plugin": {"path": "bin/hearth-authn-ldap", "sha256": "` + sum64 + `"}`
	tests := []struct {
		name string
		doc  string
		// want, when the policy parses:
		timeout  time.Duration
		commands []authn.Command
		config   string
		// or the refusal:
		path, msg string
	}{
		{name: "minimal", doc: `{"format_version": "1.0", ` + plugin + `}`, timeout: 5 * time.Second, config: "{}"},
		{
			name:     "everything",
			doc:      `{"format_version": "1.0", ` + plugin + `, "timeout": "750ms", "commands": ["submit", "site.shutdown"], "config": {"url": "ldaps://dir", "groups": {"fl-leads": "lead"}}}`,
			timeout:  750 * time.Millisecond,
			commands: []authn.Command{authn.CommandSubmit, authn.CommandSiteShutdown},
			config:   `{"url": "ldaps://dir", "groups": {"fl-leads": "lead"}}`,
		},
		{name: "upper-case hash", doc: `{"format_version": "1.0", "plugin": {"path": "/x", "sha256": "` + strings.ToUpper(sum64) + `"}}`, timeout: 5 * time.Second, config: "{}"},
		{name: "not JSON", doc: `{"format_version": `, path: "format_version", msg: "invalid JSON"},
		{name: "not an object", doc: `["format_version"]`, path: "", msg: "want a JSON object"},
		{name: "trailing data", doc: `{"format_version": "1.0", ` + plugin + `} {}`, path: "", msg: "trailing data"},
		{name: "unknown key", doc: `{"format_version": "1.0", ` + plugin + `, "plugins": []}`, path: "", msg: `unknown key "plugins"`},
		{name: "duplicate key", doc: `{"format_version": "1.0", ` + plugin + `, ` + plugin + `}`, path: "plugin", msg: "duplicate key"},
		{name: "no format_version", doc: `{` + plugin + `}`, path: "", msg: "missing format_version"},
		{name: "another format_version", doc: `{"format_version": "2.0", ` + plugin + `}`, path: "format_version", msg: `"2.0"`},
		{name: "format_version a number", doc: `{"format_version": 1.0, ` + plugin + `}`, path: "format_version", msg: "want a string"},
		{name: "no plugin", doc: `{"format_version": "1.0"}`, path: "", msg: "missing plugin"},
		{name: "plugin without a hash", doc: `{"format_version": "1.0", "plugin": {"path": "/x"}}`, path: "plugin", msg: "missing sha256"},
		{name: "plugin without a path", doc: `{"format_version": "1.0", "plugin": {"sha256": "` + sum64 + `"}}`, path: "plugin", msg: "missing path"},
		{name: "plugin with an empty path", doc: `{"format_version": "1.0", "plugin": {"path": "", "sha256": "` + sum64 + `"}}`, path: "plugin.path", msg: "empty"},
		{name: "plugin unknown key", doc: `{"format_version": "1.0", "plugin": {"path": "/x", "sha256": "` + sum64 + `", "args": []}}`, path: "plugin", msg: `unknown key "args"`},
		{name: "plugin duplicate hash", doc: `{"format_version": "1.0", "plugin": {"path": "/x", "sha256": "` + sum64 + `", "sha256": "` + sum64 + `"}}`, path: "plugin.sha256", msg: "duplicate key"},
		{name: "short hash", doc: `{"format_version": "1.0", "plugin": {"path": "/x", "sha256": "abcd"}}`, path: "plugin.sha256", msg: "64 hex digits"},
		{name: "hash not hex", doc: `{"format_version": "1.0", "plugin": {"path": "/x", "sha256": "` + strings.Repeat("zz", 32) + `"}}`, path: "plugin.sha256", msg: "64 hex digits"},
		{name: "timeout not a duration", doc: `{"format_version": "1.0", ` + plugin + `, "timeout": "5"}`, path: "timeout", msg: "not a duration"},
		{name: "timeout a number", doc: `{"format_version": "1.0", ` + plugin + `, "timeout": 5}`, path: "timeout", msg: "want a string"},
		{name: "timeout too short", doc: `{"format_version": "1.0", ` + plugin + `, "timeout": "10ms"}`, path: "timeout", msg: "outside 100ms..1m0s"},
		{name: "timeout too long", doc: `{"format_version": "1.0", ` + plugin + `, "timeout": "2m"}`, path: "timeout", msg: "outside"},
		{name: "no commands", doc: `{"format_version": "1.0", ` + plugin + `, "commands": []}`, path: "commands", msg: "leave commands out"},
		{name: "commands not a list", doc: `{"format_version": "1.0", ` + plugin + `, "commands": "submit"}`, path: "commands", msg: "want a list"},
		{name: "an unknown command", doc: `{"format_version": "1.0", ` + plugin + `, "commands": ["submit", "shell"]}`, path: "commands[1]", msg: `unknown command "shell"`},
		{name: "a command twice", doc: `{"format_version": "1.0", ` + plugin + `, "commands": ["submit", "submit"]}`, path: "commands[1]", msg: "listed twice"},
		{name: "a command only the server decides", doc: `{"format_version": "1.0", ` + plugin + `, "commands": ["submit", "abort"]}`, path: "commands[1]", msg: "decided by the server alone"},
		{name: "config not an object", doc: `{"format_version": "1.0", ` + plugin + `, "config": "url=ldaps://dir"}`, path: "config", msg: "want an object"},
		{name: "config null", doc: `{"format_version": "1.0", ` + plugin + `, "config": null}`, path: "config", msg: "want an object"},
		{name: "too large", doc: `{"format_version": "1.0", ` + plugin + `, "config": {"x": "` + strings.Repeat("a", 1<<20) + `"}}`, path: "", msg: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authn.ParsePolicy([]byte(tt.doc))
			if tt.msg != "" {
				var pe *authn.ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("ParsePolicy: %v (%v), want a ParseError", err, p)
				}
				if pe.Path != tt.path || !strings.Contains(pe.Msg, tt.msg) {
					t.Fatalf("refused at %q: %q; want at %q: ...%s...", pe.Path, pe.Msg, tt.path, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			if p.Timeout != tt.timeout || string(p.Config) != tt.config || !slices.Equal(p.Commands, tt.commands) {
				t.Fatalf("policy: timeout %v, commands %v, config %s; want %v, %v, %s", p.Timeout, p.Commands, p.Config, tt.timeout, tt.commands, tt.config)
			}
		})
	}
}

// TestPolicyRequires shows which commands need authentication: all those
// a site decides when commands is absent, else those listed.
func TestPolicyRequires(t *testing.T) {
	all := []authn.Command{
		authn.CommandSubmit, authn.CommandPreflight,
		authn.CommandSiteStatus, authn.CommandSiteResources, authn.CommandSiteLogs, authn.CommandSiteAudit, authn.CommandSiteShutdown,
	}
	for _, c := range []authn.Command{authn.CommandAbort, authn.CommandDownload, authn.CommandStatus} {
		if (&authn.Policy{}).Requires(c) {
			t.Errorf("%s, which the server decides alone, needs authentication at a site", c)
		}
	}
	everything := &authn.Policy{}
	listed := &authn.Policy{Commands: []authn.Command{authn.CommandSubmit}}
	for _, c := range all {
		if !everything.Requires(c) {
			t.Errorf("without commands, %s does not need authentication", c)
		}
		if listed.Requires(c) != (c == authn.CommandSubmit) {
			t.Errorf("with commands [submit], Requires(%s) = %v", c, listed.Requires(c))
		}
	}
	if everything.Requires("shell") {
		t.Error("an unknown command counts as requiring authentication (it must be refused as unknown)")
	}
}
