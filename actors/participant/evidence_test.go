package participant

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestSiteRefusesBadEvidence: a site's verdict on each kind of bad
// evidence from a host (made by the simulators, as a compromised or
// misconfigured host would present it), under the site's own policy: each
// refused with its reason, audited, and the host then sent nothing
// (hostAccepted). Good evidence is accepted and audited.
func TestSiteRefusesBadEvidence(t *testing.T) {
	b, err := json.Marshal(attest.SimulatedPolicy())
	if err != nil {
		t.Fatal(err)
	}
	policy, err := attestation.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	otherKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	// evidence is what a host claiming snp and gpu makes for key and nonce.
	evidence := func(t *testing.T, snp attest.SimulatedSNPOptions, gpu func(*attest.SimulatedGPUs), key, nonce []byte) *hearthv1.AttestationEvidence {
		t.Helper()
		s, err := attest.SimulatedSNP(snp)
		if err != nil {
			t.Fatal(err)
		}
		g, err := attest.SimulatedGPU(attest.PocGPUs)
		if err != nil {
			t.Fatal(err)
		}
		if gpu != nil {
			gpu(g)
		}
		rd, _ := attestation.ReportData(key, nonce)
		gn, _ := attestation.GPUNonce(key, nonce)
		report, certs, err := s.Collect(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		ge, err := g.Collect(context.Background(), gn)
		if err != nil {
			t.Fatal(err)
		}
		return &hearthv1.AttestationEvidence{SevSnp: &hearthv1.SevSnpEvidence{Report: report, Certificates: certs}, NvidiaGpu: GPUEvidenceWire(ge), Simulated: true}
	}
	good := attest.PocSNP()
	untrustedGPU := func(g *attest.SimulatedGPUs) {
		s, err := nvgputest.NewSystem(1, nvgputest.WithUntrustedRoot())
		if err != nil {
			t.Fatal(err)
		}
		g.System = s
	}
	for _, tc := range []struct {
		name      string
		snp       func(o *attest.SimulatedSNPOptions)
		gpu       func(g *attest.SimulatedGPUs)
		make      func(ev *hearthv1.AttestationEvidence) // after the host made it
		forKey    *ecdh.PublicKey                        // the key the host bound; default the host's
		replay    bool                                   // made for an earlier nonce
		gpuReplay bool                                   // the GPU report alone made for an earlier nonce
		want      string
	}{
		{name: "the simulated host as the policy expects it", want: ""},
		{name: "another launch measurement", snp: func(o *attest.SimulatedSNPOptions) { o.Measurement[0] ^= 1 }, want: "sev-snp: measurement"},
		{name: "a debug policy", snp: func(o *attest.SimulatedSNPOptions) { o.Debug = true }, want: "sev-snp: debug"},
		{name: "a TCB below the minimum", snp: func(o *attest.SimulatedSNPOptions) { o.TCB.SNP = 7 }, want: "sev-snp: tcb"},
		{name: "a chain other than the trusted roots", snp: func(o *attest.SimulatedSNPOptions) { o.ForeignChain = true }, want: "sev-snp: chain"},
		{name: "a migration agent", snp: func(o *attest.SimulatedSNPOptions) { o.MigrationAgent = true }, want: "sev-snp: migration_agent"},
		{name: "REPORT_DATA for another key", forKey: otherKey.PublicKey(), want: "sev-snp: report_data"},
		{name: "a replayed report (another nonce)", replay: true, want: "sev-snp: report_data"},
		{name: "evidence over the size bound", make: func(ev *hearthv1.AttestationEvidence) {
			ev.SevSnp.Certificates = make([]byte, 17<<10)
		}, want: "sev-snp: size"},
		{name: "GPU CC mode off", gpu: func(g *attest.SimulatedGPUs) { g.System.CCOff = true }, want: "nvidia-gpu: cc_mode"},
		{name: "GPUs not ready", gpu: func(g *attest.SimulatedGPUs) { g.System.NotReady = true }, want: "nvidia-gpu: not_ready"},
		{name: "GPU developer tools on", gpu: func(g *attest.SimulatedGPUs) { g.System.DevToolsOn = true }, want: "nvidia-gpu: devtools"},
		{name: "a GPU chain from another CA", gpu: untrustedGPU, want: "nvidia-gpu: chain"},
		{name: "a GPU report for another nonce", gpuReplay: true, want: "nvidia-gpu: nonce"},
		{name: "no GPU evidence", make: func(ev *hearthv1.AttestationEvidence) { ev.NvidiaGpu = nil }, want: "nvidia-gpu: missing"},
		{name: "no SEV-SNP evidence", make: func(ev *hearthv1.AttestationEvidence) { ev.SevSnp = nil }, want: "sev-snp: missing"},
		{name: "a GPU report cut short", make: func(ev *hearthv1.AttestationEvidence) {
			ev.NvidiaGpu.Devices[0].Report = ev.NvidiaGpu.Devices[0].Report[:40]
		}, want: "nvidia-gpu: format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			audit := &records{}
			p := &Participant{cfg: Config{Attestation: SitePolicy(policy), Audit: audit, Now: time.Now, Log: slog.New(slog.DiscardHandler)}}
			j := &joined{id: "job-000000000001", hosts: map[string]*attestedHost{},
				manifest: &job.Manifest{Placement: &job.Placement{Aggregator: job.PlacementAttested, TEE: []string{job.TEESEVSNP, job.TEENvidiaGPU}, Hosts: []string{"agg-1"}}}}
			nonce := make([]byte, attestation.NonceSize)
			rand.Read(nonce)
			opts := good
			if tc.snp != nil {
				tc.snp(&opts)
			}
			madeFor, bound := nonce, hostKey.PublicKey()
			if tc.replay {
				madeFor = make([]byte, attestation.NonceSize) // an earlier request's
			}
			if tc.forKey != nil {
				bound = tc.forKey
			}
			ev := evidence(t, opts, tc.gpu, bound.Bytes(), madeFor)
			if tc.gpuReplay {
				ev.NvidiaGpu = evidence(t, opts, nil, bound.Bytes(), make([]byte, attestation.NonceSize)).NvidiaGpu
			}
			if tc.make != nil {
				tc.make(ev)
			}
			ev.JobId, ev.Nonce, ev.Key = j.id, nonce, &hearthv1.SealingKey{PublicKey: hostKey.PublicKey().Bytes()}
			err := p.judge(j, "agg-1", hostKey.PublicKey(), nonce, &bridge.Reply{Msg: ev}, nil)
			gate := p.hostAccepted(j, "agg-1", hostKey.PublicKey())
			if tc.want == "" {
				if err != nil || gate != nil || len(audit.of("attestation.accepted")) != 1 {
					t.Fatalf("judge = %v, gate %v, audit %v", err, gate, audit.events)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("judge = %v, want %q", err, tc.want)
			}
			if refused := audit.of("attestation.refused"); len(refused) != 1 || !strings.Contains(refused[0].Detail["reason"], tc.want) {
				t.Fatalf("audited %v, want the refusal with %q", audit.events, tc.want)
			}
			if gate == nil || !strings.Contains(gate.Error(), tc.want) {
				t.Fatalf("after the refusal the site would still send to the host: %v", gate)
			}
		})
	}
}
