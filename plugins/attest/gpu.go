package attest

import (
	"context"
	"errors"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
)

// GPU collects an aggregation host's NVIDIA GPU evidence for a verifier's
// nonce: the system's confidential-computing state and, per GPU, the
// signed attestation report answering nonce and the attestation
// certificate chain. Collection checks nothing that a verifier must
// check itself (nvgpu.Verify); it refuses early, with a clear error, only
// where no evidence can be had (no driver, CC off, GPUs not ready).
type GPU interface {
	Collect(ctx context.Context, nonce [32]byte) (*nvgpu.Evidence, error)
}

// Collection refusals, for errors.Is: a host without evidence to give.
var (
	// ErrNoDriver: no NVIDIA driver (libnvidia-ml) on the host.
	ErrNoDriver = errors.New("no NVIDIA driver: libnvidia-ml.so not found (is this a GPU host with the NVIDIA driver installed?)")
	// ErrCCOff: the GPUs run without confidential computing.
	ErrCCOff = errors.New("NVIDIA confidential computing is off (nvmlSystemGetConfComputeState: ccFeature disabled)")
	// ErrNotReady: CC is on but the GPUs do not accept work yet.
	ErrNotReady = errors.New("NVIDIA GPUs are not ready for confidential work (nvmlSystemGetConfComputeGpusReadyState is not ACCEPTING_CLIENT_REQUESTS_TRUE)")
)

// GPUInfo is one GPU in a host's inventory, for resource control.
type GPUInfo struct {
	UUID, Name string
	// MemoryBytes is the GPU's total memory.
	MemoryBytes uint64
}
