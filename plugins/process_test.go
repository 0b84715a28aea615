package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// TestCrashMidCallRestarts shows a plugin that exits in the middle of a
// call: the call fails as ErrExited (could not decide), and the next call
// starts the plugin again and is answered.
func TestCrashMidCallRestarts(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "crashed")
	p := load(t, config(t, bins.Plain, bins.PlainSum, map[string]any{"users": alice, "crash_once": marker}))
	_, err := authenticate(t.Context(), p, aliceRequest)
	if !errors.Is(err, plugins.ErrExited) {
		t.Fatalf("call into a crashing plugin: %v, want ErrExited", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the plugin did not reach its crash: %v", err)
	}
	mustAuthenticate(t, p)
}

// TestHangHitsDeadline shows a plugin that never answers: the call fails
// as ErrDeadline at about its timeout, the plugin is killed, and the next
// call starts it again and is answered.
func TestHangHitsDeadline(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "hung")
	cfg := config(t, bins.Plain, bins.PlainSum, map[string]any{"users": alice, "hang_once": marker})
	cfg.Timeout = 300 * time.Millisecond
	p := load(t, cfg)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := authenticate(t.Context(), p, aliceRequest)
	took := time.Since(start)
	t.Logf("refused after %v (timeout %v)", took, cfg.Timeout)
	if !errors.Is(err, plugins.ErrDeadline) {
		t.Fatalf("call into a hung plugin: %v, want ErrDeadline", err)
	}
	if took < cfg.Timeout || took > cfg.Timeout+time.Second {
		t.Fatalf("the call failed after %v, want about its %v timeout", took, cfg.Timeout)
	}
	mustAuthenticate(t, p)
}

// TestHangAlwaysKeepsFailingClosed shows a plugin that hangs in every
// call: each call fails with ErrDeadline or, while the restarts back off,
// at once with ErrRestarting; none is ever answered.
func TestHangAlwaysKeepsFailingClosed(t *testing.T) {
	cfg := config(t, bins.Plain, bins.PlainSum, map[string]any{"users": alice, "hang": true})
	cfg.Timeout = 150 * time.Millisecond
	cfg.Backoff = plugins.Backoff{Min: time.Hour, Max: time.Hour}
	p := load(t, cfg)
	want := []error{plugins.ErrDeadline, plugins.ErrDeadline, plugins.ErrRestarting}
	for i, reason := range want {
		start := time.Now()
		_, err := authenticate(t.Context(), p, aliceRequest)
		if !errors.Is(err, reason) {
			t.Fatalf("call %d: %v, want %v", i+1, err, reason)
		}
		if reason == plugins.ErrRestarting && time.Since(start) > 50*time.Millisecond {
			t.Fatalf("call %d during the backoff took %v, want it to fail at once", i+1, time.Since(start))
		}
	}
}

// TestStartFailureBacksOff shows restarts backing off: a binary that
// exits at once (it is no plugin) fails its first start and, restarted at
// once, its second; calls then fail at once with ErrRestarting, whose
// reason names the last failure, until the backoff has passed.
func TestStartFailureBacksOff(t *testing.T) {
	script := filepath.Join(t.TempDir(), "exits")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'not a plugin' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := plugintest.SHA256File(script)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, script, sum, nil)
	cfg.Backoff = plugins.Backoff{Min: 300 * time.Millisecond, Max: time.Second}
	p := load(t, cfg)
	for i := range 2 {
		if err := p.Start(t.Context()); !errors.Is(err, plugins.ErrStart) {
			t.Fatalf("start %d: %v, want ErrStart", i+1, err)
		}
	}
	start := time.Now()
	err = p.Start(t.Context())
	if !errors.Is(err, plugins.ErrRestarting) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("start during the backoff: %v after %v, want ErrRestarting at once", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("%q does not name the last failure", err)
	}
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if err := p.Start(t.Context()); !errors.Is(err, plugins.ErrStart) {
			return fmt.Errorf("start after the backoff: %v, want it tried again (ErrStart)", err)
		}
		return nil
	})
}

