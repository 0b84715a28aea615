//go:build cgo && nvml

package attest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
)

// ccServer is go-nvml's DGX H100 mock (8 GPUs) with its CC functions set:
// the system state from state and ready, and per GPU a simulated device
// (nvgputest) answering reports for the nonce NVML is handed.
func ccServer(t *testing.T, state nvml.ConfComputeSystemState, ready uint32) (*server.Server, []*nvgputest.Device) {
	t.Helper()
	s := dgxh100.New()
	s.SystemGetConfComputeStateFunc = func() (nvml.ConfComputeSystemState, nvml.Return) { return state, nvml.SUCCESS }
	s.SystemGetConfComputeGpusReadyStateFunc = func() (uint32, nvml.Return) { return ready, nvml.SUCCESS }
	var sims []*nvgputest.Device
	for _, d := range s.Devices {
		dev := d.(*server.Device)
		sim, err := nvgputest.NewDevice(nvgputest.WithUUID(dev.UUID), nvgputest.WithName(dev.Config.Name), nvgputest.WithDriverVersion(s.DriverVersion))
		if err != nil {
			t.Fatal(err)
		}
		sims = append(sims, sim)
		dev.GetConfComputeGpuAttestationReportFunc = func(r *nvml.ConfComputeGpuAttestationReport) nvml.Return {
			b := sim.Report(r.Nonce)
			r.AttestationReportSize = uint32(copy(r.AttestationReport[:], b))
			return nvml.SUCCESS
		}
		dev.GetConfComputeGpuCertificateFunc = func() (nvml.ConfComputeGpuCertificate, nvml.Return) {
			var c nvml.ConfComputeGpuCertificate
			c.AttestationCertChainSize = uint32(copy(c.AttestationCertChain[:], sim.CertChain()))
			return c, nvml.SUCCESS
		}
	}
	return s, sims
}

var ccOn = nvml.ConfComputeSystemState{
	Environment: nvml.CC_SYSTEM_ENVIRONMENT_PROD, CcFeature: nvml.CC_SYSTEM_FEATURE_ENABLED, DevToolsMode: nvml.CC_SYSTEM_DEVTOOLS_MODE_OFF,
}

func TestNVMLCollectVerifies(t *testing.T) {
	s, sims := ccServer(t, ccOn, nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
	nonce := [32]byte{9, 8, 7}
	ev, err := attest.NewNVMLWith(s).Collect(context.Background(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Devices) != 8 || ev.Environment != nvgpu.EnvironmentProduction || ev.DriverVersion != "550.54.15" || ev.DevToolsOn {
		t.Fatalf("evidence: %d devices, env %q, driver %q, devtools %v", len(ev.Devices), ev.Environment, ev.DriverVersion, ev.DevToolsOn)
	}
	if ev.Devices[3].UUID != sims[3].UUID || ev.Devices[3].Name != "NVIDIA H100 80GB HBM3" {
		t.Fatalf("device 3: %q %q", ev.Devices[3].UUID, ev.Devices[3].Name)
	}
	ref, err := nvgpu.ParseReference(nvgputest.ReferenceJSON(nvgputest.DefaultBlocks))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nvgpu.Verify(ev, ref, nonce, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := nvgpu.Verify(ev, ref, [32]byte{1}, true, time.Now()); err == nil {
		t.Fatal("verified for another nonce")
	}
}

func TestNVMLCollectRefuses(t *testing.T) {
	ccOff := ccOn
	ccOff.CcFeature = nvml.CC_SYSTEM_FEATURE_DISABLED
	cases := []struct {
		name  string
		setup func(t *testing.T) *server.Server
		want  error
	}{
		{"cc off", func(t *testing.T) *server.Server {
			s, _ := ccServer(t, ccOff, nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
			return s
		}, attest.ErrCCOff},
		{"not ready", func(t *testing.T) *server.Server {
			s, _ := ccServer(t, ccOn, nvml.CC_ACCEPTING_CLIENT_REQUESTS_FALSE)
			return s
		}, attest.ErrNotReady},
		{"library missing", func(t *testing.T) *server.Server {
			s, _ := ccServer(t, ccOn, nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
			s.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
			return s
		}, attest.ErrNoDriver},
		{"ready state unreadable", func(t *testing.T) *server.Server {
			s, _ := ccServer(t, ccOn, nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
			s.SystemGetConfComputeGpusReadyStateFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
			return s
		}, nvml.ERROR_NOT_SUPPORTED},
		{"report call fails", func(t *testing.T) *server.Server {
			s, _ := ccServer(t, ccOn, nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
			s.Devices[2].(*server.Device).GetConfComputeGpuAttestationReportFunc = func(*nvml.ConfComputeGpuAttestationReport) nvml.Return {
				return nvml.ERROR_INSUFFICIENT_SIZE
			}
			return s
		}, nvml.ERROR_INSUFFICIENT_SIZE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := attest.NewNVMLWith(tc.setup(t)).Collect(context.Background(), [32]byte{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if ev != nil {
				t.Fatal("evidence returned with an error")
			}
		})
	}
}

// TestNVMLNoDriver runs the real go-nvml: on a machine without the NVIDIA
// driver its Init fails with ERROR_LIBRARY_NOT_FOUND, which Collect turns
// into ErrNoDriver.
func TestNVMLNoDriver(t *testing.T) {
	_, err := attest.NewNVML().Collect(context.Background(), [32]byte{})
	if err == nil {
		t.Skip("an NVIDIA driver with CC is present")
	}
	if !errors.Is(err, attest.ErrNoDriver) {
		t.Skipf("an NVIDIA driver is present: %v", err)
	}
}

func TestNVMLInventory(t *testing.T) {
	s, _ := ccServer(t, ccOn, nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
	inv, err := attest.NewNVMLWith(s).Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) != 8 || inv[0].Name != "NVIDIA H100 80GB HBM3" || inv[0].MemoryBytes < 80e9 {
		t.Fatalf("inventory %+v", inv)
	}
}

// TestNVMLRealHost runs the real go-nvml where a driver is present (it
// skips elsewhere): the inventory must list at least one GPU, and Collect
// either yields evidence or refuses with a clear collection error.
func TestNVMLRealHost(t *testing.T) {
	g := attest.NewNVML()
	inv, err := g.Inventory(context.Background())
	if errors.Is(err, attest.ErrNoDriver) {
		t.Skip("no NVIDIA driver")
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) == 0 {
		t.Fatal("a driver but no GPUs")
	}
	for _, g := range inv {
		t.Logf("GPU %s %q %d MiB", g.UUID, g.Name, g.MemoryBytes>>20)
	}
	ev, err := g.Collect(context.Background(), [32]byte{1})
	switch {
	case errors.Is(err, attest.ErrCCOff), errors.Is(err, attest.ErrNotReady):
		t.Logf("collect refused: %v", err)
	case err != nil:
		t.Fatalf("collect: %v", err)
	default:
		t.Logf("collected %d GPUs, environment %q, driver %q, devtools %v", len(ev.Devices), ev.Environment, ev.DriverVersion, ev.DevToolsOn)
	}
}
