package trainer

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ownerOf is process pid's identity in a folder's name: its id and its
// start time (clock ticks since boot, /proc/<pid>/stat), so that a later
// process given the same id is not taken for it.
func ownerOf(pid int) string {
	start, ok := startTime(pid)
	if !ok {
		start = "0"
	}
	return strconv.Itoa(pid) + "." + start
}

// startTime is the 22nd field of /proc/<pid>/stat: when the process
// started.
func startTime(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields after it follow the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 { // fields 3..22
		return "", false
	}
	return f[19], true
}

// processGone reports whether the process of id pid that started at
// start has ended (or never ran here: another boot).
func processGone(pid int, start string) bool {
	now, ok := startTime(pid)
	return !ok || now != start
}

// ownedByMe reports whether path (not followed) belongs to this
// process's user.
func ownedByMe(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
