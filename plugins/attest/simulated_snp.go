package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sgtest "github.com/google/go-sev-guest/testing"
)

// SimulatedSNPName is how a simulated collector names itself, in logs and
// the audit.
const SimulatedSNPName = "simulated (go-sev-guest test device)"

// SimulatedTCB is a TCB version a simulated host claims: the security
// patch levels of the bootloader, the TEE and SNP firmware (0 to 127) and
// the microcode (0 to 255).
type SimulatedTCB struct {
	Bootloader, TEE, SNP, Microcode uint8
}

// SimulatedSNPOptions is what a simulated host claims. The zero value is
// a Milan host at TCB 0, build 0, VMPL 0, measurement all zeros, with
// debugging, a migration agent and SMT all off, signing with
// go-sev-guest's default test chain.
type SimulatedSNPOptions struct {
	// Product is "Milan" (the default) or "Genoa".
	Product string
	// Measurement is the launch measurement the reports carry.
	Measurement [abi.MeasurementSize]byte
	// TCB is the reported, current, committed and launch TCB, and the
	// TCB the VCEK certificate is issued for.
	TCB SimulatedTCB
	// CertTCB, when set, is the TCB the VCEK certifies instead of TCB: a
	// host presenting a certificate for another firmware state than the
	// one it reports.
	CertTCB *SimulatedTCB
	// Build is the current and committed firmware build.
	Build uint8
	// VMPL is the level the reports claim to be made at (0 to 3).
	VMPL uint8
	// Debug, MigrationAgent and SMT set those guest policy bits; SMT also
	// reports SMT enabled on the platform.
	Debug, MigrationAgent, SMT bool
	// ChipID is CHIP_ID and the VCEK's hardware id; zero: a fixed test id.
	ChipID [abi.ChipIDSize]byte
	// ForeignChain signs with a chain made here from fresh keys, not
	// go-sev-guest's default test keys: evidence that no site's roots
	// trust, simulated or not.
	ForeignChain bool
	// Now is when the chain's certificates are issued (zero: time.Now());
	// the VCEK is valid for seven years from it.
	Now time.Time
}

// Simulator is go-sev-guest's test device as a collector: each Collect
// builds a report with the claimed values and the caller's REPORT_DATA,
// and go-sev-guest's TcQuoteProvider signs it with the test chain. Its
// evidence is labelled by Name and Simulated and verifies only against
// go-sev-guest's test-only roots.
type Simulator struct {
	opts    SimulatedSNPOptions
	product *spb.SevProduct
	signer  *sgtest.AmdSigner
	mu      sync.Mutex // go-sev-guest's signer shares one math/rand source
}

