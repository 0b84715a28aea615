package nvgpu_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testNonce(b byte) (n [32]byte) {
	for i := range n {
		n[i] = b
	}
	return n
}

func mustSystem(t testing.TB, n int, opts ...nvgputest.Option) *nvgputest.System {
	t.Helper()
	s, err := nvgputest.NewSystem(n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustRef(t testing.TB, raw string) *nvgpu.Reference {
	t.Helper()
	ref, err := nvgpu.ParseReference([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func defaultRef(t testing.TB) *nvgpu.Reference {
	t.Helper()
	return mustRef(t, string(nvgputest.ReferenceJSON(nvgputest.DefaultBlocks)))
}

func wantReason(t *testing.T, err error, want nvgpu.Reason) {
	t.Helper()
	var re *nvgpu.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RefusedError %q", err, want)
	}
	if re.Reason != want {
		t.Fatalf("reason %q (%v), want %q", re.Reason, err, want)
	}
	if re.Kind != "nvidia-gpu" || !strings.HasPrefix(err.Error(), "attestation: nvidia-gpu: "+string(want)+": ") {
		t.Fatalf("Error() = %q", err.Error())
	}
	if !errors.Is(err, &nvgpu.RefusedError{Reason: want}) {
		t.Fatalf("errors.Is does not match reason %q", want)
	}
}

func TestVerifyAccepts(t *testing.T) {
	nonce := testNonce(7)
	sys := mustSystem(t, 2)
	v, err := nvgpu.Verify(sys.Evidence(nonce), defaultRef(t), nonce, true, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Devices) != 2 || v.Devices[0].DriverVersion != nvgputest.DefaultDriverVersion || v.Devices[0].VBIOSVersion != "96.00.9f.00.01" {
		t.Fatalf("verified %+v", v.Devices[0])
	}
	if v.Devices[1].UUID != sys.Devices[1].UUID {
		t.Fatalf("UUID %q, want %q", v.Devices[1].UUID, sys.Devices[1].UUID)
	}
}

// TestVerifyRefuses shows every check refusing, each with its reason.
func TestVerifyRefuses(t *testing.T) {
	nonce := testNonce(7)
	good := func(t *testing.T) *nvgpu.Evidence { return mustSystem(t, 1).Evidence(nonce) }
	withReport := func(f func(t *testing.T, d *nvgputest.Device) []byte) func(t *testing.T) *nvgpu.Evidence {
		return func(t *testing.T) *nvgpu.Evidence {
			sys := mustSystem(t, 1)
			ev := sys.Evidence(nonce)
			ev.Devices[0].Report = f(t, sys.Devices[0])
			return ev
		}
	}
	cases := []struct {
		name       string
		ev         func(t *testing.T) *nvgpu.Evidence
		ref        string // "" = the default reference
		production bool   // verify with simulated=false
		at         time.Time
		want       nvgpu.Reason
	}{
		{name: "oversize report", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices[0].Report = make([]byte, nvgpu.MaxReport+1)
			return ev
		}, want: nvgpu.ReasonSize},
		{name: "oversize chain", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices[0].CertChain = make([]byte, nvgpu.MaxCertChain+1)
			return ev
		}, want: nvgpu.ReasonSize},
		{name: "too many devices", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			for len(ev.Devices) <= nvgpu.MaxDevices {
				ev.Devices = append(ev.Devices, ev.Devices[0])
			}
			return ev
		}, want: nvgpu.ReasonSize},
		{name: "no report", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices[0].Report = nil
			return ev
		}, want: nvgpu.ReasonEvidence},
		{name: "cc off", ev: func(t *testing.T) *nvgpu.Evidence {
			s := mustSystem(t, 1)
			s.CCOff = true
			return s.Evidence(nonce)
		}, want: nvgpu.ReasonCCMode},
		{name: "not ready", ev: func(t *testing.T) *nvgpu.Evidence {
			s := mustSystem(t, 1)
			s.NotReady = true
			return s.Evidence(nonce)
		}, want: nvgpu.ReasonNotReady},
		{name: "devtools on", ev: func(t *testing.T) *nvgpu.Evidence {
			s := mustSystem(t, 1)
			s.DevToolsOn = true
			return s.Evidence(nonce)
		}, want: nvgpu.ReasonDevTools},
		{name: "fewer gpus than min_gpus", ev: good,
			ref:  `{"measurements": {"0": ["` + hex.EncodeToString(nvgputest.DefaultMeasurement(1)) + `"]}, "min_gpus": 2}`,
			want: nvgpu.ReasonGPUCount},
		{name: "no devices", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices = nil
			return ev
		}, want: nvgpu.ReasonGPUCount},
		{name: "one GPU's evidence twice", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices = append(ev.Devices, ev.Devices[0])
			return ev
		}, ref: `{"measurements": {"0": ["` + hex.EncodeToString(nvgputest.DefaultMeasurement(1)) + `"]}, "min_gpus": 2}`,
			want: nvgpu.ReasonEvidence},
		{name: "chain from another CA", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithUntrustedRoot()).Evidence(nonce)
		}, want: nvgpu.ReasonChain},
		{name: "test root without simulated mode", ev: good, production: true, want: nvgpu.ReasonChain},
		{name: "leaf expired", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))).Evidence(nonce)
		}, want: nvgpu.ReasonChain},
		{name: "leaf not yet valid", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithValidity(now.Add(time.Hour), now.Add(48*time.Hour))).Evidence(nonce)
		}, want: nvgpu.ReasonChain},
		{name: "chain is garbage", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices[0].CertChain = []byte("not pem at all")
			return ev
		}, want: nvgpu.ReasonChain},
		{name: "chain of another device", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.Devices[0].CertChain = mustSystem(t, 1).Devices[0].CertChain()
			return ev
		}, want: nvgpu.ReasonSignature},
		{name: "signed with another key", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithWrongKey()).Evidence(nonce)
		}, want: nvgpu.ReasonSignature},
		{name: "measurement altered after signing", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			r := d.Report(nonce)
			i := bytes.Index(r, nvgputest.DefaultMeasurement(2))
			r[i] ^= 1
			return r
		}), want: nvgpu.ReasonSignature},
		{name: "nonce altered after signing", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			r := d.Report(testNonce(8))
			copy(r[4:36], nonce[:])
			return r
		}), want: nvgpu.ReasonSignature},
		{name: "replay: report for another nonce", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			return d.Report(testNonce(8))
		}), want: nvgpu.ReasonNonce},
		{name: "other measurement, signed", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			return d.Report(nonce, nvgputest.Measurement{Index: 3, Value: bytes.Repeat([]byte{0xAB}, 48)})
		}), want: nvgpu.ReasonMeasurement},
		{name: "referenced block missing", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithBlocks(nvgputest.DefaultBlocks-1)).Evidence(nonce)
		}, want: nvgpu.ReasonMeasurement},
		{name: "driver below minimum", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithDriverVersion("535.104.05")).Evidence(nonce)
		}, want: nvgpu.ReasonDriver},
		{name: "driver absent from report", ev: func(t *testing.T) *nvgpu.Evidence {
			return mustSystem(t, 1, nvgputest.WithDriverVersion("")).Evidence(nonce)
		}, want: nvgpu.ReasonDriver},
		{name: "nvml driver differs from the report's", ev: func(t *testing.T) *nvgpu.Evidence {
			ev := good(t)
			ev.DriverVersion = "999.0"
			return ev
		}, want: nvgpu.ReasonDriver},
		{name: "truncated report", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			r := d.Report(nonce)
			return r[:len(r)-1]
		}), want: nvgpu.ReasonFormat},
		{name: "garbage report", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			return bytes.Repeat([]byte{0xFF}, 400)
		}), want: nvgpu.ReasonFormat},
		{name: "trailing bytes", ev: withReport(func(t *testing.T, d *nvgputest.Device) []byte {
			return append(d.Report(nonce), 0)
		}), want: nvgpu.ReasonFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := defaultRef(t)
			if tc.ref != "" {
				ref = mustRef(t, tc.ref)
			}
			at := now
			if !tc.at.IsZero() {
				at = tc.at
			}
			_, err := nvgpu.Verify(tc.ev(t), ref, nonce, !tc.production, at)
			wantReason(t, err, tc.want)
		})
	}
}

