//go:build unix

package auditor

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking flock on f, released when f is
// closed. flock locks belong to the open file, so a second Open of the same
// path fails even within one process.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
