package checker_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/checker"
	"github.com/hearthfl/hearth/plugins/checker/internal/testchecker"
)

// TestPluginDecides: through the real plugin binary, a job crosses
// whole (the echo names every field) and a refusal arrives with its
// reason.
func TestPluginDecides(t *testing.T) {
	j := sampleJob()
	echo := newClient(t, bin, binSum, map[string]any{"echo": true}, 10*time.Second)
	d, err := echo.Check(t.Context(), j)
	if err != nil || !d.Allowed || d.Reason != testchecker.Describe(j) {
		t.Fatalf("Check = %+v, %v; want allowed with %q", d, err, testchecker.Describe(j))
	}
	refuse := newClient(t, bin, binSum, map[string]any{"reason": "the script imports socket"}, 10*time.Second)
	if d, err := refuse.Check(t.Context(), j); err != nil || d.Allowed || d.Reason != "the script imports socket" {
		t.Fatalf("Check = %+v, %v; want refused with the checker's reason", d, err)
	}
}

// TestPluginAnswersOutsideTheContractAreRefused: a refusal without a
// reason, a reason too long or holding control characters: an error
// wrapping ErrContract that names the checker, and no decision.
func TestPluginAnswersOutsideTheContractAreRefused(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"empty reason on a refusal", map[string]any{"allowed": false}, "a refusal without a reason"},
		{"a reason too long", map[string]any{"reason": "x", "repeat": checker.MaxReason + 1}, "a reason of 513 bytes"},
		{"an allow's reason too long", map[string]any{"allowed": true, "reason": "x", "repeat": 4096}, "a reason of 4096 bytes"},
		{"a control character", map[string]any{"reason": "fine\r\nsite.audit: allowed"}, "control character U+000D"},
		{"a bidirectional override", map[string]any{"reason": "refused\u202e"}, "U+202E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, bin, binSum, tt.config, 10*time.Second)
			d, err := c.Check(t.Context(), sampleJob())
			if !errors.Is(err, checker.ErrContract) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %+v, %v; want ErrContract saying %q", d, err, tt.want)
			}
			if !strings.Contains(err.Error(), `checker plugin "`+bin+`"`) {
				t.Errorf("error %q does not name the checker", err)
			}
			if d.Allowed {
				t.Fatal("allowed")
			}
		})
	}
}

// TestPluginFailuresFailClosed: a plugin that crashes, hangs past its
// deadline, answers an error or refuses its configuration gives an
// error naming the checker and why, and no decision.
func TestPluginFailuresFailClosed(t *testing.T) {
	tests := []struct {
		name    string
		config  map[string]any
		timeout time.Duration
		want    error
		text    string
	}{
		{"crash", map[string]any{"crash": true}, 10 * time.Second, plugins.ErrExited, "plugin exited"},
		{"hang past the deadline", map[string]any{"hang": true}, 300 * time.Millisecond, plugins.ErrDeadline, "no answer within 300ms; plugin killed"},
		{"the checker's error", map[string]any{"error": "cannot read the policy"}, 10 * time.Second, nil, "check: cannot read the policy"},
		{"a refused configuration", map[string]any{"refuse": "deny: not a list"}, 10 * time.Second, plugins.ErrStart, "deny: not a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, bin, binSum, tt.config, tt.timeout)
			start := time.Now()
			d, err := c.Check(t.Context(), sampleJob())
			if err == nil || d.Allowed || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Check = %+v, %v; want an error wrapping %v saying %q", d, err, tt.want, tt.text)
			}
			if !strings.Contains(err.Error(), `checker plugin "`) {
				t.Errorf("error %q does not name the checker", err)
			}
			if took := time.Since(start); took > tt.timeout+5*time.Second {
				t.Errorf("the failure took %v", took)
			}
		})
	}
}

// TestPluginCrashRestarts: after a crash the next Check starts the
// plugin again, configured, and it answers.
func TestPluginCrashRestarts(t *testing.T) {
	c := newClient(t, bin, binSum, map[string]any{"crash_once": filepath.Join(t.TempDir(), "crashed"), "reason": "refused after the restart"}, 10*time.Second)
	if _, err := c.Check(t.Context(), sampleJob()); !errors.Is(err, plugins.ErrExited) {
		t.Fatalf("first Check: %v, want %v", err, plugins.ErrExited)
	}
	if d, err := c.Check(t.Context(), sampleJob()); err != nil || d.Reason != "refused after the restart" {
		t.Fatalf("second Check = %+v, %v; want the configured answer", d, err)
	}
}

