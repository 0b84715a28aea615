package attest

import (
	"context"
	"fmt"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
)

// SimulatedGPUs is a simulated (no NVIDIA GPU) collector: its evidence
// comes from nvgputest's simulator, signed under the test root, and
// verifies only with nvgpu.Verify in simulated mode. It is for the POC's
// simulated aggregation host and for tests; it proves nothing about
// hardware.
type SimulatedGPUs struct {
	// System is the simulated host; change its flags to make bad state.
	System *nvgputest.System
}

var _ GPU = (*SimulatedGPUs)(nil)

// SimulatedGPU returns a simulated (no NVIDIA GPU) collector of n GPUs
// made with opts.
func SimulatedGPU(n int, opts ...nvgputest.Option) (*SimulatedGPUs, error) {
	if n < 1 || n > nvgpu.MaxDevices {
		return nil, fmt.Errorf("simulated GPU: %d GPUs, want 1 to %d", n, nvgpu.MaxDevices)
	}
	s, err := nvgputest.NewSystem(n, opts...)
	if err != nil {
		return nil, fmt.Errorf("simulated GPU: %w", err)
	}
	return &SimulatedGPUs{System: s}, nil
}

// Collect returns the simulated evidence for nonce.
func (g *SimulatedGPUs) Collect(ctx context.Context, nonce [32]byte) (*nvgpu.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return g.System.Evidence(nonce), nil
}
