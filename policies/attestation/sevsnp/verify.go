package sevsnp

import (
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sgtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// Bounds on evidence, checked before anything of it is parsed.
const (
	ReportSize       = abi.ReportSize // an ATTESTATION_REPORT, exactly
	MaxCertTableSize = 16 << 10       // the extended report's certificate table, at most
)

// Verified is what Verify accepted, for the audit: which measurement, on
// which firmware, from which chip.
type Verified struct {
	Measurement  Measurement
	TCB          TCB    // the REPORTED_TCB
	Build        uint8  // CURRENT_BUILD
	VMPL         uint8  // the VMPL the report was made at
	Product      string // the product line ("Milan", "Genoa", "Turin")
	Signer       string // "VCEK" or "VLEK": the key that signed the report
	ChipIDPrefix string // the first 8 bytes of CHIP_ID, in hex (all zero when the host masks it)
	Version      uint32 // the report's format version
	Simulated    bool   // verified against go-sev-guest's test-only roots
}

// chipIDPrefix is how many bytes of CHIP_ID the audit keeps: enough to
// tell hosts apart, not the whole identifier.
const chipIDPrefix = 8

func refuse(reason tee.Reason, format string, args ...any) error {
	return tee.Refuse(tee.KindSEVSNP, reason, format, args...)
}

// Verify checks SEV-SNP evidence offline against a site's reference
// values and the REPORT_DATA the site expects (attestation.ReportData of
// the host's key and the site's nonce). report is the raw
// ATTESTATION_REPORT (exactly ReportSize bytes), certs the extended
// report's certificate table as the host's kernel returns it (at most
// MaxCertTableSize bytes; its VCEK or VLEK certificate is required: this
// verifier never fetches one). now is the time certificates must be valid
// at (the zero time means time.Now()).
//
// The checks, in order, each refusing with its own reason
// (*tee.RefusedError): size; format; chain (the VCEK or VLEK must chain to
// AMD's roots embedded in go-sev-guest, or with simulated true to
// go-sev-guest's test-only roots, never to a certificate the evidence
// presents); signature; report_data (compared in constant time);
// measurement; debug (always refused); migration_agent; smt; tcb (each
// component of REPORTED_TCB at least the minimum); build; vmpl; product;
// and last go-sev-guest's validate package over the same reference values,
// whose further checks (committed and current firmware equal, the
// certificate's TCB the reported one, CHIP_ID the certificate's) refuse
// with consistency. An invalid or nil ref refuses with policy.
//
// Revocation is not checked: that needs AMD's CRL from the network.
func Verify(report, certs []byte, ref *Reference, reportData [64]byte, simulated bool, now time.Time) (*Verified, error) {
	if err := ref.Validate(); err != nil {
		return nil, refuse(tee.ReasonPolicy, "%v", err)
	}
	if len(report) != ReportSize {
		return nil, refuse(tee.ReasonSize, "report is %d bytes, want %d", len(report), ReportSize)
	}
	if len(certs) > MaxCertTableSize {
		return nil, refuse(tee.ReasonSize, "certificate table is %d bytes, more than %d", len(certs), MaxCertTableSize)
	}
	if now.IsZero() {
		now = time.Now()
	}

	// Format.
	rep, err := abi.ReportToProto(report)
	if err != nil {
		return nil, refuse(tee.ReasonFormat, "report: %w", err)
	}
	if rep.GetVersion() < abi.ReportVersion2 || rep.GetVersion() > abi.MaxSupportedReportVersion {
		return nil, refuse(tee.ReasonFormat, "report version %d, want %d to %d", rep.GetVersion(), abi.ReportVersion2, abi.MaxSupportedReportVersion)
	}
	if rep.GetSignatureAlgo() != abi.SignEcdsaP384Sha384 {
		return nil, refuse(tee.ReasonFormat, "signature algorithm %d, want ECDSA P-384 with SHA-384", rep.GetSignatureAlgo())
	}
	info, err := abi.ParseSignerInfo(rep.GetSignerInfo())
	if err != nil {
		return nil, refuse(tee.ReasonFormat, "signer info: %w", err)
	}
	if info.SigningKey != abi.VcekReportSigner && info.SigningKey != abi.VlekReportSigner {
		return nil, refuse(tee.ReasonFormat, "report signed by %v, want the VCEK or a VLEK", info.SigningKey)
	}
	policy, err := abi.ParseSnpPolicy(rep.GetPolicy())
	if err != nil {
		return nil, refuse(tee.ReasonFormat, "guest policy: %w", err)
	}
	platform, err := abi.ParseSnpPlatformInfo(rep.GetPlatformInfo())
	if err != nil {
		return nil, refuse(tee.ReasonFormat, "platform info: %w", err)
	}
	if len(certs) == 0 {
		return nil, refuse(tee.ReasonChain, "no certificate table: the evidence must carry its %v certificate (this verifier never fetches one)", info.SigningKey)
	}
	table := new(abi.CertTable)
	if err := table.Unmarshal(certs); err != nil {
		return nil, refuse(tee.ReasonFormat, "certificate table: %w", err)
	}
	// Checked before table.Proto(), which would log a warning to stderr
	// for every such table a host sends.
	if der, err := table.GetByGUIDString(guidOf(info.SigningKey)); err != nil || len(der) == 0 {
		return nil, refuse(tee.ReasonChain, "the certificate table has no %v certificate (this verifier never fetches one)", info.SigningKey)
	}
	att := &spb.Attestation{Report: rep, CertificateChain: table.Proto()}

	// Chain and signature, against the roots this verifier holds.
	roots, err := trustedRoots(simulated)
	if err != nil {
		return nil, refuse(tee.ReasonPolicy, "trusted roots: %w", err)
	}
	opts := &verify.Options{
		DisableCertFetching: true,
		Getter:              offline{},
		Now:                 now,
		TrustedRoots:        roots,
	}
	if err := verify.SnpAttestation(att, opts); err != nil {
		return nil, chainOrSignature(report, att, info.SigningKey, simulated, err)
	}
	ekCert, err := endorsementKey(att, info.SigningKey) // verified above
	if err != nil {
		return nil, refuse(tee.ReasonChain, "%w", err)
	}

	// The binding to the site's key and nonce.
	if subtle.ConstantTimeCompare(rep.GetReportData(), reportData[:]) != 1 {
		return nil, refuse(tee.ReasonReportData, "REPORT_DATA binds another key or nonce than this site's")
	}

	// The site's reference values.
	var meas Measurement
	copy(meas[:], rep.GetMeasurement())
	if !acceptedMeasurement(ref, meas) {
		return nil, refuse(tee.ReasonMeasurement, "measurement %s is not one this site accepts", meas)
	}
	if policy.Debug {
		return nil, refuse(tee.ReasonDebug, "the guest policy allows the host to debug the guest")
	}
	if policy.MigrateMA && !ref.AllowMigrationAgent {
		return nil, refuse(tee.ReasonMigrationAgent, "the guest policy allows a migration agent and this site does not")
	}
	if !ref.AllowSMT && (policy.SMT || platform.SMTEnabled) {
		return nil, refuse(tee.ReasonSMT, "SMT is allowed by the guest policy (%t) or enabled on the platform (%t) and this site does not allow it", policy.SMT, platform.SMTEnabled)
	}
	parts := kds.DecomposeTCBVersion(kds.TCBVersion(rep.GetReportedTcb()))
	tcb := TCB{Bootloader: parts.BlSpl, TEE: parts.TeeSpl, SNP: parts.SnpSpl, Microcode: parts.UcodeSpl}
	if low := tcb.below(ref.MinimumTCB); len(low) > 0 {
		return nil, refuse(tee.ReasonTCB, "reported TCB below this site's minimum: %v", low)
	}
	if rep.GetCurrentBuild() < uint32(ref.MinimumBuild) {
		return nil, refuse(tee.ReasonBuild, "firmware build %d is below this site's minimum %d", rep.GetCurrentBuild(), ref.MinimumBuild)
	}
	if rep.GetVmpl() > uint32(ref.MaxVMPL) {
		return nil, refuse(tee.ReasonVMPL, "report made at VMPL %d, this site accepts at most %d", rep.GetVmpl(), ref.MaxVMPL)
	}
	product, err := productLine(rep, ekCert, info.SigningKey)
	if err != nil {
		return nil, refuse(tee.ReasonFormat, "product: %w", err)
	}
	if ref.Product != "" && product != ref.Product {
		return nil, refuse(tee.ReasonProduct, "platform is %s, this site accepts only %s", product, ref.Product)
	}

	// go-sev-guest's own field checks over the same values; what they find
	// beyond the checks above is the report's inconsistency.
	vopts := &validate.Options{
		GuestPolicy: abi.SnpPolicy{
			MigrateMA:  ref.AllowMigrationAgent,
			SMT:        ref.AllowSMT,
			CXLAllowed: true, // not constrained by Hearth's policy
		},
		ReportData:   reportData[:],
		Measurement:  meas[:],
		MinimumBuild: ref.MinimumBuild,
		MinimumTCB: kds.TCBParts{
			BlSpl: ref.MinimumTCB.Bootloader, TeeSpl: ref.MinimumTCB.TEE,
			SnpSpl: ref.MinimumTCB.SNP, UcodeSpl: ref.MinimumTCB.Microcode,
		},
		// The most PLATFORM_INFO accepted: only SMT is constrained.
		PlatformInfo: &abi.SnpPlatformInfo{SMTEnabled: ref.AllowSMT, TSMEEnabled: true, TIOEnabled: true},
		// VMPL is left nil: validate wants one exact level, the policy
		// bounds it (checked above).
	}
	if err := validate.SnpAttestation(att, vopts); err != nil {
		return nil, refuse(tee.ReasonConsistency, "%w", err)
	}

	chip := rep.GetChipId()
	return &Verified{
		Measurement:  meas,
		TCB:          tcb,
		Build:        uint8(rep.GetCurrentBuild()),
		VMPL:         uint8(rep.GetVmpl()),
		Product:      product,
		Signer:       info.SigningKey.String(),
		ChipIDPrefix: hex.EncodeToString(chip[:min(chipIDPrefix, len(chip))]),
		Version:      rep.GetVersion(),
		Simulated:    simulated,
	}, nil
}

func acceptedMeasurement(ref *Reference, m Measurement) bool {
	for _, want := range ref.Measurements {
		if want == m {
			return true
		}
	}
	return false
}

// chainOrSignature names go-sev-guest's refusal: a report whose signature
// verifies under the certificate it presents was refused for that
// certificate's chain; any other, for its signature.
func chainOrSignature(report []byte, att *spb.Attestation, key abi.ReportSigner, simulated bool, err error) error {
	roots := "AMD's roots"
	if simulated {
		roots = "go-sev-guest's test-only roots"
	}
	cert, certErr := endorsementKey(att, key)
	if certErr != nil {
		return refuse(tee.ReasonChain, "%v: %w", certErr, err)
	}
	if verify.SnpReportSignature(report, cert) == nil {
		return refuse(tee.ReasonChain, "the %v certificate does not chain to %s: %w", key, roots, err)
	}
	return refuse(tee.ReasonSignature, "the report's signature does not verify: %w", err)
}

// guidOf is the certificate table's GUID for key's certificate.
func guidOf(key abi.ReportSigner) string {
	if key == abi.VlekReportSigner {
		return abi.VlekGUID
	}
	return abi.VcekGUID
}

// endorsementKey is the V[CL]EK certificate the evidence presents.
func endorsementKey(att *spb.Attestation, key abi.ReportSigner) (*x509.Certificate, error) {
	var der []byte
	switch key {
	case abi.VcekReportSigner:
		der = att.GetCertificateChain().GetVcekCert()
	case abi.VlekReportSigner:
		der = att.GetCertificateChain().GetVlekCert()
	}
	if len(der) == 0 {
		return nil, fmt.Errorf("the certificate table has no %v certificate", key)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("the %v certificate does not parse: %w", key, err)
	}
	return cert, nil
}

// productLine is the report's product line, as verify chose the roots by
// it: from CPUID in a version 3 or later report, else from the
// certificate's product name.
func productLine(rep *spb.Report, cert *x509.Certificate, key abi.ReportSigner) (string, error) {
	if fms := rep.GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms), nil
	}
	exts, err := kds.CertificateExtensions(cert, key)
	if err != nil {
		return "", err
	}
	product, err := kds.ParseProductName(exts.ProductName, key)
	if err != nil {
		return "", err
	}
	return kds.ProductLine(product), nil
}

