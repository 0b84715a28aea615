// Package checker is the contract between a site and its checkers: the
// plugin kind that sees a job's whole configuration (the signed manifest,
// the submitter, the job's own code) before anything of the job is built
// at the site, and can refuse it with a reason (FLARE's unsafe component
// check at BEFORE_BUILD_COMPONENT, which raises UnsafeComponentError).
// A refusal stops the site's part of the job; the site audits it and
// pre-flight shows it.
//
// The Go interface and its plain types are here. The go-plugin glue, the
// host side (Client, which runs a pinned plugin binary), the plugin side
// (Serve, for a plugin's one-line main) and the conversions to the wire
// contract (hearth.plugin.checker.v1) sit beside it; built-in checkers
// are packages below this one (imports), each shipped as its own plugin
// binary. Local runs a checker in process under the same checks.
//
// A checker answers one of three things: allowed (Decision.Allowed, a
// reason optional), refused (Decision.Allowed false, with a reason that
// ValidReason accepts), or could not decide (a non-nil error). The site
// refuses the job in both of the last two cases: it fails closed. So does
// the host side on everything the plugin cannot be trusted to have
// decided: a crash, a call past its deadline, an answer outside the
// contract (ErrContract), each an error naming the checker and why.
package checker

import (
	"context"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Bounds on a job as the contract carries it. A site's job is within
// them (actors/job bounds the manifest and the code the same way); a Job
// beyond them is refused before any checker sees it (ErrJob).
const (
	// MaxManifestBytes bounds the signed manifest (job.MaxManifestBytes).
	MaxManifestBytes = 16 << 10
	// MaxCodeBytes bounds the job's code, all files together
	// (job.MaxCodeBytes).
	MaxCodeBytes = 256 << 10
	// MaxCodeFiles bounds the number of the job's code files.
	MaxCodeFiles = 16
	// MaxField bounds each name the job carries: the site, the job's id,
	// the submitter's name, org and role, the workflow, the trainer kind
	// and a code file's name.
	MaxField = 1024
	// MaxConfigBytes bounds a checker's configuration.
	MaxConfigBytes = 64 << 10
	// MaxReason bounds a decision's reason, in bytes.
	MaxReason = 512
)

// Reasons a job or an answer is refused by the contract itself. The list
// only grows.
var (
	// ErrContract: the checker answered outside the contract (a refusal
	// without a reason, a reason too long or holding control characters
	// or invalid UTF-8, no answer at all). The site refuses the job.
	ErrContract = errors.New("checker answered outside the contract")
	// ErrJob: the job does not fit the contract's bounds (a manifest or
	// code too large, too many files, a name too long or not UTF-8); no
	// checker was asked.
	ErrJob = errors.New("job does not fit the checker contract")
)

// File is one file of the job's own code.
type File struct {
	Name string // its name in the job's folder, e.g. "train.py"
	Data []byte // its exact bytes, as the signed manifest pins them
}

// Job is a job as the site is about to build it: facts the site verified
// itself (the manifest's signature, the submitter's certificate, the
// code's pin) before asking.
type Job struct {
	Site  string // the name of the site deciding
	JobID string
	// Submitter, SubmitterOrg and SubmitterRole are the name,
	// organization and role of the certificate that signed the job.
	Submitter, SubmitterOrg, SubmitterRole string
	// Workflow and Trainer are the manifest's workflow and trainer kind,
	// as the site parsed them (e.g. "fedavg", "pytorch").
	Workflow, Trainer string
	// Manifest is the signed manifest's exact bytes (YAML).
	Manifest []byte
	// Code is the job's own code; nil for a job that runs only built-in
	// components.
	Code []File
}

// Decision is a checker's answer when it could decide. Its zero value is
// a refusal, so a caller that ignores Check's error still refuses.
type Decision struct {
	// Allowed is true when the job may run here as far as this checker
	// is concerned; false is a refusal, with Reason.
	Allowed bool
	// Reason says why it was refused (required; ValidReason) or, when
	// allowed, optionally what was checked.
	Reason string
}

// Checker is a component safety check one site runs on every job before
// building it.
type Checker interface {
	// Configure hands the checker its configuration from the site's
	// policy (JSON in the checker's own schema, {} when there is none),
	// after each start and before any Check. An error means the checker
	// cannot run; the site then refuses every job it would check.
	Configure(ctx context.Context, config []byte) error
	// Check decides j. A nil error with Allowed false is a refusal, whose
	// Reason must say why (the site audits it and shows it in
	// pre-flight: name what was refused and where, never a secret); a
	// non-nil error is "could not decide", which the site refuses on as
	// well. Check may be called concurrently; j is read-only.
	Check(ctx context.Context, j Job) (Decision, error)
}

// ValidReason says what is wrong with a decision's reason, nil if
// nothing: at most MaxReason bytes of valid UTF-8 holding no control
// character (Unicode's Cc, and its format characters Cf, which hold the
// bidirectional overrides, and line and paragraph separators: a reason is
// written into audit records and onto an admin's terminal), and not empty
// when the job is refused.
func ValidReason(reason string, allowed bool) error {
	switch {
	case reason == "" && !allowed:
		return errors.New("a refusal without a reason")
	case len(reason) > MaxReason:
		return fmt.Errorf("a reason of %d bytes, more than %d", len(reason), MaxReason)
	case !utf8.ValidString(reason):
		return errors.New("a reason that is not valid UTF-8")
	}
	for i, r := range reason {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("a reason holding the control character %U at byte %d", r, i)
		}
	}
	return nil
}

// CheckDecision is nil when d is within the contract (its reason valid
// for its verdict), else an error wrapping ErrContract.
func CheckDecision(d Decision) error {
	if err := ValidReason(d.Reason, d.Allowed); err != nil {
		return fmt.Errorf("%w: %v", ErrContract, err)
	}
	return nil
}

// CheckJob is nil when j is within the contract's bounds, else an error
// wrapping ErrJob that says which bound it passes.
func CheckJob(j Job) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrJob}, a...)...)
	}
	fields := []struct{ name, value string }{
		{"site", j.Site}, {"job id", j.JobID}, {"submitter", j.Submitter}, {"submitter org", j.SubmitterOrg},
		{"submitter role", j.SubmitterRole}, {"workflow", j.Workflow}, {"trainer", j.Trainer},
	}
	for _, f := range fields {
		if err := checkField(f.value); err != nil {
			return fail("%s: %v", f.name, err)
		}
	}
	if n := len(j.Manifest); n > MaxManifestBytes {
		return fail("a manifest of %d bytes, more than %d", n, MaxManifestBytes)
	}
	if n := len(j.Code); n > MaxCodeFiles {
		return fail("%d code files, more than %d", n, MaxCodeFiles)
	}
	total := 0
	for i, f := range j.Code {
		if f.Name == "" {
			return fail("code file %d has no name", i)
		}
		if err := checkField(f.Name); err != nil {
			return fail("code file %d's name: %v", i, err)
		}
		total += len(f.Data)
	}
	if total > MaxCodeBytes {
		return fail("code of %d bytes, more than %d", total, MaxCodeBytes)
	}
	return nil
}

// checkField bounds one name a job carries.
func checkField(s string) error {
	switch {
	case len(s) > MaxField:
		return fmt.Errorf("%d bytes, more than %d", len(s), MaxField)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	return nil
}
