//go:build unix

package plugins_test

import (
	"path/filepath"
	"syscall"
	"testing"

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
