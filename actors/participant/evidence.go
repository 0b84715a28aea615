package participant

import (
	"time"

	"github.com/hearthfl/hearth/policies/attestation"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// SitePolicy is AttestationPolicy over a site's parsed
// local/attestation.json: the wire's evidence turned into the verifiers'
// values (EvidenceValues) and decided by the policy.
func SitePolicy(p *attestation.Policy) AttestationPolicy { return sitePolicy{p} }

type sitePolicy struct{ p *attestation.Policy }

func (s sitePolicy) Verify(ev *hearthv1.AttestationEvidence, tee []string, key, nonce []byte, now time.Time) (string, error) {
	demanded := make([]attestation.Kind, 0, len(tee))
	for _, k := range tee {
		demanded = append(demanded, attestation.Kind(k))
	}
	v, err := s.p.Verify(EvidenceValues(ev), demanded, key, nonce, now)
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

func (s sitePolicy) Reattest() time.Duration { return s.p.Reattest }

// EvidenceValues is the wire's evidence as the verifiers' values.
func EvidenceValues(ev *hearthv1.AttestationEvidence) attestation.Evidence {
	out := attestation.Evidence{Simulated: ev.Simulated}
	if s := ev.SevSnp; s != nil {
		out.SNP = &attestation.SNPEvidence{Report: s.Report, Certificates: s.Certificates}
	}
	if g := ev.NvidiaGpu; g != nil {
		e := &nvgpu.Evidence{CCFeatureOn: g.CcFeatureOn, DevToolsOn: g.DevToolsOn, Ready: g.Ready,
			Environment: nvgpu.Environment(g.Environment), DriverVersion: g.DriverVersion}
		for i, d := range g.Devices {
			if i > nvgpu.MaxDevices { // one past the bound is enough for the verifier to refuse
				break
			}
			e.Devices = append(e.Devices, nvgpu.Device{UUID: d.Uuid, Name: d.Name, Report: d.Report, CertChain: d.CertificateChain})
		}
		out.GPU = e
	}
	return out
}

// GPUEvidenceWire is a host's GPU evidence for the wire.
func GPUEvidenceWire(ev *nvgpu.Evidence) *hearthv1.GpuEvidence {
	g := &hearthv1.GpuEvidence{CcFeatureOn: ev.CCFeatureOn, DevToolsOn: ev.DevToolsOn, Ready: ev.Ready,
		Environment: string(ev.Environment), DriverVersion: ev.DriverVersion}
	for _, d := range ev.Devices {
		g.Devices = append(g.Devices, &hearthv1.GpuDeviceEvidence{Uuid: d.UUID, Name: d.Name, Report: d.Report, CertificateChain: d.CertChain})
	}
	return g
}
