package attest

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
)

// The simulated aggregation host of `hearth poc --aggregator attested`
// and `hearth aggregator --simulated-tee`, and the site policy that
// accepts it. Every value here is SIMULATED: no TEE made it.

// PocSNP is what the simulated host's SEV-SNP evidence claims: a Milan
// guest whose launch measurement is SHA-384 of a label, at a TCB of
// bootloader 3, TEE 0, SNP 8, microcode 115, debugging, migration agent
// and SMT off, VMPL 0.
func PocSNP() SimulatedSNPOptions {
	return SimulatedSNPOptions{Measurement: sha512.Sum384([]byte("hearth simulated aggregation host v1")),
		TCB: SimulatedTCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}}
}

// PocGPUs is how many GPUs the simulated host has.
const PocGPUs = 1

// SimulatedPolicy is a site's local/attestation.json, as a JSON object,
// that accepts the simulated host: both kinds required, the simulators'
// test roots trusted ("simulated": true), its measurement and a minimum
// TCB at what it claims, re-attestation every 10 minutes. A site on real
// hardware writes its own reference values instead.
func SimulatedPolicy() map[string]any {
	snp := PocSNP()
	var gpu map[string]any
	if err := json.Unmarshal(nvgputest.ReferenceJSON(nvgputest.DefaultBlocks), &gpu); err != nil {
		panic(err) // the simulator's own reference: always JSON
	}
	return map[string]any{
		"require":   []string{"sev-snp", "nvidia-gpu"},
		"reattest":  "10m",
		"simulated": true,
		"sev_snp": map[string]any{
			"measurements": []string{hex.EncodeToString(snp.Measurement[:])},
			"minimum_tcb":  map[string]any{"bootloader": snp.TCB.Bootloader, "tee": snp.TCB.TEE, "snp": snp.TCB.SNP, "microcode": snp.TCB.Microcode},
		},
		"nvidia_gpu": gpu,
	}
}
