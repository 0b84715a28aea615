package attestation

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/sevsnp"
	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// Evidence is an aggregation host's evidence for one site's nonce, as
// values: the SEV-SNP report and certificate table, the GPUs' state and
// reports. Simulated is the host's claim that a simulator made it, which
// decides nothing (the policy's Simulated picks the roots).
type Evidence struct {
	SNP       *SNPEvidence
	GPU       *nvgpu.Evidence
	Simulated bool
}

// SNPEvidence is an SEV-SNP guest's raw report and certificate table.
type SNPEvidence struct {
	Report, Certificates []byte
}

// Verified is what a site accepted of a host's evidence, for its audit.
type Verified struct {
	SNP *sevsnp.Verified
	GPU *nvgpu.Verified
}

// String summarises what was accepted, for the audit.
func (v *Verified) String() string {
	var parts []string
	if v.SNP != nil {
		roots := "AMD's roots"
		if v.SNP.Simulated {
			roots = "SIMULATED test roots"
		}
		parts = append(parts, fmt.Sprintf("sev-snp measurement %s tcb %s vmpl %d under %s", v.SNP.Measurement, v.SNP.TCB, v.SNP.VMPL, roots))
	}
	if v.GPU != nil {
		driver := ""
		if len(v.GPU.Devices) > 0 {
			driver = v.GPU.Devices[0].DriverVersion
		}
		parts = append(parts, fmt.Sprintf("nvidia-gpu %d GPUs driver %s environment %s", len(v.GPU.Devices), driver, v.GPU.Environment))
	}
	return strings.Join(parts, "; ")
}

// Verify decides a host's evidence, made for key (the host's sealing key
// for a job) and the site's nonce: every kind the policy requires and
// every kind the job demands must be present and verify against the
// policy's reference values. A kind the job demands that the site has no
// reference values for is refused: the site cannot check it. The first
// refusal is returned as a *RefusedError.
func (p *Policy) Verify(ev Evidence, demanded []Kind, key, nonce []byte, now time.Time) (*Verified, error) {
	kinds := append([]Kind(nil), p.Require...)
	for _, k := range demanded {
		if !k.Known() {
			return nil, tee.Refuse(k, tee.ReasonPolicy, "the job demands a kind of evidence this site does not know")
		}
		if !p.Requires(k) {
			kinds = append(kinds, k)
		}
	}
	if slices.Contains(kinds, KindNvidiaGPU) && !slices.Contains(kinds, KindSEVSNP) {
		return nil, tee.Refuse(KindNvidiaGPU, tee.ReasonPolicy, "GPU evidence alone attests no CPU-side code holding the key: sev-snp is required with it")
	}
	out := &Verified{}
	for _, k := range kinds {
		switch k {
		case KindSEVSNP:
			if p.SNP == nil {
				return nil, tee.Refuse(k, tee.ReasonPolicy, "the job demands it and this site's policy has no sev_snp reference values")
			}
			if ev.SNP == nil {
				return nil, tee.Refuse(k, tee.ReasonMissing, "the host presented no SEV-SNP report")
			}
			rd, err := ReportData(key, nonce)
			if err != nil {
				return nil, tee.Refuse(k, tee.ReasonReportData, "%v", err)
			}
			if out.SNP, err = sevsnp.Verify(ev.SNP.Report, ev.SNP.Certificates, p.SNP, rd, p.Simulated, now); err != nil {
				return nil, err
			}
		case KindNvidiaGPU:
			if p.GPURef == nil {
				return nil, tee.Refuse(k, tee.ReasonPolicy, "the job demands it and this site's policy has no nvidia_gpu reference values")
			}
			if ev.GPU == nil {
				return nil, tee.Refuse(k, tee.ReasonMissing, "the host presented no GPU evidence")
			}
			gn, err := GPUNonce(key, nonce)
			if err != nil {
				return nil, tee.Refuse(k, tee.ReasonNonce, "%v", err)
			}
			if out.GPU, err = nvgpu.Verify(ev.GPU, p.GPURef, gn, p.Simulated, now); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
