package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
)

// pocPolicy is the site policy that accepts the POC's simulated host.
func pocPolicy(tb testing.TB) *attestation.Policy {
	tb.Helper()
	b, err := json.Marshal(attest.SimulatedPolicy())
	if err != nil {
		tb.Fatal(err)
	}
	p, err := attestation.Parse(b)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// pocEvidence is the simulated host's evidence for key and nonce.
func pocEvidence(tb testing.TB, key, nonce []byte) attestation.Evidence {
	tb.Helper()
	snp, err := attest.SimulatedSNP(attest.PocSNP())
	if err != nil {
		tb.Fatal(err)
	}
	gpu, err := attest.SimulatedGPU(attest.PocGPUs)
	if err != nil {
		tb.Fatal(err)
	}
	rd, _ := attestation.ReportData(key, nonce)
	gn, _ := attestation.GPUNonce(key, nonce)
	report, certs, err := snp.Collect(context.Background(), rd)
	if err != nil {
		tb.Fatal(err)
	}
	ev, err := gpu.Collect(context.Background(), gn)
	if err != nil {
		tb.Fatal(err)
	}
	return attestation.Evidence{SNP: &attestation.SNPEvidence{Report: report, Certificates: certs}, GPU: ev, Simulated: true}
}

// TestSimulatedHostIsAcceptedOnlyWhereThePolicySaysSimulated: the POC's
// host and site policy fit; the same evidence for another nonce, or under
// a policy that trusts only the vendors' roots, is refused.
func TestSimulatedHostIsAcceptedOnlyWhereThePolicySaysSimulated(t *testing.T) {
	key, nonce := make([]byte, 32), make([]byte, 32)
	rand.Read(key)
	rand.Read(nonce)
	ev, p := pocEvidence(t, key, nonce), pocPolicy(t)
	if _, err := p.Verify(ev, []attestation.Kind{attestation.KindSEVSNP, attestation.KindNvidiaGPU}, key, nonce, time.Now()); err != nil {
		t.Fatalf("the POC's host refused by the POC's site policy: %v", err)
	}
	other := make([]byte, 32)
	rand.Read(other)
	if _, err := p.Verify(ev, nil, key, other, time.Now()); attestation.ReasonOf(err) != attestation.ReasonReportData {
		t.Fatalf("evidence for another nonce: %v, want report_data", err)
	}
	real := *p
	real.Simulated = false
	if _, err := real.Verify(ev, nil, key, nonce, time.Now()); attestation.ReasonOf(err) != attestation.ReasonChain {
		t.Fatalf("simulated evidence under a policy of real roots: %v, want chain", err)
	}
	noGPU := ev
	noGPU.GPU = nil
	if _, err := p.Verify(noGPU, nil, key, nonce, time.Now()); attestation.ReasonOf(err) != attestation.ReasonMissing {
		t.Fatalf("no GPU evidence where the site requires it: %v, want missing", err)
	}
}

// BenchmarkSiteVerifiesAHost is what one site spends verifying one host's
// evidence (the policy's Verify: SEV-SNP, GPU, both), beside one P-384
// ECDSA verification in the same run; BenchmarkHostMakesEvidence is the
// simulated host's side.
func BenchmarkSiteVerifiesAHost(b *testing.B) {
	key, nonce := make([]byte, 32), make([]byte, 32)
	rand.Read(key)
	rand.Read(nonce)
	ev, p := pocEvidence(b, key, nonce), pocPolicy(b)
	snpOnly := *p
	snpOnly.Require = []attestation.Kind{attestation.KindSEVSNP}
	for _, c := range []struct {
		name string
		p    *attestation.Policy
	}{{"sev-snp", &snpOnly}, {"both", p}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.p.Verify(ev, nil, key, nonce, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("nvidia-gpu", func(b *testing.B) { // the GPU verifier alone: a policy never requires it alone
		gn, _ := attestation.GPUNonce(key, nonce)
		for b.Loop() {
			if _, err := nvgpu.Verify(ev.GPU, p.GPURef, gn, true, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-ecdsa-p384-verify", func(b *testing.B) {
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		h := sha512.Sum384([]byte("baseline"))
		sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
		for b.Loop() {
			if !ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) {
				b.Fatal("baseline signature")
			}
		}
	})
}

func BenchmarkHostMakesEvidence(b *testing.B) {
	snp, err := attest.SimulatedSNP(attest.PocSNP())
	if err != nil {
		b.Fatal(err)
	}
	gpu, err := attest.SimulatedGPU(attest.PocGPUs)
	if err != nil {
		b.Fatal(err)
	}
	var rd [64]byte
	var gn [32]byte
	b.Run("sev-snp-simulated", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := snp.Collect(context.Background(), rd); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nvidia-gpu-simulated", func(b *testing.B) {
		for b.Loop() {
			if _, err := gpu.Collect(context.Background(), gn); err != nil {
				b.Fatal(err)
			}
		}
	})
}
