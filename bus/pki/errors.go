package pki

import "errors"

// Reasons a certificate is refused. Every refusal wraps exactly one of them,
// so callers can tell them apart with errors.Is.
var (
	ErrUnknownAuthority = errors.New("not issued by the project root CA")
	ErrExpired          = errors.New("certificate expired")
	ErrNotYetValid      = errors.New("certificate not yet valid")
	ErrRevoked          = errors.New("certificate revoked")
	ErrBadIdentity      = errors.New("certificate identity malformed")
	ErrWrongKind        = errors.New("certificate kind not allowed here")
)

// CertError is a refused certificate: which one, and why.
type CertError struct {
	Name   string // the certificate's CN, as presented (not trusted)
	Serial string
	Reason error // one of the Err* values above
	Detail string
}

func (e *CertError) Error() string {
	msg := "certificate " + quote(e.Name)
	if e.Serial != "" {
		msg += " (serial " + e.Serial + ")"
	}
	msg += " refused: " + e.Reason.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the reason, so errors.Is(err, ErrRevoked) works.
func (e *CertError) Unwrap() error { return e.Reason }

func quote(s string) string { return "\"" + s + "\"" }

// Code is a short stable code for a certificate refusal, for logs and
// metrics: "unknown_authority", "expired", "not_yet_valid", "revoked",
// "bad_identity", "wrong_kind"; "" when err is none of them.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

var codes = []struct {
	err  error
	code string
}{
	{ErrRevoked, "revoked"},
	{ErrExpired, "expired"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrUnknownAuthority, "unknown_authority"},
	{ErrBadIdentity, "bad_identity"},
	{ErrWrongKind, "wrong_kind"},
}