func TestDevToolsAllowed(t *testing.T) {
	nonce := testNonce(1)
	s := mustSystem(t, 1)
	s.DevToolsOn = true
	ref := defaultRef(t)
	ref.AllowDevTools = true
	v, err := nvgpu.Verify(s.Evidence(nonce), ref, nonce, true, now)
	if err != nil || !v.DevToolsOn {
		t.Fatalf("v=%+v err=%v", v, err)
	}
}

// loadHopperSample reads NVIDIA's sample Hopper report and chain (nvtrust's
// local_gpu_verifier samples; see testdata/README).
func loadHopperSample(t testing.TB) (report, chain []byte) {
	t.Helper()
	h, err := os.ReadFile("testdata/hopper_report.hex")
	if err != nil {
		t.Fatal(err)
	}
	report, err = hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	chain, err = os.ReadFile("testdata/hopper_cert_chain.pem")
	if err != nil {
		t.Fatal(err)
	}
	return report, chain
}

// TestRealHopperSample verifies a real H100 report and chain, as NVIDIA
// publishes them, against the pinned NVIDIA root (simulated=false).
func TestRealHopperSample(t *testing.T) {
	report, chain := loadHopperSample(t)
	rep, err := nvgpu.ParseReport(report)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blocks) != 64 || rep.DriverVersion() != "550.90.07" || rep.VBIOSVersion() != "96.00.9f.00.01" {
		t.Fatalf("blocks %d driver %q vbios %q", len(rep.Blocks), rep.DriverVersion(), rep.VBIOSVersion())
	}
	m2, _ := rep.Measurement(2)
	ref := mustRef(t, `{"measurements": {"1": ["`+hex.EncodeToString(m2)+`"]}, "minimum_driver": "550.54"}`)
	ev := &nvgpu.Evidence{CCFeatureOn: true, Ready: true, Environment: nvgpu.EnvironmentProduction,
		Devices: []nvgpu.Device{{UUID: "GPU-sample", Name: "NVIDIA H100", Report: report, CertChain: chain}}}
	v, err := nvgpu.Verify(ev, ref, rep.Nonce, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Devices[0].Leaf.Subject.CommonName, "GH100") {
		t.Fatalf("leaf %v", v.Devices[0].Leaf.Subject)
	}
	// The same evidence is refused in simulated mode: the NVIDIA root is
	// not trusted there, and the test root never in production.
	_, err = nvgpu.Verify(ev, ref, rep.Nonce, true, now)
	wantReason(t, err, nvgpu.ReasonChain)
	// And for another nonce.
	_, err = nvgpu.Verify(ev, ref, testNonce(0), false, now)
	wantReason(t, err, nvgpu.ReasonNonce)
}

