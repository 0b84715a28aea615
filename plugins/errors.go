package plugins

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Reasons a plugin could not answer. Every error that Load and a Process
// return is an *Error wrapping exactly one of them, so callers tell them
// apart with errors.Is. The list only grows.
var (
	ErrUnreadable    = errors.New("plugin binary cannot be read")
	ErrNotRegular    = errors.New("plugin binary is not a regular file")
	ErrNotExecutable = errors.New("plugin binary is not executable")
	ErrTooLarge      = errors.New("plugin binary larger than its bound")
	ErrChecksum      = errors.New("plugin binary does not match its pinned sha256")
	ErrWorkDir       = errors.New("plugin work folder unusable")
	ErrStart         = errors.New("plugin did not start")
	ErrRestarting    = errors.New("plugin restarting")
	ErrDeadline      = errors.New("plugin did not answer before its deadline")
	ErrExited        = errors.New("plugin exited")
	ErrClosed        = errors.New("plugin host closed")
)

// maxDetail bounds an Error's detail and a cause's text when rendered:
// both can carry what a plugin wrote.
const maxDetail = 512

// Error is a plugin failure: which plugin, why, and the underlying error.
// It is what a kind answers as "could not decide".
type Error struct {
	Kind   string // the plugin kind, e.g. "authn"
	Path   string // the pinned binary's path
	Reason error  // one of the Err* sentinels above
	Cause  error  // the underlying error, if any
	Detail string // more about the reason, e.g. the hash found
}

// Error reads e.g. `authn plugin "/opt/hearth-authn-ldap": plugin binary
// does not match its pinned sha256: found 3f...`. The path is quoted and
// the detail and cause are clipped, so that what a plugin writes cannot
// forge log lines or grow without bound.
func (e *Error) Error() string {
	return e.Kind + " plugin " + strconv.Quote(e.Path) + ": " + e.tail()
}

// tail is the error without the plugin's name.
func (e *Error) tail() string {
	msg := e.Reason.Error()
	if e.Detail != "" {
		msg += ": " + Clip(e.Detail, maxDetail)
	}
	if e.Cause != nil {
		msg += ": " + Clip(firstLine(e.Cause.Error()), maxDetail)
	}
	return msg
}

// firstLine is s up to its first line break, marked when cut: go-plugin's
// start errors go on with lines of advice.
func firstLine(s string) string {
	if line, _, cut := strings.Cut(strings.TrimSpace(s), "\n"); cut {
		return line + " [...]"
	}
	return s
}

// Unwrap returns the reason and, when there is one, the cause, so that
// both errors.Is(err, ErrUnreadable) and errors.Is(err, fs.ErrNotExist)
// hold for a missing binary.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Cause}
}

// Clip bounds s to at most n bytes, cutting at a rune boundary and
// marking the cut, and quotes s first when it holds control characters or
// invalid UTF-8. Kinds clip what a plugin answers (an error text, a
// reason) with it before it reaches a log or an audit record.
func Clip(s string, n int) string {
	quoted := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			quoted = true
			break
		}
	}
	if quoted {
		s = strconv.Quote(s)
	}
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...[clipped]"
}
