//go:build cgo && nvml

package attest

import (
	"context"
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
)

// NVML collects evidence from the host's NVIDIA GPUs through go-nvml
// (cgo, libnvidia-ml loaded at Init). It is built only with cgo and the
// nvml build tag, so the hearth binary (CGO_ENABLED=0) never links it.
type NVML struct {
	lib nvml.Interface
}

var _ GPU = (*NVML)(nil)

// NewNVML returns a collector on the host's libnvidia-ml.
func NewNVML() *NVML { return &NVML{lib: nvml.New()} }

// NewNVMLWith returns a collector on lib (go-nvml's mock in tests).
func NewNVMLWith(lib nvml.Interface) *NVML { return &NVML{lib: lib} }

// session initializes NVML for one call; the returned func shuts it down.
func (n *NVML) session() (func(), error) {
	switch ret := n.lib.Init(); ret {
	case nvml.SUCCESS:
		return func() { n.lib.Shutdown() }, nil
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return nil, ErrNoDriver
	default:
		return nil, fmt.Errorf("nvml init: %w", ret)
	}
}

// Collect reads the CC state (refusing CC off and not ready with
// ErrCCOff and ErrNotReady), the driver version and, per GPU, its UUID,
// name, the attestation report for nonce and the attestation chain.
func (n *NVML) Collect(ctx context.Context, nonce [32]byte) (*nvgpu.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	done, err := n.session()
	if err != nil {
		return nil, err
	}
	defer done()
	state, ret := n.lib.SystemGetConfComputeState()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlSystemGetConfComputeState: %w", ret)
	}
	if state.CcFeature != nvml.CC_SYSTEM_FEATURE_ENABLED {
		return nil, ErrCCOff
	}
	ready, ret := n.lib.SystemGetConfComputeGpusReadyState()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlSystemGetConfComputeGpusReadyState: %w", ret)
	}
	if ready != nvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE {
		return nil, ErrNotReady
	}
	driver, ret := n.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlSystemGetDriverVersion: %w", ret)
	}
	ev := &nvgpu.Evidence{
		CCFeatureOn:   true,
		Ready:         true,
		DevToolsOn:    state.DevToolsMode != nvml.CC_SYSTEM_DEVTOOLS_MODE_OFF,
		Environment:   environment(state.Environment),
		DriverVersion: driver,
	}
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetCount: %w", ret)
	}
	if count < 1 || count > nvgpu.MaxDevices {
		return nil, fmt.Errorf("nvml: %d GPUs, want 1 to %d", count, nvgpu.MaxDevices)
	}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := n.device(i, nonce)
		if err != nil {
			return nil, fmt.Errorf("GPU %d: %w", i, err)
		}
		ev.Devices = append(ev.Devices, *d)
	}
	return ev, nil
}

func (n *NVML) device(i int, nonce [32]byte) (*nvgpu.Device, error) {
	dev, ret := n.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetHandleByIndex: %w", ret)
	}
	uuid, ret := dev.GetUUID()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetUUID: %w", ret)
	}
	name, ret := dev.GetName()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetName: %w", ret)
	}
	rep := nvml.ConfComputeGpuAttestationReport{Nonce: nonce}
	if ret := dev.GetConfComputeGpuAttestationReport(&rep); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetConfComputeGpuAttestationReport: %w", ret)
	}
	if rep.AttestationReportSize == 0 || int(rep.AttestationReportSize) > len(rep.AttestationReport) {
		return nil, fmt.Errorf("attestation report size %d, buffer %d", rep.AttestationReportSize, len(rep.AttestationReport))
	}
	cert, ret := dev.GetConfComputeGpuCertificate()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetConfComputeGpuCertificate: %w", ret)
	}
	if cert.AttestationCertChainSize == 0 || int(cert.AttestationCertChainSize) > len(cert.AttestationCertChain) {
		return nil, fmt.Errorf("attestation chain size %d, buffer %d", cert.AttestationCertChainSize, len(cert.AttestationCertChain))
	}
	return &nvgpu.Device{
		UUID:      uuid,
		Name:      name,
		Report:    append([]byte(nil), rep.AttestationReport[:rep.AttestationReportSize]...),
		CertChain: append([]byte(nil), cert.AttestationCertChain[:cert.AttestationCertChainSize]...),
	}, nil
}

// Inventory lists the host's GPUs (count, names, memory) for resource
// control; it needs no CC.
func (n *NVML) Inventory(ctx context.Context) ([]GPUInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	done, err := n.session()
	if err != nil {
		return nil, err
	}
	defer done()
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetCount: %w", ret)
	}
	out := make([]GPUInfo, 0, count)
	for i := range count {
		dev, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("GPU %d: nvmlDeviceGetHandleByIndex: %w", i, ret)
		}
		var g GPUInfo
		var errs []error
		if g.UUID, ret = dev.GetUUID(); ret != nvml.SUCCESS {
			errs = append(errs, fmt.Errorf("nvmlDeviceGetUUID: %w", ret))
		}
		if g.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
			errs = append(errs, fmt.Errorf("nvmlDeviceGetName: %w", ret))
		}
		mem, ret := dev.GetMemoryInfo()
		if ret != nvml.SUCCESS {
			errs = append(errs, fmt.Errorf("nvmlDeviceGetMemoryInfo: %w", ret))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("GPU %d: %w", i, err)
		}
		g.MemoryBytes = mem.Total
		out = append(out, g)
	}
	return out, nil
}

func environment(e uint32) nvgpu.Environment {
	switch e {
	case nvml.CC_SYSTEM_ENVIRONMENT_SIM:
		return nvgpu.EnvironmentSimulated
	case nvml.CC_SYSTEM_ENVIRONMENT_PROD:
		return nvgpu.EnvironmentProduction
	default:
		return nvgpu.EnvironmentUnavailable
	}
}
