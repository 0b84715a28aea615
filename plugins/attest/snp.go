package attest

import (
	"context"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
)

// SNP collects SEV-SNP evidence: the raw ATTESTATION_REPORT whose
// REPORT_DATA is reportData, and the extended report's certificate table
// (VCEK or VLEK, ASK, ARK, as the host's kernel returns it). Both are the
// caller's to keep. Collect may block on the device; it checks ctx before
// and after and does not outlive the device call.
type SNP interface {
	Collect(ctx context.Context, reportData [64]byte) (report, certs []byte, err error)
}

// Compile-time guards.
var (
	_ SNP = (*Hardware)(nil)
	_ SNP = (*Simulator)(nil)
)

// HardwareName is how the hardware collector names itself.
const HardwareName = "SEV-SNP guest device"

// Hardware collects evidence from this SEV-SNP guest's AMD secure
// processor.
type Hardware struct {
	qp client.QuoteProvider
}

// HardwareSNP opens this guest's SEV-SNP device: go-sev-guest's quote
// provider, configfs-tsm first, then /dev/sev-guest. Off SEV-SNP hardware
// it fails with "no SEV-SNP guest device: ...".
func HardwareSNP() (*Hardware, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("no SEV-SNP guest device: %w (neither configfs-tsm nor /dev/sev-guest answers; is this an SEV-SNP guest?)", err)
	}
	return &Hardware{qp: qp}, nil
}

// Name is HardwareName.
func (*Hardware) Name() string { return HardwareName }

// Simulated is false: this is real hardware.
func (*Hardware) Simulated() bool { return false }

// Collect asks the secure processor for a report with reportData.
func (h *Hardware) Collect(ctx context.Context, reportData [64]byte) ([]byte, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	quote, err := h.qp.GetRawQuote(reportData)
	if err != nil {
		return nil, nil, fmt.Errorf("sev-snp: get report: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return splitQuote(quote)
}

// splitQuote splits go-sev-guest's raw quote, the report followed by the
// certificate table, into fresh slices.
func splitQuote(quote []byte) ([]byte, []byte, error) {
	if len(quote) < abi.ReportSize {
		return nil, nil, fmt.Errorf("sev-snp: quote of %d bytes is shorter than a report (%d)", len(quote), abi.ReportSize)
	}
	report := append([]byte(nil), quote[:abi.ReportSize]...)
	certs := append([]byte(nil), quote[abi.ReportSize:]...)
	return report, certs, nil
}