// SimulatedSNP makes a simulated SEV-SNP host claiming opts. It fails on
// an unknown product, a VMPL above 3 or a TCB component above its range.
func SimulatedSNP(opts SimulatedSNPOptions) (*Simulator, error) {
	if opts.Product == "" {
		opts.Product = "Milan"
	}
	var productName string
	switch opts.Product {
	case "Milan":
		productName = "Milan-B1"
	case "Genoa":
		productName = "Genoa-B1"
	default:
		return nil, fmt.Errorf("simulated sev-snp: product %q, want Milan or Genoa", opts.Product)
	}
	if opts.VMPL > 3 {
		return nil, fmt.Errorf("simulated sev-snp: VMPL %d, want 0 to 3", opts.VMPL)
	}
	if _, err := kds.ComposeTCBParts(opts.TCB.parts()); err != nil {
		return nil, fmt.Errorf("simulated sev-snp: %w", err)
	}
	certTCB := opts.TCB
	if opts.CertTCB != nil {
		certTCB = *opts.CertTCB
		opts.CertTCB = &certTCB // the caller's stays the caller's
		if _, err := kds.ComposeTCBParts(certTCB.parts()); err != nil {
			return nil, fmt.Errorf("simulated sev-snp: certificate TCB: %w", err)
		}
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.ChipID == ([abi.ChipIDSize]byte{}) {
		for i := range opts.ChipID {
			opts.ChipID[i] = byte(0xC0 + i%16)
		}
	}
	product, err := kds.ParseProductName(productName, abi.VcekReportSigner)
	if err != nil {
		return nil, fmt.Errorf("simulated sev-snp: %w", err)
	}
	keys := sgtest.DefaultAmdKeys()
	if opts.ForeignChain {
		if keys, err = foreignKeys(); err != nil {
			return nil, fmt.Errorf("simulated sev-snp: foreign chain: %w", err)
		}
	}
	b := &sgtest.AmdSignerBuilder{
		Keys:             keys,
		ProductName:      productName,
		CSPID:            "go-sev-guest",
		ArkCreationTime:  opts.Now,
		AskCreationTime:  opts.Now,
		AsvkCreationTime: opts.Now,
		VcekCreationTime: opts.Now,
		VlekCreationTime: opts.Now,
		HWID:             opts.ChipID,
		// The VCEK certifies the claimed TCB and chip, as AMD's KDS
		// issues one per TCB and chip.
		VcekCustom: sgtest.CertOverride{
			Extensions: sgtest.CustomExtensions(certTCB.parts(), opts.ChipID[:], "", productName),
		},
	}
	signer, err := b.TestOnlyCertChain()
	if err != nil {
		return nil, fmt.Errorf("simulated sev-snp: test chain: %w", err)
	}
	return &Simulator{opts: opts, product: product, signer: signer}, nil
}

// foreignKeys are fresh keys for a second test chain: one RSA key for the
// ARK, ASK and ASVK (the chain fails at its root whatever they are), and
// P-384 keys for the VCEK and VLEK.
func foreignKeys() (*sgtest.AmdKeys, error) {
	root, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	vcek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	vlek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &sgtest.AmdKeys{Ark: root, Ask: root, Asvk: root, Vcek: vcek, Vlek: vlek}, nil
}

func (t SimulatedTCB) parts() kds.TCBParts {
	return kds.TCBParts{BlSpl: t.Bootloader, TeeSpl: t.TEE, SnpSpl: t.SNP, UcodeSpl: t.Microcode}
}

// Name is SimulatedSNPName.
func (*Simulator) Name() string { return SimulatedSNPName }

// Simulated is true.
func (*Simulator) Simulated() bool { return true }

// Claims are the options the simulator was made with, defaults filled in.
func (s *Simulator) Claims() SimulatedSNPOptions { return s.opts }

// Collect signs a report of the claimed values with reportData.
func (s *Simulator) Collect(ctx context.Context, reportData [64]byte) ([]byte, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	raw, err := s.report(reportData)
	if err != nil {
		return nil, nil, err
	}
	tc := sgtest.TestCase{Name: "hearth", Input: reportData}
	copy(tc.Output[:], raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	qp, err := sgtest.TcQuoteProvider([]sgtest.TestCase{tc}, &sgtest.DeviceOptions{
		Signer:  s.signer,
		Product: s.product,
		Now:     s.opts.Now,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("simulated sev-snp: %w", err)
	}
	quote, err := qp.GetRawQuote(reportData)
	if err != nil {
		return nil, nil, fmt.Errorf("simulated sev-snp: %w", err)
	}
	return splitQuote(quote)
}

// report is the unsigned ATTESTATION_REPORT (version 3) of the claims.
func (s *Simulator) report(reportData [64]byte) ([]byte, error) {
	o := s.opts
	tcb, err := kds.ComposeTCBParts(o.TCB.parts())
	if err != nil {
		return nil, err
	}
	var platform uint64
	if o.SMT {
		platform |= 1 // SMT_EN
	}
	const apiMajor, apiMinor = 1, 55
	rep := &spb.Report{
		Version:         abi.ReportVersion3,
		Policy:          abi.SnpPolicyToBytes(abi.SnpPolicy{Debug: o.Debug, MigrateMA: o.MigrationAgent, SMT: o.SMT}),
		FamilyId:        make([]byte, abi.FamilyIDSize),
		ImageId:         make([]byte, abi.ImageIDSize),
		Vmpl:            uint32(o.VMPL),
		SignatureAlgo:   abi.SignEcdsaP384Sha384,
		CurrentTcb:      uint64(tcb),
		PlatformInfo:    platform,
		SignerInfo:      abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VcekReportSigner}),
		ReportData:      reportData[:],
		Measurement:     o.Measurement[:],
		HostData:        make([]byte, abi.HostDataSize),
		IdKeyDigest:     make([]byte, abi.IDKeyDigestSize),
		AuthorKeyDigest: make([]byte, abi.AuthorKeyDigestSize),
		ReportId:        make([]byte, abi.ReportIDSize),
		ReportIdMa:      make([]byte, abi.ReportIDMASize),
		ReportedTcb:     uint64(tcb),
		Cpuid1EaxFms:    abi.MaskedCpuid1EaxFromSevProduct(s.product),
		ChipId:          o.ChipID[:],
		CommittedTcb:    uint64(tcb),
		CurrentBuild:    uint32(o.Build),
		CurrentMinor:    apiMinor,
		CurrentMajor:    apiMajor,
		CommittedBuild:  uint32(o.Build),
		CommittedMinor:  apiMinor,
		CommittedMajor:  apiMajor,
		LaunchTcb:       uint64(tcb),
		Signature:       make([]byte, abi.SignatureSize),
	}
	raw, err := abi.ReportToAbiBytes(rep)
	if err != nil {
		return nil, fmt.Errorf("simulated sev-snp: report: %w", err)
	}
	if len(raw) > labi.SnpReportRespReportSize {
		return nil, fmt.Errorf("simulated sev-snp: report of %d bytes does not fit the device's response", len(raw))
	}
	return raw, nil
}