func TestRootsPinned(t *testing.T) {
	if !nvgputest.TestRoot().Equal(nvgpu.SimulatedRoot()) {
		t.Fatal("nvgputest's root and nvgpu's simulated root differ")
	}
	r := nvgpu.NVIDIARoot()
	if r.Subject.CommonName != "NVIDIA Device Identity CA" {
		t.Fatalf("pinned root %v", r.Subject)
	}
	sum := sha512.Sum384(r.Raw)
	t.Logf("pinned NVIDIA root SHA-384 %x", sum)
}

// BenchmarkVerify times one GPU's verification beside its floor, one
// P-384 ECDSA verify (the chain costs two more, plus parsing).
func BenchmarkVerify(b *testing.B) {
	nonce := testNonce(3)
	sys := mustSystem(b, 1)
	ev := sys.Evidence(nonce)
	ref := defaultRef(b)
	b.Run("verify-1gpu", func(b *testing.B) {
		for b.Loop() {
			if _, err := nvgpu.Verify(ev, ref, nonce, true, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	report, chain := loadHopperSample(b)
	rep, _ := nvgpu.ParseReport(report)
	m2, _ := rep.Measurement(2)
	href := mustRef(b, `{"measurements": {"1": ["`+hex.EncodeToString(m2)+`"]}}`)
	hev := &nvgpu.Evidence{CCFeatureOn: true, Ready: true, Devices: []nvgpu.Device{{Report: report, CertChain: chain}}}
	b.Run("verify-hopper-sample", func(b *testing.B) {
		for b.Loop() {
			if _, err := nvgpu.Verify(hev, href, rep.Nonce, false, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse-report", func(b *testing.B) {
		for b.Loop() {
			if _, err := nvgpu.ParseReport(report); err != nil {
				b.Fatal(err)
			}
		}
	})
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	h := sha512.Sum384(report)
	r, s, _ := ecdsa.Sign(rand.Reader, k, h[:])
	b.Run("baseline-p384-verify", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&k.PublicKey, h[:], new(big.Int).Set(r), s) {
				b.Fatal("verify")
			}
		}
	})
}
