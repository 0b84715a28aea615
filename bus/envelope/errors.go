package envelope

import (
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/hearthfl/hearth/bus/pki"
)

// Reasons an envelope is refused. Every error returned by Verifier.Open and
// Verifier.DecodeSealed is a *RefusedError wrapping exactly one of them, so
// callers can tell them apart with errors.Is. The list only grows.
var (
	ErrTooLarge        = errors.New("envelope too large")
	ErrMalformed       = errors.New("malformed envelope")
	ErrWrongRecipient  = errors.New("addressed to another participant")
	ErrUntrustedSender = errors.New("sender certificate not trusted")
	ErrSenderMismatch  = errors.New("sender does not match its certificate or the subject it arrived on")
	ErrBadSignature    = errors.New("signature does not verify")
	ErrTypeNotAllowed  = errors.New("message type not allowed for the sender's kind")
	ErrUnknownType     = errors.New("unknown message type")
	ErrOutsideWindow   = errors.New("sent time outside the replay window")
	ErrReplay          = errors.New("message id already seen")
	ErrReplayCacheFull = errors.New("replay cache full")
	ErrUnseal          = errors.New("sealed body does not open")
	ErrRateLimited     = errors.New("sender over its rate limit")
	ErrKindNotAllowed  = errors.New("sender's kind may not address this participant's kind")
	ErrNotAdmitted     = errors.New("not admitted by the recipient for this job")
)

// RefusedError is a refused envelope: why, and what it claimed to be.
// Sender, MessageID and Type are copied from the header as claimed (they are
// not trusted unless the refusal came after the signature check) and are
// truncated to a bounded length; they are empty when the header did not
// parse.
type RefusedError struct {
	Reason    error // one of the Err* sentinels above
	Cause     error // the underlying error, if any (e.g. a *pki.CertError)
	Sender    string
	MessageID string
	Type      string
	Detail    string
}

// Error reads e.g. `envelope from "site-2" refused: signature does not verify`.
// Claimed values are quoted, so a hostile header cannot forge log lines.
func (e *RefusedError) Error() string {
	msg := "envelope"
	if e.Sender != "" {
		msg += " from " + strconv.Quote(e.Sender)
	}
	msg += " refused: " + e.Reason.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the reason and, when there is one, the cause, so that both
// errors.Is(err, ErrUntrustedSender) and errors.Is(err, pki.ErrRevoked) hold
// for a revoked sender.
func (e *RefusedError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Cause}
}

// Reason returns a short stable code for err, for logs and metrics:
// "too_large", "malformed", "wrong_recipient", "untrusted_sender" (refined to
// "revoked", "expired", "not_yet_valid" or "unknown_authority" when the
// certificate error says so), "sender_mismatch", "bad_signature",
// "type_not_allowed", "unknown_type", "outside_window", "replay",
// "replay_cache_full", "unseal_failed", "rate_limited", "kind_not_allowed",
// "not_admitted";
// "" for nil and "other" for an error
// that is not a refusal.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUntrustedSender):
		if code := pki.Code(err); code != "" && code != "bad_identity" && code != "wrong_kind" {
			return code
		}
		return "untrusted_sender"
	}
	for _, c := range reasonCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "other"
}

var reasonCodes = []struct {
	err  error
	code string
}{
	{ErrTooLarge, "too_large"},
	{ErrMalformed, "malformed"},
	{ErrWrongRecipient, "wrong_recipient"},
	{ErrSenderMismatch, "sender_mismatch"},
	{ErrBadSignature, "bad_signature"},
	{ErrTypeNotAllowed, "type_not_allowed"},
	{ErrUnknownType, "unknown_type"},
	{ErrOutsideWindow, "outside_window"},
	{ErrReplay, "replay"},
	{ErrReplayCacheFull, "replay_cache_full"},
	{ErrUnseal, "unseal_failed"},
	{ErrRateLimited, "rate_limited"},
	{ErrKindNotAllowed, "kind_not_allowed"},
	{ErrNotAdmitted, "not_admitted"},
}

// maxClaimed bounds how much of an attacker-chosen string a RefusedError
// carries into logs.
const maxClaimed = 80

// claimed truncates s to maxClaimed bytes on a rune boundary.
func claimed(s string) string { return Clip(s, maxClaimed) }

// Clip cuts s, a text another participant wrote, to at most limit bytes,
// at a character boundary, marking the cut with "...": the one way Hearth
// bounds such texts before it keeps, logs or relays them.
func Clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
