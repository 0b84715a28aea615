package tee_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/policies/attestation/tee"
)

func TestRefusedError(t *testing.T) {
	cause := errors.New("x509: certificate signed by unknown authority")
	err := fmt.Errorf("host h1: %w", tee.Refuse(tee.KindSEVSNP, tee.ReasonChain, "VCEK: %w", cause))
	if got, want := err.Error(), "host h1: attestation: sev-snp: chain: VCEK: x509: certificate signed by unknown authority"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var re *tee.RefusedError
	if !errors.As(err, &re) || re.Kind != tee.KindSEVSNP || re.Reason != tee.ReasonChain {
		t.Fatalf("errors.As = %+v", re)
	}
	if !errors.Is(err, cause) {
		t.Error("the refusal does not unwrap to its cause")
	}
	tests := []struct {
		name   string
		target *tee.RefusedError
		want   bool
	}{
		{"same reason", &tee.RefusedError{Reason: tee.ReasonChain}, true},
		{"same kind", &tee.RefusedError{Kind: tee.KindSEVSNP}, true},
		{"both", &tee.RefusedError{Kind: tee.KindSEVSNP, Reason: tee.ReasonChain}, true},
		{"other reason", &tee.RefusedError{Reason: tee.ReasonDebug}, false},
		{"other kind", &tee.RefusedError{Kind: tee.KindNvidiaGPU, Reason: tee.ReasonChain}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(err, tt.target); got != tt.want {
				t.Errorf("errors.Is(err, %+v) = %v, want %v", tt.target, got, tt.want)
			}
		})
	}
	if tee.ReasonOf(err) != tee.ReasonChain || tee.ReasonOf(cause) != "" || tee.ReasonOf(nil) != "" {
		t.Error("ReasonOf")
	}
}

func TestRefuseBoundsDetail(t *testing.T) {
	long := tee.Refuse(tee.KindNvidiaGPU, tee.ReasonNonce, "%s", "evil\nline "+strings.Repeat("é", 400))
	if len(long.Detail) > 310 || strings.ContainsRune(long.Detail, '\n') {
		t.Errorf("Detail not bounded and cleaned: %d bytes, %q...", len(long.Detail), long.Detail[:20])
	}
	if !strings.HasSuffix(long.Detail, "...") || !strings.HasPrefix(long.Detail, "evil?line ") {
		t.Errorf("Detail = %q...", long.Detail[:20])
	}
}

func TestUnder(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"member", &tee.ParseError{Path: "minimum_tcb.tee", Msg: "m"}, "attestation: sev_snp.minimum_tcb.tee: m"},
		{"element", &tee.ParseError{Path: "[2]", Msg: "m"}, "attestation: sev_snp[2]: m"},
		{"the section itself", &tee.ParseError{Msg: "m"}, "attestation: sev_snp: m"},
		{"not a parse error", errors.New("other"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tee.Under("sev_snp", tt.err).Error(); got != tt.want {
				t.Errorf("Under = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	for _, k := range tee.Kinds() {
		if !k.Known() {
			t.Errorf("%s not known", k)
		}
	}
	if tee.Kind("tdx").Known() {
		t.Error("tdx known")
	}
}
