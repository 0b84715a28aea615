package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestRefusedErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *envelope.RefusedError
		want string
	}{
		{"with sender", &envelope.RefusedError{Reason: envelope.ErrBadSignature, Sender: "site-2"},
			`envelope from "site-2" refused: signature does not verify`},
		{"with detail", &envelope.RefusedError{Reason: envelope.ErrReplay, Sender: "site-2", Detail: "id ab"},
			`envelope from "site-2" refused: message id already seen: id ab`},
		{"no sender", &envelope.RefusedError{Reason: envelope.ErrMalformed, Detail: "empty"},
			`envelope refused: malformed envelope: empty`},
		{"hostile sender is quoted", &envelope.RefusedError{Reason: envelope.ErrMalformed, Sender: "x\nlevel=INFO"},
			`envelope from "x\nlevel=INFO" refused: malformed envelope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRefusalClaimsAreBounded(t *testing.T) {
	fx := newFixture(t)
	long := strings.Repeat("é", 1000) + "\n"
	data := resign(t, ping(t, fx.site2), fx.site2Key, func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.Sender = long })
	_, err := fx.verifier(t, newClock(), nil).Open("site-2", data)
	var re *envelope.RefusedError
	if !errors.As(err, &re) || re.Reason != envelope.ErrMalformed {
		t.Fatalf("got %v, want a malformed refusal", err)
	}
	if len(re.Sender) > 100 || strings.Contains(err.Error(), "\n") || len(err.Error()) > 500 {
		t.Errorf("claimed sender not bounded or not quoted: %d bytes: %q", len(err.Error()), err)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"not a refusal", errors.New("boom"), "other"},
		{"untrusted, unspecified", &envelope.RefusedError{Reason: envelope.ErrUntrustedSender}, "untrusted_sender"},
		{"untrusted, bad identity", &envelope.RefusedError{Reason: envelope.ErrUntrustedSender,
			Cause: &pki.CertError{Reason: pki.ErrBadIdentity}}, "untrusted_sender"},
		{"revoked", &envelope.RefusedError{Reason: envelope.ErrUntrustedSender, Cause: &pki.CertError{Reason: pki.ErrRevoked}}, "revoked"},
		{"too large", &envelope.RefusedError{Reason: envelope.ErrTooLarge}, "too_large"},
		{"unseal", &envelope.RefusedError{Reason: envelope.ErrUnseal}, "unseal_failed"},
		{"wrapped further", errors.Join(errors.New("bridge"), &envelope.RefusedError{Reason: envelope.ErrReplay}), "replay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := envelope.Reason(tt.err); got != tt.want {
				t.Errorf("Reason = %q, want %q", got, tt.want)
			}
		})
	}
}