// TestWrongPinNeverExecutes: a binary whose hash differs from the pin is
// never executed: NewClient fails with ErrChecksum and the binary's start
// marker stays absent.
func TestWrongPinNeverExecutes(t *testing.T) {
	wrong := markedSum
	wrong[0] ^= 1
	_, err := checker.NewClient(checker.ClientConfig{Pin: plugins.Pin{Path: marked, SHA256: wrong}, Timeout: time.Second, StageDir: t.TempDir()})
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("NewClient with a wrong pin: %v, want %v", err, plugins.ErrChecksum)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the binary ran: its marker: %v", err)
	}
	// The right pin runs it, which the marker shows.
	c := newClient(t, marked, markedSum, map[string]any{"allowed": true}, 10*time.Second)
	if _, err := c.Check(t.Context(), sampleJob()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the marker after a run: %v", err)
	}
}

// TestClientConcurrentChecks: checks from many goroutines share the one
// plugin and each gets its own job's answer.
func TestClientConcurrentChecks(t *testing.T) {
	c := newClient(t, bin, binSum, map[string]any{"echo": true}, 10*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			j := sampleJob()
			j.JobID = "job-" + strings.Repeat("x", i)
			d, err := c.Check(t.Context(), j)
			if err == nil && d.Reason != testchecker.Describe(j) {
				err = errors.New("answer for another job: " + d.Reason)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientRefusesBeforeAsking: a job beyond the bounds or a
// configuration too large fails before any plugin runs; Check after
// Close fails.
func TestClientRefusesBeforeAsking(t *testing.T) {
	if _, err := checker.NewClient(checker.ClientConfig{Pin: plugins.Pin{Path: bin, SHA256: binSum}, Config: make([]byte, checker.MaxConfigBytes+1), Timeout: time.Second}); err == nil {
		t.Fatal("NewClient took a configuration over the bound")
	}
	c := newClient(t, bin, binSum, map[string]any{"allowed": true}, 10*time.Second)
	j := sampleJob()
	j.Manifest = make([]byte, checker.MaxManifestBytes+1)
	if _, err := c.Check(t.Context(), j); !errors.Is(err, checker.ErrJob) || !strings.Contains(err.Error(), `checker plugin "`) {
		t.Fatalf("Check of an oversized job: %v, want ErrJob naming the checker", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(t.Context(), sampleJob()); !errors.Is(err, plugins.ErrClosed) {
		t.Fatalf("Check after Close: %v, want %v", err, plugins.ErrClosed)
	}
}

// TestImportsPlugin: the imports checker's real binary refuses a job
// importing what the site denies, naming the module and line, and
// allows a clean one; a configuration it cannot parse fails its start.
func TestImportsPlugin(t *testing.T) {
	c := newClient(t, importsBin, importsBinSum, map[string]any{"deny": []string{"socket", "subprocess"}, "deny_calls": []string{"__import__", "eval"}}, 10*time.Second)
	d, err := c.Check(t.Context(), sampleJob())
	if err != nil || d.Allowed || d.Reason != "train.py line 2: imports socket, which this site's policy denies (socket)" {
		t.Fatalf("Check = %+v, %v; want socket refused", d, err)
	}
	j := sampleJob()
	j.Code[0].Data = []byte("import torch\ns = 'import socket'  # import subprocess\n")
	if d, err := c.Check(t.Context(), j); err != nil || !d.Allowed {
		t.Fatalf("Check = %+v, %v; want allowed", d, err)
	}
	bad := newClient(t, importsBin, importsBinSum, map[string]any{"allow": []string{"torch"}, "deny": []string{}}, 10*time.Second)
	if err := bad.Start(t.Context()); err == nil || !strings.Contains(err.Error(), `exactly one of "allow" and "deny"`) {
		t.Fatalf("Start with a bad configuration: %v", err)
	}
}

// TestLocal: a checker in process under the same checks.
func TestLocal(t *testing.T) {
	l, err := checker.NewLocal(t.Context(), "test", &testchecker.Checker{}, []byte(`{"allowed": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Check(t.Context(), sampleJob()); !errors.Is(err, checker.ErrContract) {
		t.Fatalf("Local.Check of a refusal without a reason: %v, want ErrContract", err)
	}
	if _, err := checker.NewLocal(t.Context(), "test", &testchecker.Checker{}, []byte(`{"refuse": "no"}`)); err == nil {
		t.Fatal("NewLocal took a refused configuration")
	}
}
