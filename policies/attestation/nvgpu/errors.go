package nvgpu

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Reason says why Verify refused evidence. The list only grows; each value
// is stable and may be logged, counted and shown to an operator.
type Reason string

// The reasons Verify refuses with, one per check.
const (
	// ReasonSize: the evidence is larger than the bounds (MaxReport,
	// MaxCertChain, MaxDevices), checked before anything is parsed.
	ReasonSize Reason = "size"
	// ReasonEvidence: the evidence is missing or incomplete (no devices,
	// a device without a report or a chain).
	ReasonEvidence Reason = "evidence"
	// ReasonCCMode: the system's confidential-computing feature is off.
	ReasonCCMode Reason = "cc_mode"
	// ReasonNotReady: the GPUs do not accept work (CC ready state unset).
	ReasonNotReady Reason = "not_ready"
	// ReasonDevTools: CC developer-tools mode is on (the GPU is debuggable)
	// and the reference does not allow it.
	ReasonDevTools Reason = "devtools"
	// ReasonChain: a device's certificate chain does not lead to the
	// pinned root, or a certificate is not valid at the verification time.
	ReasonChain Reason = "chain"
	// ReasonFormat: a report is not a well-formed SPDM GET_MEASUREMENTS
	// request and response, or a chain is not PEM certificates.
	ReasonFormat Reason = "format"
	// ReasonSignature: a report's signature does not verify with the key
	// of the device's leaf certificate.
	ReasonSignature Reason = "signature"
	// ReasonNonce: a report answers another nonce than the verifier's (a
	// replay, or evidence bound to another key).
	ReasonNonce Reason = "nonce"
	// ReasonMeasurement: a measurement differs from every reference value
	// for its index, or a referenced index is absent from the report.
	ReasonMeasurement Reason = "measurement"
	// ReasonDriver: the driver version in a report is below the
	// reference's minimum, absent, or differs from the one NVML reported.
	ReasonDriver Reason = "driver"
	// ReasonGPUCount: fewer GPUs than the reference's min_gpus.
	ReasonGPUCount Reason = "gpu_count"
)

// RefusedError is Verify's refusal: a reason from the list above and a
// detail for people. Detail is bounded and printable: strings that come
// from the evidence are clipped before they are put in it.
type RefusedError struct {
	Reason Reason
	Detail string
}

// Error reads "nvidia-gpu: <reason>: <detail>".
func (e *RefusedError) Error() string {
	return "nvidia-gpu: " + string(e.Reason) + ": " + e.Detail
}

// Is matches another *RefusedError with the same reason and an empty
// detail, so errors.Is(err, &RefusedError{Reason: ReasonNonce}) works.
func (e *RefusedError) Is(target error) bool {
	t, ok := target.(*RefusedError)
	return ok && t.Reason == e.Reason && t.Detail == ""
}

func refuse(r Reason, format string, args ...any) *RefusedError {
	return &RefusedError{Reason: r, Detail: fmt.Sprintf(format, args...)}
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
