package plugins_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// TestLoadRefusesBinary shows each check on the binary refusing it before
// it can run: Load fails with the reason and stages nothing.
func TestLoadRefusesBinary(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	copyFile(t, bins.Plain, notExec, 0o644)
	unsafeWork := filepath.Join(dir, "world-writable")
	if err := os.Mkdir(unsafeWork, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(unsafeWork, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	tests := []refusal{
		{name: "missing", path: filepath.Join(dir, "absent"), sum: bins.PlainSum, reason: plugins.ErrUnreadable, cause: fs.ErrNotExist},
		{name: "a folder", path: dir, sum: bins.PlainSum, reason: plugins.ErrNotRegular},
		{name: "a device", path: os.DevNull, sum: bins.PlainSum, reason: plugins.ErrNotRegular},
		{name: "not executable", path: notExec, sum: bins.PlainSum, reason: plugins.ErrNotExecutable},
		{name: "larger than the bound", path: bins.Plain, sum: bins.PlainSum, tweak: func(c *plugins.Config) { c.MaxSize = 1 << 10 }, reason: plugins.ErrTooLarge},
		{name: "hash differs from the pin", path: bins.Plain, sum: bins.MarkedSum, reason: plugins.ErrChecksum},
		{name: "work folder others can write", path: bins.Plain, sum: bins.PlainSum, tweak: func(c *plugins.Config) { c.WorkDir = unsafeWork }, reason: plugins.ErrWorkDir},
	}
	tests = append(tests, platformRefusals(t, dir)...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(t, tt.path, tt.sum, nil)
			if tt.tweak != nil {
				tt.tweak(&cfg)
			}
			p, err := plugins.Load(cfg)
			if err == nil {
				p.Close()
				t.Fatal("Load accepted the binary")
			}
			if !errors.Is(err, tt.reason) {
				t.Fatalf("Load: %v, want %v", err, tt.reason)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Fatalf("Load: %v, want it to wrap %v", err, tt.cause)
			}
			var pe *plugins.Error
			if !errors.As(err, &pe) || pe.Path != tt.path {
				t.Fatalf("Load: %v, want a *plugins.Error naming %s", err, tt.path)
			}
			if cfg.WorkDir != unsafeWork {
				if left, _ := os.ReadDir(cfg.WorkDir); len(left) != 0 {
					t.Fatalf("the work folder keeps %d entries after a refusal", len(left))
				}
			}
		})
	}
}

// refusal is a binary that Load must refuse, and why.
type refusal struct {
	name   string
	path   string
	sum    [32]byte
	tweak  func(*plugins.Config)
	reason error
	cause  error
}

// TestHashMismatchNeverExecutes shows that a binary whose hash differs
// from the pin never runs: the marked test plugin appends to its marker
// file whenever it starts; loaded under another binary's pin, it does not
// (and, as a control, it does under its own pin).
func TestHashMismatchNeverExecutes(t *testing.T) {
	before, err := bins.Starts()
	if err != nil {
		t.Fatal(err)
	}
	_, err = plugins.Load(config(t, bins.Marked, bins.PlainSum, nil))
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("Load under another binary's pin: %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), "does not match its pinned sha256") {
		t.Fatalf("the error %q does not say why", err)
	}
	if after, _ := bins.Starts(); after != before {
		t.Fatalf("the binary ran %d times although its hash differs from the pin", after-before)
	}

	p := load(t, config(t, bins.Marked, bins.MarkedSum, map[string]any{"users": alice}))
	mustAuthenticate(t, p)
	if after, _ := bins.Starts(); after != before+1 {
		t.Fatalf("control: the marked binary started %d times under its own pin, want 1 (the marker does not work)", after-before)
	}
}

// TestLoadStagesAPrivateCopy shows what runs: a read-only copy in a
// folder only this user can enter, not the pinned path; Close removes it.
func TestLoadStagesAPrivateCopy(t *testing.T) {
	cfg := config(t, bins.Plain, bins.PlainSum, map[string]any{"users": alice})
	p, err := plugins.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(cfg.WorkDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("work folder: %v, %d entries, want the one private folder", err, len(entries))
	}
	priv := filepath.Join(cfg.WorkDir, entries[0].Name())
	fi, err := os.Stat(priv)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("private folder %v: %v, want mode 0700", fi.Mode(), err)
	}
	bin := filepath.Join(priv, filepath.Base(bins.Plain))
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o500 {
		t.Fatalf("staged copy: %v, %v; want mode 0500", fi, err)
	}
	if sum, _ := plugintest.SHA256File(bin); sum != bins.PlainSum {
		t.Fatal("the staged copy is not the pinned binary")
	}
	mustAuthenticate(t, p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(priv); !os.IsNotExist(err) {
		t.Fatalf("private folder after Close: %v, want it removed", err)
	}
}

// copyFile copies src to dst with mode perm.
func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, perm); err != nil {
		t.Fatal(err)
	}
}
