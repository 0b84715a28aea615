package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/integration/cluster"
	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Attested aggregation's two sides as the binary assembles them: a
// site's own policy on hosts' evidence (local/attestation.json, decided by
// policies/attestation), and a host's evidence (plugins/attest's
// collectors, the real TEE's or, with --simulated-tee, the simulators).

// siteAttestation is the site's attestation policy; nil without
// local/attestation.json (the site then refuses attested jobs).
func siteAttestation(k *kit.Kit, log *slog.Logger) (participant.AttestationPolicy, error) {
	path := k.PolicyPath("attestation.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("attestation policy: %w", err)
	}
	p, err := attestation.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.Simulated {
		log.Warn("local/attestation.json trusts SIMULATED test roots (\"simulated\": true): this site accepts aggregation hosts without a TEE; for tests and hearth poc only")
	}
	return participant.SitePolicy(p), nil
}

// hostCollectors makes a host's evidence: the TEE kinds it presents, from
// the hardware or, simulated, from the simulators.
type hostCollectors struct {
	snp       attest.SNP
	gpu       attest.GPU
	simulated bool
}

// hostEvidence makes the collectors of the kinds a host presents.
func hostEvidence(kinds []string, simulated bool, log *slog.Logger) (participant.Evidence, error) {
	h := &hostCollectors{simulated: simulated}
	for _, k := range slices.Compact(slices.Sorted(slices.Values(kinds))) {
		var err error
		switch k {
		case job.TEESEVSNP:
			if simulated {
				h.snp, err = attest.SimulatedSNP(attest.PocSNP())
			} else {
				h.snp, err = attest.HardwareSNP()
			}
		case job.TEENvidiaGPU:
			if simulated {
				h.gpu, err = attest.SimulatedGPU(attest.PocGPUs)
			} else {
				h.gpu, err = hardwareGPU()
			}
		default:
			return nil, fmt.Errorf("%w: --tee %q: want %s or %s", errUsage, k, job.TEESEVSNP, job.TEENvidiaGPU)
		}
		if err != nil {
			return nil, fmt.Errorf("%s evidence: %w", k, err)
		}
	}
	if simulated {
		log.Warn("this aggregation host presents SIMULATED TEE evidence: no TEE protects its memory", "tee", kinds)
	}
	return hostileEvidence(h), nil
}

// Evidence is participant.Evidence: each kind's evidence bound to key and
// the site's nonce.
func (h *hostCollectors) Evidence(ctx context.Context, key, nonce []byte) (*hearthv1.AttestationEvidence, error) {
	out := &hearthv1.AttestationEvidence{Simulated: h.simulated}
	if h.snp != nil {
		rd, err := attestation.ReportData(key, nonce)
		if err != nil {
			return nil, err
		}
		report, certs, err := h.snp.Collect(ctx, rd)
		if err != nil {
			return nil, fmt.Errorf("sev-snp: %w", err)
		}
		out.SevSnp = &hearthv1.SevSnpEvidence{Report: report, Certificates: certs}
	}
	if h.gpu != nil {
		gn, err := attestation.GPUNonce(key, nonce)
		if err != nil {
			return nil, err
		}
		ev, err := h.gpu.Collect(ctx, gn)
		if err != nil {
			return nil, fmt.Errorf("nvidia-gpu: %w", err)
		}
		g := participant.GPUEvidenceWire(ev)
		out.NvidiaGpu = g
	}
	return out, nil
}

// writeSimulatedAttestation writes, into every site's kit, the site's own
// local/attestation.json that accepts the POC's simulated host.
func writeSimulatedAttestation(local *cluster.Local) error {
	b, err := json.MarshalIndent(attest.SimulatedPolicy(), "", "  ")
	if err != nil {
		return err
	}
	for _, s := range local.Sites {
		if err := os.WriteFile(filepath.Join(local.Kit(s), kit.LocalDir, "attestation.json"), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
