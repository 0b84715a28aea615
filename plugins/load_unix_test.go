//go:build unix

package plugins_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
)

// platformRefusals are the refusals only Unix can set up: a FIFO, which
// Load must refuse without blocking on it.
func platformRefusals(t *testing.T, dir string) []refusal {
	t.Helper()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	return []refusal{{name: "a FIFO", path: fifo, sum: bins.PlainSum, reason: plugins.ErrNotRegular}}
}

// TestKillReachesThePluginsChildren shows the plugin's process group
// killed as a whole: a hung plugin whose child holds its stderr open
// (which would keep go-plugin waiting on the pipe) is cut off at the
// deadline, the child dies with it, and Close returns.
func TestKillReachesThePluginsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg := config(t, bins.Plain, bins.PlainSum, map[string]any{"hang": true, "child_pid_file": pidFile})
	cfg.Timeout = 200 * time.Millisecond
	p := load(t, cfg)
	start := time.Now()
	if _, err := authenticate(t.Context(), p, aliceRequest); !errors.Is(err, plugins.ErrDeadline) {
		t.Fatalf("call into a hung plugin: %v, want ErrDeadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the call returned after %v: killing the plugin waited on its child", took)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if alive(pid) {
			return fmt.Errorf("the plugin's child %d is still running", pid)
		}
		return nil
	})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid runs (a zombie, which a container's init
// may leave unreaped, does not count).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // not Linux: the signal is all there is
	}
	// The state follows the command's closing parenthesis.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
