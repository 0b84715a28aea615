// Package tee is the vocabulary every attestation verifier shares: the
// kinds of trusted execution environment a site may demand, the reasons a
// verifier refuses evidence, the refusal error that carries one, and the
// error of a policy section that does not parse.
//
// It imports nothing of Hearth, so that each verifier (sevsnp, the GPU
// verifier nvgpu) and package attestation, which parses the whole policy
// file and names these types again as aliases, can all import it without a
// cycle. Callers normally use the aliases: attestation.RefusedError is
// tee.RefusedError.
package tee

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Kind names a kind of trusted execution environment, as a site's
// local/attestation.json writes it in "require".
type Kind string

// The kinds Hearth verifies. The list only grows.
const (
	KindSEVSNP    Kind = "sev-snp"    // an AMD SEV-SNP confidential VM
	KindNvidiaGPU Kind = "nvidia-gpu" // an NVIDIA GPU in confidential computing mode
)

// Kinds lists the known kinds, in a fixed order.
func Kinds() []Kind { return []Kind{KindSEVSNP, KindNvidiaGPU} }

// Known reports whether k is one of Kinds.
func (k Kind) Known() bool {
	for _, known := range Kinds() {
		if k == known {
			return true
		}
	}
	return false
}

// Reason is a short stable code saying why evidence was refused, for logs,
// metrics and the audit. The list only grows; a code is never reused for
// another meaning.
type Reason string

// The reasons. Each check of a verifier refuses with its own code, so a
// refusal says which of the site's requirements the evidence failed.
const (
	// ReasonSize: the evidence (or one of its parts) is not the size the
	// format allows; nothing of it was parsed.
	ReasonSize Reason = "size"
	// ReasonFormat: the evidence does not parse as its format (reserved
	// bits set, bad certificate table, unsupported version or algorithm).
	ReasonFormat Reason = "format"
	// ReasonChain: the certificate chain does not lead to a root this
	// site trusts (a foreign or test chain, an expired or missing
	// certificate).
	ReasonChain Reason = "chain"
	// ReasonSignature: the report's signature does not verify with the
	// key its certificate certifies (the report was altered).
	ReasonSignature Reason = "signature"
	// ReasonReportData: the report binds another key or another nonce
	// than the one the site expects (a replay, or a key swap).
	ReasonReportData Reason = "report_data"
	// ReasonNonce: a report carrying a nonce field of its own (the GPU's)
	// carries another nonce than the site's.
	ReasonNonce Reason = "nonce"
	// ReasonMeasurement: the launch measurement is not one of the site's
	// reference values.
	ReasonMeasurement Reason = "measurement"
	// ReasonDebug: the guest may be debugged by its host (never allowed).
	ReasonDebug Reason = "debug"
	// ReasonMigrationAgent: the guest may have a migration agent and the
	// site does not allow one.
	ReasonMigrationAgent Reason = "migration_agent"
	// ReasonSMT: simultaneous multithreading is allowed or on, and the
	// site does not allow it.
	ReasonSMT Reason = "smt"
	// ReasonTCB: a component of the reported trusted computing base is
	// below the site's minimum.
	ReasonTCB Reason = "tcb"
	// ReasonBuild: the firmware build is below the site's minimum.
	ReasonBuild Reason = "build"
	// ReasonVMPL: the report was made at a less privileged VM permission
	// level than the site allows.
	ReasonVMPL Reason = "vmpl"
	// ReasonProduct: the platform is another product than the site names.
	ReasonProduct Reason = "product"
	// ReasonConsistency: the report contradicts itself or its certificate
	// (committed and current firmware differ, the certificate's TCB is not
	// the reported one, the chip id is not the certificate's), as
	// go-sev-guest's validate package checks.
	ReasonConsistency Reason = "consistency"
	// ReasonPolicy: the site's own policy cannot judge the evidence (no
	// reference values for the kind, or invalid ones): fail closed.
	ReasonPolicy Reason = "policy"
	// ReasonMissing: the evidence of a kind the site or the job requires
	// is not there.
	ReasonMissing Reason = "missing"
	// The NVIDIA GPU verifier's own checks (policies/attestation/nvgpu):
	// ReasonEvidence, the evidence is missing or incomplete (no devices, a
	// device without a report or a chain); ReasonCCMode, the system's
	// confidential-computing feature is off; ReasonNotReady, the GPUs do
	// not accept work; ReasonDevTools, developer-tools mode is on;
	// ReasonDriver, the driver version is below the minimum, absent, or
	// not the one NVML reported; ReasonGPUCount, fewer GPUs than required.
	ReasonEvidence Reason = "evidence"
	ReasonCCMode   Reason = "cc_mode"
	ReasonNotReady Reason = "not_ready"
	ReasonDevTools Reason = "devtools"
	ReasonDriver   Reason = "driver"
	ReasonGPUCount Reason = "gpu_count"
)

