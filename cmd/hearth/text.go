package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termText makes text that came from elsewhere (a job name, a failure
// reason, a site name, an error relayed by the server) safe to print on a
// terminal as part of one line: it cannot move the cursor, clear the screen,
// start a new line, reorder what follows, or pass for another row.
//
// Printable characters, spaces included, pass unchanged, except the
// backslash, doubled so that an escape cannot be forged. Everything else is
// shown escaped, Go style: \n, \r and \t; other control characters (C0, DEL,
// C1, hence every ANSI escape sequence's ESC or CSI) as \xNN or \u0085;
// format characters (bidi overrides and isolates such as U+202E, zero-width
// characters, BOM) and line or paragraph separators as \uNNNN; each byte of
// invalid UTF-8 as \xNN.
func termText(s string) string {
	if isTermSafe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r) && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// isTermSafe reports whether s is all printable and has no backslash, so
// that termText can return it as it is.
func isTermSafe(s string) bool {
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || unsafeRune(r) {
			return false // RuneError: maybe invalid UTF-8, sorted out by termText
		}
	}
	return true
}

// unsafeRune reports whether r may control a terminal or disguise text:
// anything but letters, marks, numbers, punctuation, symbols and the ASCII
// space, so control characters, format characters (bidi, zero width), line
// and paragraph separators, other spaces, private-use and unassigned code
// points.
func unsafeRune(r rune) bool { return !unicode.IsPrint(r) }

// termError is an error whose text came, at least in part, from elsewhere
// (the server's answer): Error escapes it with termText, Unwrap keeps the
// original for errors.Is and exit codes.
type termError struct{ err error }

func (e termError) Error() string { return termText(e.err.Error()) }
func (e termError) Unwrap() error { return e.err }

// safeError wraps err so that printing it cannot control the terminal; nil
// stays nil.
func safeError(err error) error {
	if err == nil || errors.As(err, new(termError)) {
		return err
	}
	return termError{err}
}

// termList escapes each name and joins them with sep.
func termList(names []string, sep string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = termText(n)
	}
	return strings.Join(out, sep)
}
