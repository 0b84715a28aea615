//go:build !unix

package plugins

import (
	"fmt"
	"os"
	"os/exec"
)

// openNoBlock opens path for reading.
func openNoBlock(path string) (*os.File, error) { return os.Open(path) }

// ownGroup does nothing where there are no Unix process groups.
func ownGroup(*exec.Cmd) {}

// killGroup kills p.
func killGroup(p *os.Process) {
	if p != nil {
		_ = p.Kill()
	}
}

// checkWorkDir checks that dir, when set, is a folder.
func checkWorkDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	return nil
}
