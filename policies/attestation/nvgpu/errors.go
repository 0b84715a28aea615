package nvgpu

import (
	"strings"
	"unicode/utf8"

	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// Verify refuses with the refusal every attestation verifier shares
// (policies/attestation/tee), of kind nvidia-gpu, each check with its own
// reason.
type (
	Reason       = tee.Reason
	RefusedError = tee.RefusedError
)

// The reasons Verify refuses with, one per check (tee documents each).
const (
	ReasonSize        = tee.ReasonSize        // over MaxReport, MaxCertChain or MaxDevices, checked before parsing
	ReasonEvidence    = tee.ReasonEvidence    // missing or incomplete: no devices, a device without report or chain
	ReasonCCMode      = tee.ReasonCCMode      // the confidential-computing feature is off
	ReasonNotReady    = tee.ReasonNotReady    // the GPUs do not accept work (CC ready state unset)
	ReasonDevTools    = tee.ReasonDevTools    // developer-tools mode on, and the reference does not allow it
	ReasonChain       = tee.ReasonChain       // no chain to the pinned root, or a certificate not valid now
	ReasonFormat      = tee.ReasonFormat      // not a well-formed SPDM request and response, or not PEM
	ReasonSignature   = tee.ReasonSignature   // the report's signature does not verify with the leaf's key
	ReasonNonce       = tee.ReasonNonce       // a report for another nonce (a replay, or another key)
	ReasonMeasurement = tee.ReasonMeasurement // a value not in the reference, or a referenced index absent
	ReasonDriver      = tee.ReasonDriver      // the driver below the minimum, absent, or not NVML's
	ReasonGPUCount    = tee.ReasonGPUCount    // fewer GPUs than min_gpus
)

func refuse(r Reason, format string, args ...any) *RefusedError {
	return tee.Refuse(tee.KindNvidiaGPU, r, format, args...)
}

// maxShown bounds an attacker-chosen string before it enters a detail.
const maxShown = 64

// clip returns s bounded to maxShown bytes, invalid UTF-8 and control
// characters replaced, for details and logs.
func clip(s string) string {
	if len(s) > maxShown {
		s = s[:maxShown] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
