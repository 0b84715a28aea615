//go:build unix && !linux

package plugins

import "syscall"

// dieWithHost: only Linux has a parent-death signal; elsewhere a plugin
// can outlive a site that was killed without closing it.
func dieWithHost(*syscall.SysProcAttr) {}