// TestPluginEnvironmentHoldsNoHostVariable shows SkipHostEnv: the plugin
// sees only go-plugin's handshake variables, none of the host's.
func TestPluginEnvironmentHoldsNoHostVariable(t *testing.T) {
	const sentinel = "s3cr3t-value-of-the-host"
	t.Setenv("HEARTH_SECRET_SENTINEL", sentinel)
	p := load(t, config(t, bins.Plain, bins.PlainSum, map[string]any{"report_env": true}))
	d, err := authenticate(t.Context(), p, aliceRequest)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"HEARTH_AUTHN_PLUGIN", "PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT"}
	if len(d.Groups) == 0 {
		t.Fatal("the plugin reported no environment at all (go-plugin's handshake variables missing?)")
	}
	for _, kv := range d.Groups {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(allowed, name) {
			t.Errorf("the plugin's environment holds %s, which is not one of go-plugin's variables", name)
		}
		if strings.Contains(kv, sentinel) {
			t.Errorf("the host's secret reached the plugin: %s", kv)
		}
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, got := range d.Groups {
			if strings.HasPrefix(got, name+"=") {
				t.Errorf("the host's variable %s reached the plugin", name)
			}
		}
	}
}

// TestCloseStopsEverything shows Close: the plugin process is gone, calls
// fail with ErrClosed, and no goroutine of the loader or go-plugin is
// left.
func TestCloseStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	p, err := plugins.Load(config(t, bins.Plain, bins.PlainSum, map[string]any{"users": alice}))
	if err != nil {
		t.Fatal(err)
	}
	mustAuthenticate(t, p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if _, err := authenticate(t.Context(), p, aliceRequest); !errors.Is(err, plugins.ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > base {
			return fmt.Errorf("%d goroutines after Close, %d before Load", n, base)
		}
		return nil
	})
}

// TestPluginOutputReachesTheLoggerBounded shows the plugin's stderr in
// the injected logger, each line cut to a bound and the lines rate
// limited, the dropped ones counted.
func TestPluginOutputReachesTheLoggerBounded(t *testing.T) {
	rec := &recorder{}
	cfg := config(t, bins.Plain, bins.PlainSum, map[string]any{"users": alice, "stderr_lines": 2000, "stderr_line_size": 5000})
	cfg.Logger = slog.New(rec)
	p := load(t, cfg)
	start := time.Now()
	mustAuthenticate(t, p)
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if len(rec.lines("stdio-stderr")) == 0 {
			return errors.New("none of the plugin's stderr lines reached the logger")
		}
		return nil
	})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines := rec.lines("stdio-stderr")
	// At most the burst (200) and 20 a second after it.
	if bound := 200 + int(20*time.Since(start).Seconds()) + 1; len(lines) > bound {
		t.Fatalf("%d of the plugin's 2000 lines logged in %v, want at most %d", len(lines), time.Since(start), bound)
	}
	for _, r := range lines {
		if len(r.Message) > 2048 {
			t.Fatalf("a logged line of %d bytes, want at most 2048", len(r.Message))
		}
	}
	if !rec.has("clipped") {
		t.Fatal("the cut lines are not marked clipped")
	}
}

// recorder is a slog handler that keeps the records.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// lines are the records of the plugin's output stream.
func (r *recorder) lines(stream string) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.recs {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "stream" && a.Value.String() == stream {
				out = append(out, rec)
				return false
			}
			return true
		})
	}
	return out
}

// has reports whether some record carries the attribute key.
func (r *recorder) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		found := false
		rec.Attrs(func(a slog.Attr) bool {
			found = a.Key == key
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// TestConcurrentCallsShareOneStart shows calls that arrive together
// while no plugin runs joining one start (the marked binary counts its
// starts) and all being answered.
func TestConcurrentCallsShareOneStart(t *testing.T) {
	before, err := bins.Starts()
	if err != nil {
		t.Fatal(err)
	}
	p := load(t, config(t, bins.Marked, bins.MarkedSum, map[string]any{"users": alice}))
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			d, err := authenticate(t.Context(), p, aliceRequest)
			if err == nil && !d.Authenticated {
				err = fmt.Errorf("decision %+v, want authenticated", d)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := bins.Starts(); after != before+1 {
		t.Fatalf("%d concurrent first calls started the plugin %d times, want once", n, after-before)
	}
}
