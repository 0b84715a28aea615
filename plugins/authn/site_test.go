package authn_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/authn"
)

// TestSiteDecides runs the site's checks against the real plugin binary:
// each case a request and the verdict and reason it must get.
func TestSiteDecides(t *testing.T) {
	s := openSite(t, t.TempDir(), policy(bins.Plain, bins.PlainSum, map[string]any{"users": users},
		map[string]any{"commands": []string{"submit", "site.shutdown"}}))
	if err := s.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	noCredential := request("alice", "pw")
	noCredential.Credential = nil
	status := request("alice", "wrong")
	status.Command = authn.CommandStatus
	unknown := request("alice", "pw")
	unknown.Command = "rm -rf"
	tests := []struct {
		name    string
		req     authn.Request
		verdict authn.Verdict
		reason  string
		role    string
	}{
		{name: "right password", req: request("alice", "pw"), verdict: authn.VerdictAuthenticated, reason: `authenticated as "uid=alice,ou=people", role "lead"`, role: "lead"},
		{name: "wrong password", req: request("alice", "nope"), verdict: authn.VerdictDenied, reason: "denied: wrong user name or password"},
		{name: "unknown user", req: request("mallory", "pw"), verdict: authn.VerdictDenied, reason: "denied: wrong user name or password"},
		{name: "no credential", req: noCredential, verdict: authn.VerdictDenied, reason: "denied: no credential attached for this site"},
		{name: "groups map to no role", req: request("bob", "pw"), verdict: authn.VerdictDenied, reason: `denied: "uid=bob,ou=people" authenticated, but their groups map to no role here`},
		{name: "a command the policy does not list", req: status, verdict: authn.VerdictNotRequired, reason: "this site does not authenticate status"},
		{name: "an unknown command", req: unknown, verdict: authn.VerdictUndecided, reason: `could not decide: authn: unknown command "rm -rf"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := s.Authenticate(t.Context(), tt.req)
			if o.Verdict != tt.verdict || o.Reason != tt.reason || o.Decision.Role != tt.role {
				t.Fatalf("outcome %v %q (role %q), want %v %q (role %q)", o.Verdict, o.Reason, o.Decision.Role, tt.verdict, tt.reason, tt.role)
			}
			if o.Allowed() != (tt.verdict == authn.VerdictAuthenticated || tt.verdict == authn.VerdictNotRequired) {
				t.Fatalf("Allowed() = %v for %v", o.Allowed(), o.Verdict)
			}
		})
	}
}

// TestSiteHashMismatch shows a site whose pinned hash differs from its
// plugin binary: the site opens (so it can start and audit), never runs
// the binary, reports why, and refuses every command that needs
// authentication with that reason.
func TestSiteHashMismatch(t *testing.T) {
	before, err := bins.Starts()
	if err != nil {
		t.Fatal(err)
	}
	s := openSite(t, t.TempDir(), policy(bins.Marked, bins.PlainSum, map[string]any{"users": users}, nil))
	if !errors.Is(s.Err(), plugins.ErrChecksum) {
		t.Fatalf("Err: %v, want ErrChecksum", s.Err())
	}
	for _, cmd := range []authn.Command{authn.CommandSubmit, authn.CommandPreflight, authn.CommandSiteShutdown} {
		r := request("alice", "pw")
		r.Command = cmd
		o := s.Authenticate(t.Context(), r)
		if o.Verdict != authn.VerdictUndecided || o.Allowed() || !errors.Is(o.Err, plugins.ErrChecksum) {
			t.Fatalf("%s: outcome %v (%v), want undecided on ErrChecksum", cmd, o.Verdict, o.Err)
		}
		if !strings.Contains(o.Reason, "does not match its pinned sha256") {
			t.Fatalf("%s: reason %q does not say why", cmd, o.Reason)
		}
	}
	if after, _ := bins.Starts(); after != before {
		t.Fatalf("the binary ran %d times although its hash differs from the pin", after-before)
	}
}

// TestSiteRefusedBinary shows the other refusals of the binary opening a
// site that refuses every command with the reason: a missing binary, a
// folder, a binary without an execute bit.
func TestSiteRefusedBinary(t *testing.T) {
	kit := t.TempDir()
	notExec := filepath.Join(kit, "bin", "not-executable")
	if err := os.MkdirAll(filepath.Dir(notExec), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bins.Plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notExec, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		reason error
	}{
		{name: "missing", path: "bin/absent", reason: fs.ErrNotExist},
		{name: "a folder", path: "bin", reason: plugins.ErrNotRegular},
		{name: "not executable", path: "bin/not-executable", reason: plugins.ErrNotExecutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSite(t, kit, policy(tt.path, bins.PlainSum, nil, nil))
			if !errors.Is(s.Err(), tt.reason) {
				t.Fatalf("Err: %v, want %v", s.Err(), tt.reason)
			}
			o := s.Authenticate(t.Context(), request("alice", "pw"))
			if o.Verdict != authn.VerdictUndecided || !errors.Is(o.Err, tt.reason) || !strings.HasPrefix(o.Reason, "could not decide: ") {
				t.Fatalf("outcome %v %q, want undecided on %v", o.Verdict, o.Reason, tt.reason)
			}
		})
	}
}

// TestSiteKitRelativePath shows a relative plugin path resolved against
// the kit's folder.
func TestSiteKitRelativePath(t *testing.T) {
	kit := t.TempDir()
	if err := os.MkdirAll(filepath.Join(kit, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bins.Plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kit, "bin", "hearth-authn-test"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := openSite(t, kit, policy("bin/hearth-authn-test", bins.PlainSum, map[string]any{"users": users}, nil))
	if o := s.Authenticate(t.Context(), request("alice", "pw")); o.Verdict != authn.VerdictAuthenticated {
		t.Fatalf("outcome %v %q, want authenticated", o.Verdict, o.Reason)
	}
}

// TestSiteCrashRestarts shows a plugin crashing mid-call: that command is
// refused as undecided, and the next is authenticated by the restarted
// plugin.
func TestSiteCrashRestarts(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "crashed")
	s := openSite(t, t.TempDir(), policy(bins.Plain, bins.PlainSum, map[string]any{"users": users, "crash_once": marker}, nil))
	o := s.Authenticate(t.Context(), request("alice", "pw"))
	if o.Verdict != authn.VerdictUndecided || !errors.Is(o.Err, plugins.ErrExited) {
		t.Fatalf("call into a crashing plugin: %v %q, want undecided on ErrExited", o.Verdict, o.Reason)
	}
	if o := s.Authenticate(t.Context(), request("alice", "pw")); o.Verdict != authn.VerdictAuthenticated {
		t.Fatalf("after the restart: %v %q, want authenticated", o.Verdict, o.Reason)
	}
}

// TestSiteHangDeadline shows a plugin that hangs: the command is refused
// as undecided at about the policy's timeout, and the next is
// authenticated by the restarted plugin.
func TestSiteHangDeadline(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "hung")
	s := openSite(t, t.TempDir(), policy(bins.Plain, bins.PlainSum, map[string]any{"users": users, "hang_once": marker},
		map[string]any{"timeout": "250ms"}))
	start := time.Now()
	o := s.Authenticate(t.Context(), request("alice", "pw"))
	took := time.Since(start)
	if o.Verdict != authn.VerdictUndecided || !errors.Is(o.Err, plugins.ErrDeadline) {
		t.Fatalf("call into a hung plugin: %v %q, want undecided on ErrDeadline", o.Verdict, o.Reason)
	}
	if took < 250*time.Millisecond || took > 1250*time.Millisecond {
		t.Fatalf("refused after %v, want about the 250ms timeout", took)
	}
	if o := s.Authenticate(t.Context(), request("alice", "pw")); o.Verdict != authn.VerdictAuthenticated {
		t.Fatalf("after the restart: %v %q, want authenticated", o.Verdict, o.Reason)
	}
}

// TestSiteConfigureRefused shows a plugin refusing its configuration: the
// site opens, reports it, and refuses commands with the plugin's reason.
func TestSiteConfigureRefused(t *testing.T) {
	s := openSite(t, t.TempDir(), policy(bins.Plain, bins.PlainSum, map[string]any{"refuse": "no directory configured"}, nil))
	if !errors.Is(s.Err(), plugins.ErrStart) || !strings.Contains(s.Err().Error(), "no directory configured") {
		t.Fatalf("Err: %v, want ErrStart with the plugin's reason", s.Err())
	}
	o := s.Authenticate(t.Context(), request("alice", "pw"))
	if o.Verdict != authn.VerdictUndecided || !strings.Contains(o.Reason, "no directory configured") {
		t.Fatalf("outcome %v %q, want undecided with the plugin's reason", o.Verdict, o.Reason)
	}
}

// TestOpenSitePolicyErrors shows that a policy that cannot be read or
// parsed stops OpenSite: no Site, an error naming the file.
func TestOpenSitePolicyErrors(t *testing.T) {
	kit := t.TempDir()
	if _, err := authn.OpenSite(t.Context(), authn.SiteConfig{File: filepath.Join(kit, "local", "authentication.json"), KitDir: kit}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing policy: %v, want fs.ErrNotExist", err)
	}
	file := writePolicy(t, kit, map[string]any{"format_version": "1.0", "plugin": map[string]any{"path": "x", "sha256": "00"}})
	_, err := authn.OpenSite(t.Context(), authn.SiteConfig{File: file, KitDir: kit})
	var pe *authn.ParseError
	if !errors.As(err, &pe) || pe.File != file || pe.Path != "plugin.sha256" {
		t.Fatalf("bad policy: %v, want a ParseError at plugin.sha256 naming %s", err, file)
	}
}
