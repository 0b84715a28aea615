//go:build unix

package plugins

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// openNoBlock opens path for reading without blocking, should it have
// become a FIFO since it was checked (the caller then refuses it).
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// ownGroup makes cmd start in a process group of its own, so that
// killGroup reaches whatever the plugin started too.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithHost(cmd.SysProcAttr)
}

// killGroup kills the process group that p leads, then p itself (should
// the group be gone, p may still need reaping).
func killGroup(p *os.Process) {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}

// checkWorkDir refuses a work folder in which another user could rename
// the private folder away and put their own in its place: one writable
// by group or others without the sticky bit (/tmp has it).
func checkWorkDir(dir string) error {
	if dir == "" {
		dir = os.TempDir()
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a folder", dir)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("%s is writable by others (mode %v) and not sticky", dir, fi.Mode())
	}
	return nil
}
