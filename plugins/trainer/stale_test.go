package trainer_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/plugins/trainer"
)

// TestClearStale: at a site's start, the trainer folders that earlier
// processes of its user left (a crash: the process is gone, or its id
// now belongs to a later process) are removed from the shared memory and
// work roots; the folders of a process that runs (this one's own, a
// live trainer's), another user's, and whatever does not carry a
// trainer folder's name stay.
func TestClearStale(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ClearStale tells processes apart by /proc's start times")
	}
	shm, work := t.TempDir(), t.TempDir()
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(gone.Process.Pid)
	me := strconv.Itoa(os.Getpid())
	mk := func(root, name string) string {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(p, "inside"), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{
		mk(shm, "hearth-trainer-py-"+dead+".4242-1"),
		mk(work, "hearth-trainer-work-"+dead+".4242-2"),
		mk(shm, "hearth-trainer-shm-"+me+".1-3"), // this process's id, another start: a process before it
	}
	kept := []string{
		mk(shm, "hearth-trainer-work-abc"), // no process identity
		mk(shm, "hearth-trainer-py-x.1-4"),
		mk(work, "other-"+dead+".4242-5"),
	}
	if err := os.WriteFile(filepath.Join(work, "hearth-trainer-work-"+dead+".4242-6"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, filepath.Join(work, "hearth-trainer-work-"+dead+".4242-6"))
	if os.Geteuid() == 0 {
		theirs := mk(work, "hearth-trainer-work-"+dead+".4242-7")
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, theirs)
	}
	// A live trainer's folders, this process's.
	c, err := trainer.NewPython(pythonConfig(t, "mlp.py", t.TempDir(), map[string]any{"dataset": "optdigits"}, func(c *trainer.PythonConfig) {
		c.ShmDir, c.WorkRoot = shm, work
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kept = append(kept, c.WorkDir())
	entries, _ := os.ReadDir(shm)
	for _, e := range entries {
		if p := filepath.Join(shm, e.Name()); strings.HasPrefix(e.Name(), "hearth-trainer-py-"+me+".") {
			kept = append(kept, p)
		}
	}
	if len(kept) < 6 {
		t.Fatalf("the live trainer's folders are not named for this process: %v", entries)
	}

	if err := trainer.ClearStale(shm, work); err != nil {
		t.Fatalf("ClearStale: %v", err)
	}
	for _, p := range stale {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("a stale folder stayed: %s (%v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("ClearStale removed %s: %v", p, err)
		}
	}
	if err := trainer.ClearStale(filepath.Join(shm, "missing"), filepath.Join(work, "missing")); err != nil {
		t.Errorf("ClearStale of missing roots: %v", err)
	}
}

// TestPythonFolders: NewPython makes the working folder under the site's
// WorkRoot and its shared memory folder under ShmDir, both private and
// named for ClearStale; a file size limit below the model bound is
// refused.
func TestPythonFolders(t *testing.T) {
	shm, work := t.TempDir(), t.TempDir()
	c, err := trainer.NewPython(pythonConfig(t, "mlp.py", t.TempDir(), map[string]any{"dataset": "optdigits"}, func(c *trainer.PythonConfig) {
		c.ShmDir, c.WorkRoot = shm, work
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if dir, name := filepath.Split(c.WorkDir()); filepath.Clean(dir) != work || !strings.HasPrefix(name, trainer.StalePrefix+"work-"+strconv.Itoa(os.Getpid())+".") {
		t.Errorf("the working folder %s: want one under %s named for this process", c.WorkDir(), work)
	}
	entries, _ := os.ReadDir(shm)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), trainer.StalePrefix+"py-") {
		t.Errorf("the shared memory folder holds %v, want one trainer folder", entries)
	}
	for _, tc := range []struct {
		name     string
		fileSize int64
		model    int64
		ok       bool
	}{
		{"below the model bound", 1 << 20, 2 << 20, false},
		{"the model bound", 2 << 20, 2 << 20, true},
		{"the default for a large model bound", 0, 3 << 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := trainer.NewPython(pythonConfig(t, "mlp.py", t.TempDir(), map[string]any{"dataset": "optdigits"}, func(c *trainer.PythonConfig) {
				c.Limits.FileSize, c.MaxModelBytes = tc.fileSize, tc.model
			}))
			if err == nil {
				c.Close()
			}
			if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "file size limit")) {
				t.Errorf("NewPython with a file size limit of %d, models of %d: %v, want ok %v", tc.fileSize, tc.model, err, tc.ok)
			}
		})
	}
}
