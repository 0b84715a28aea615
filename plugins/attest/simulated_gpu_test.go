package attest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
)

func TestSimulatedGPU(t *testing.T) {
	g, err := attest.SimulatedGPU(2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := nvgpu.ParseReference(nvgputest.ReferenceJSON(nvgputest.DefaultBlocks))
	if err != nil {
		t.Fatal(err)
	}
	nonce := [32]byte{1, 2, 3}
	ev, err := g.Collect(context.Background(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nvgpu.Verify(ev, ref, nonce, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := nvgpu.Verify(ev, ref, nonce, false, time.Now()); err == nil {
		t.Fatal("simulated evidence verified against the NVIDIA root")
	}
	if _, err := attest.SimulatedGPU(0); err == nil {
		t.Fatal("0 GPUs accepted")
	}
}