// offline is the Getter handed to go-sev-guest: this verifier never
// reaches the network, and with DisableCertFetching nothing calls it; if
// anything did, it fails closed.
type offline struct{}

var errOffline = errors.New("sevsnp: the verifier is offline: nothing is fetched")

func (offline) Get(string) ([]byte, error) { return nil, errOffline }

// trustedRoots are the roots a chain must end in: AMD's, embedded in
// go-sev-guest, for every product line it has them for; with simulated,
// go-sev-guest's test-only roots instead (and AMD's are not trusted).
func trustedRoots(simulated bool) (map[string][]*trust.AMDRootCerts, error) {
	if simulated {
		return simulatedRoots()
	}
	roots := map[string][]*trust.AMDRootCerts{}
	for _, line := range products {
		r, err := trust.GetDefaultRootCerts(line)
		if err != nil {
			return nil, err
		}
		roots[line] = []*trust.AMDRootCerts{r}
	}
	return roots, nil
}

// simulatedRootsCreated is when the test-only roots begin to be valid:
// fixed, so that every verifier in every process holds the same roots.
var simulatedRootsCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// simulatedRoots are go-sev-guest's test-only ARK, ASK and ASVK (its fixed
// test keys) for Milan and Genoa, made once: certificates with RSA
// signatures cost milliseconds.
var simulatedRoots = sync.OnceValues(func() (map[string][]*trust.AMDRootCerts, error) {
	roots := map[string][]*trust.AMDRootCerts{}
	for _, name := range []string{"Milan-B1", "Genoa-B1"} {
		signer, err := sgtest.DefaultTestOnlyCertChain(name, simulatedRootsCreated)
		if err != nil {
			return nil, fmt.Errorf("go-sev-guest test chain %s: %w", name, err)
		}
		line := kds.ProductLineOfProductName(name)
		roots[line] = []*trust.AMDRootCerts{{
			Product:     line, // deprecated twin of ProductLine, still read by go-sev-guest
			ProductLine: line,
			ProductCerts: &trust.ProductCerts{
				Ark:  signer.Ark,
				Ask:  signer.Ask,
				Asvk: signer.Asvk,
			},
		}}
	}
	return roots, nil
})
