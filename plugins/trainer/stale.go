package trainer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// StalePrefix begins the name of every folder a Client or NewPython
// makes for a trainer (the working folder, the shared memory folder),
// followed by its role, the making process's identity and a random part:
// hearth-trainer-<role>-<pid>.<start>-<random>. ClearStale finds a
// site's leftovers by it.
const StalePrefix = "hearth-trainer-"

// makePrivate makes a fresh folder (mode 0700) in parent ("" means the
// system's temporary folder), named for role and this process (see
// StalePrefix).
func makePrivate(parent, role string) (string, error) {
	return os.MkdirTemp(parent, StalePrefix+role+"-"+ownerOf(os.Getpid())+"-")
}

// ClearStale removes the trainer folders (named with StalePrefix) that
// earlier processes of this user left in shmDir and workRoot: those a
// site's crash left, since a Client's Close removes its own. "" means
// what NewPython takes for each (DefaultShmDir when it exists, the
// system's temporary folder). A folder is left alone when the process
// that made it still runs (another site of the same user, this one), when
// another user owns it, or when its name carries no process identity; a
// site calls ClearStale at its start, before it makes any trainer. It
// removes nothing where the making process cannot be told apart from a
// later one with the same id (systems other than Linux). The error
// joins every removal that failed; a missing folder is none.
func ClearStale(shmDir, workRoot string) error {
	shmDir = shmDirOf(shmDir)
	if shmDir == "" {
		shmDir = os.TempDir()
	}
	if workRoot == "" {
		workRoot = os.TempDir()
	}
	roots := []string{filepath.Clean(shmDir)}
	if w := filepath.Clean(workRoot); w != roots[0] {
		roots = append(roots, w)
	}
	var errs []error
	for _, root := range roots {
		entries, err := os.ReadDir(root)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("trainer: stale folders in %s: %w", root, err))
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !stale(root, e.Name()) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("trainer: a stale folder: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// stale reports whether root/name is a trainer folder of this user's
// whose making process is gone.
func stale(root, name string) bool {
	rest, ok := strings.CutPrefix(name, StalePrefix)
	if !ok {
		return false
	}
	// <role>-<pid>.<start>-<random>
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) != 3 {
		return false
	}
	pidText, start, ok := strings.Cut(parts[1], ".")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 || start == "" {
		return false
	}
	if !ownedByMe(filepath.Join(root, name)) {
		return false
	}
	return processGone(pid, start)
}
