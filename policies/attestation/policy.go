package attestation

import (
	"fmt"
	"strings"
	"time"

	"github.com/hearthfl/hearth/policies/attestation/internal/strictjson"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/sevsnp"
	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// The shared vocabulary of package tee, named here for callers.
type (
	// Kind names a kind of TEE ("sev-snp", "nvidia-gpu").
	Kind = tee.Kind
	// Reason is a refusal's stable code ("measurement", "debug", ...).
	Reason = tee.Reason
	// RefusedError is evidence refused by a verifier, with its kind and
	// reason.
	RefusedError = tee.RefusedError
	// ParseError is a policy refused by Parse, naming the JSON path of
	// what it refuses.
	ParseError = tee.ParseError
)

// The kinds, as tee declares them.
const (
	KindSEVSNP    = tee.KindSEVSNP
	KindNvidiaGPU = tee.KindNvidiaGPU
)

// The refusal reasons, as tee declares them (see there for each).
const (
	ReasonSize           = tee.ReasonSize
	ReasonFormat         = tee.ReasonFormat
	ReasonChain          = tee.ReasonChain
	ReasonSignature      = tee.ReasonSignature
	ReasonReportData     = tee.ReasonReportData
	ReasonNonce          = tee.ReasonNonce
	ReasonMeasurement    = tee.ReasonMeasurement
	ReasonDebug          = tee.ReasonDebug
	ReasonMigrationAgent = tee.ReasonMigrationAgent
	ReasonSMT            = tee.ReasonSMT
	ReasonTCB            = tee.ReasonTCB
	ReasonBuild          = tee.ReasonBuild
	ReasonVMPL           = tee.ReasonVMPL
	ReasonProduct        = tee.ReasonProduct
	ReasonConsistency    = tee.ReasonConsistency
	ReasonPolicy         = tee.ReasonPolicy
	ReasonMissing        = tee.ReasonMissing
)

// ReasonOf is a refusal's reason, "" for an error that is none.
func ReasonOf(err error) Reason { return tee.ReasonOf(err) }

// Bounds on a policy.
const (
	MaxPolicyBytes  = 64 << 10 // the file's size
	DefaultReattest = 10 * time.Minute
	MinReattest     = time.Second
	MaxReattest     = 24 * time.Hour
)

// Policy is a parsed local/attestation.json: what a site demands of an
// aggregation host before it seals an update to the host's key. It is a
// value; nothing changes it after Parse.
type Policy struct {
	// Require lists the TEE kinds the site demands, each once, in the
	// file's order; never empty.
	Require []Kind
	// Reattest is how often the site verifies fresh evidence from a host
	// it accepted (a fresh nonce each time).
	Reattest time.Duration
	// Simulated trusts go-sev-guest's test-only AMD roots (and the GPU
	// verifier's test root) instead of the vendors' real ones: for tests
	// and hearth poc only. Never the default.
	Simulated bool
	// SNP holds the SEV-SNP reference values; non-nil when Require has
	// sev-snp (it may be set without: values kept for later).
	SNP *sevsnp.Reference
	// GPURef is the nvidia_gpu section's reference values
	// (policies/attestation/nvgpu); nil when absent.
	GPURef *nvgpu.Reference
}

// Requires reports whether the policy demands kind k.
func (p *Policy) Requires(k Kind) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Require {
		if r == k {
			return true
		}
	}
	return false
}

var topKeys = []string{"require", "reattest", "simulated", "sev_snp", "nvidia_gpu"}

// Parse parses a site's local/attestation.json strictly (see the package
// documentation for the format). Anything else is a *ParseError naming the
// JSON path of what it refuses: a document above MaxPolicyBytes, text that
// is not UTF-8, a duplicate or unknown key, a missing or empty require, an
// unknown or repeated kind, reattest not a duration in [1s, 24h], a kind
// required without its section, or a section's own error (sevsnp's, under
// "sev_snp").
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, &ParseError{Msg: fmt.Sprintf("the policy is %d bytes, more than %d", len(data), MaxPolicyBytes)}
	}
	if err := strictjson.Check(data); err != nil {
		return nil, err
	}
	m, err := strictjson.Object(data, "", topKeys...)
	if err != nil {
		return nil, err
	}
	p := &Policy{Reattest: DefaultReattest}

	raw, ok := m["require"]
	if !ok {
		return nil, &ParseError{Path: "require", Msg: "required: the TEE kinds this site demands (" + kindList() + ")"}
	}
	list, err := strictjson.Array(raw, "require")
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, &ParseError{Path: "require", Msg: "empty: a site that demands no TEE has no attestation.json (and then accepts no attested aggregator)"}
	}
	for i, el := range list {
		path := strictjson.Index("require", i)
		s, err := strictjson.String(el, path)
		if err != nil {
			return nil, err
		}
		k := Kind(s)
		if !k.Known() {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("%q is not a TEE kind (known: %s)", clip(s), kindList())}
		}
		if p.Requires(k) {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("%q is required twice", s)}
		}
		p.Require = append(p.Require, k)
	}

	if p.Requires(KindNvidiaGPU) && !p.Requires(KindSEVSNP) {
		// A GPU signs any nonce its driver hands it: its report says
		// nothing of the code that holds the sealing key.
		return nil, &ParseError{Path: "require", Msg: `"nvidia-gpu" only with "sev-snp": GPU evidence attests the GPU, not the CPU-side code that holds the host's key`}
	}
	if raw, ok := m["reattest"]; ok {
		text, err := strictjson.String(raw, "reattest")
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(text)
		if err != nil || d < MinReattest || d > MaxReattest {
			return nil, &ParseError{Path: "reattest", Msg: fmt.Sprintf("%q is not a duration in [%v, %v] (e.g. \"10m\")", clip(text), MinReattest, MaxReattest)}
		}
		p.Reattest = d
	}
	if raw, ok := m["simulated"]; ok {
		if p.Simulated, err = strictjson.Bool(raw, "simulated"); err != nil {
			return nil, err
		}
	}
	if raw, ok := m["sev_snp"]; ok {
		if p.SNP, err = sevsnp.ParseReference(raw); err != nil {
			return nil, tee.Under("sev_snp", err)
		}
	} else if p.Requires(KindSEVSNP) {
		return nil, &ParseError{Path: "sev_snp", Msg: `required when "require" names sev-snp: the reference values (measurements, minimum_tcb, ...)`}
	}
	if raw, ok := m["nvidia_gpu"]; ok {
		if err := strictjson.IsObject(raw, "nvidia_gpu"); err != nil {
			return nil, err
		}
		if p.GPURef, err = nvgpu.ParseReference(raw); err != nil {
			return nil, &ParseError{Path: "nvidia_gpu", Msg: err.Error(), Err: err}
		}
	} else if p.Requires(KindNvidiaGPU) {
		return nil, &ParseError{Path: "nvidia_gpu", Msg: `required when "require" names nvidia-gpu: the GPU verifier's reference values`}
	}
	return p, nil
}

func kindList() string {
	var names []string
	for _, k := range tee.Kinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