// maxDetail bounds how much text, some of it taken from the evidence, a
// refusal carries into logs.
const maxDetail = 300

// RefusedError is evidence a verifier refused: of which kind, why (one of
// the Reason codes), and a bounded human detail. Use errors.As to get it
// from a wrapped error, and Is to compare reasons:
//
//	var re *tee.RefusedError
//	if errors.As(err, &re) && re.Reason == tee.ReasonMeasurement { ... }
type RefusedError struct {
	Kind   Kind
	Reason Reason
	Detail string
	// Err is the underlying error, if any (e.g. go-sev-guest's), for
	// errors.Is and errors.As; its text is already in Detail.
	Err error
}

// Refuse builds a *RefusedError whose Detail is the formatted text, cut
// to a bounded length. A %w verb in format sets Err.
func Refuse(kind Kind, reason Reason, format string, args ...any) *RefusedError {
	err := fmt.Errorf(format, args...)
	return &RefusedError{Kind: kind, Reason: reason, Detail: clip(err.Error()), Err: errors.Unwrap(err)}
}

// Error reads "attestation: sev-snp: measurement: <detail>".
func (e *RefusedError) Error() string {
	msg := "attestation: " + string(e.Kind) + ": " + string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the underlying error, if any.
func (e *RefusedError) Unwrap() error { return e.Err }

// Is matches a *RefusedError target with the same Kind and Reason, an
// empty field in the target matching any, so that
// errors.Is(err, &tee.RefusedError{Reason: tee.ReasonDebug}) holds for any
// debug refusal.
func (e *RefusedError) Is(target error) bool {
	t, ok := target.(*RefusedError)
	if !ok {
		return false
	}
	return (t.Kind == "" || t.Kind == e.Kind) && (t.Reason == "" || t.Reason == e.Reason)
}

// ReasonOf returns the reason of the refusal in err's chain, "" when err
// is nil or no refusal.
func ReasonOf(err error) Reason {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// ParseError is a policy document (or a section of one) that a parser
// refused. Path names the offending JSON value, e.g.
// "sev_snp.minimum_tcb.tee" ("" for the document as a whole).
type ParseError struct {
	Path string
	Msg  string
	Err  error // the underlying error, if any
}

// Error reads "attestation: sev_snp.measurements[0]: <msg>".
func (e *ParseError) Error() string {
	if e.Path == "" {
		return "attestation: " + e.Msg
	}
	return "attestation: " + e.Path + ": " + e.Msg
}

// Unwrap returns the underlying error, if any.
func (e *ParseError) Unwrap() error { return e.Err }

// Under returns err with its Path put under prefix (a *ParseError from a
// section's parser, named from the document's root); other errors come
// back unchanged.
func Under(prefix string, err error) error {
	var pe *ParseError
	if !errors.As(err, &pe) {
		return err
	}
	path := prefix
	if pe.Path != "" {
		if strings.HasPrefix(pe.Path, "[") {
			path += pe.Path
		} else {
			path += "." + pe.Path
		}
	}
	return &ParseError{Path: path, Msg: pe.Msg, Err: pe.Err}
}

// clip cuts s to maxDetail bytes at a character boundary and replaces
// control characters, so that text taken from evidence cannot forge log
// lines.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && s[cut]&0xC0 == 0x80 { // not a UTF-8 start byte
		cut--
	}
	return s[:cut] + "..."
}
