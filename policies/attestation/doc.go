// Package attestation is a site's attestation policy engine: it parses
// the site's local/attestation.json, the reference values an aggregation
// host's evidence must meet before the site seals an update to the key
// the evidence binds, and it fixes that binding.
//
// Each site verifies a host's evidence itself, offline, against its own
// file; the server cannot vouch for a host. A site without
// local/attestation.json accepts no attested aggregator: the caller, which
// reads the file, treats its absence as "no host's evidence is accepted",
// never as "any host is".
//
// Use follows policies/authz: Parse turns the file into a Policy,
// strictly; the verifiers decide from its values, each answering a
// *RefusedError with a stable Reason when it refuses:
//
//	rd, err := attestation.ReportData(key, nonce)
//	...
//	verified, err := sevsnp.Verify(report, certs, policy.SNP, rd, policy.Simulated, now)
//
// and the GPU verifier (policies/attestation/nvgpu) likewise from
// policy.GPURef and GPUNonce. (*Policy).Verify does it all for one
// host's evidence: every kind the site requires and the job demands,
// each present and verified, the first refusal returned.
//
// # The binding
//
// A host presents its sealing public key and, for each site's fresh
// 32-byte nonce, evidence whose report data is
//
//	REPORT_DATA = SHA-512(key ‖ nonce)                                  (ReportData, SEV-SNP)
//	GPU nonce   = SHA-256("hearth.gpu-nonce.v1" ‖ 0x00 ‖ key ‖ nonce)   (GPUNonce, the GPU's 32-byte nonce)
//
// so a report made for another key, or for an earlier nonce (a replay),
// does not verify, and the site seals only to the key its verdict names.
//
// # Policy format
//
//	{"require": ["sev-snp", "nvidia-gpu"],
//	 "reattest": "10m",
//	 "simulated": false,
//	 "sev_snp": {"measurements": ["<96 hex digits>", ...],
//	             "minimum_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
//	             "minimum_build": 0,
//	             "allow_migration_agent": false,
//	             "allow_smt": false,
//	             "max_vmpl": 0,
//	             "product": "Genoa"},
//	 "nvidia_gpu": {...}}
//
// require, required, lists the TEE kinds the site demands, each once:
// "sev-snp" (an AMD SEV-SNP confidential VM) and "nvidia-gpu" (an NVIDIA
// GPU in confidential computing mode). An empty list is refused: a site
// that demands nothing has no file. nvidia-gpu is refused without sev-snp:
// a GPU signs whatever nonce its driver hands it, so its report says
// nothing of the code that holds the host's sealing key; GPU evidence adds
// to a CPU TEE's, never replaces it.
//
// The SEV-SNP measurements a site accepts must be those of a measured
// direct boot of the aggregation host's image (firmware, kernel, initrd
// and command line, the root file system under dm-verity) that runs
// hearth aggregator: a firmware-only measurement would let a genuine
// confidential VM running any operating system, and so any code choosing
// REPORT_DATA, pass. The sealing key is the host process's, bound to each
// job by its certificate (actors/sealing); REPORT_DATA binds that key.
//
// reattest, a Go duration from "1s" to "24h" (default "10m"), is how often
// the site asks a host it accepted for fresh evidence; a host whose fresh
// evidence does not verify, or does not come within twice this, is sent
// nothing more.
//
// simulated (default false) trusts go-sev-guest's test-only AMD roots and
// the GPU verifier's test root instead of the vendors' real ones, and
// then the real ones not at all: for tests and hearth poc, whose hosts
// are simulated. A production site never sets it.
//
// sev_snp, required when require names sev-snp, holds the SEV-SNP
// reference values (package sevsnp parses it):
//
//	measurements           required, 1 to 64 launch measurements, each 96 hex
//	                       digits (SHA-384), none repeated; the report's must be one
//	minimum_tcb            required, all four components, each 0 to 255: the least
//	                       REPORTED_TCB accepted, component by component
//	minimum_build          0 to 255, default 0: the least firmware build accepted
//	allow_migration_agent  default false: accept a guest policy allowing a migration agent
//	allow_smt              default false: accept SMT, allowed by the guest policy or
//	                       enabled on the platform
//	max_vmpl               0 to 3, default 0: the least privileged VMPL accepted
//	product                "Milan", "Genoa" or "Turin"; absent: any
//
// A guest whose policy allows debugging is always refused: there is no
// knob. CXL, which the guest policy may allow, is not constrained.
//
// nvidia_gpu, required when require names nvidia-gpu, is the GPU
// verifier's section, parsed strictly by nvgpu.ParseReference
// (Policy.GPURef).
//
// # Parsing
//
// Parsing is strict and fails closed: a document above MaxPolicyBytes
// (64 KiB), text that is not UTF-8, a duplicate key, nesting deeper than
// 16, trailing data, null anywhere, an unknown key at any level, or any
// departure from the format above is a *ParseError naming the JSON path of
// what it refuses, e.g.
//
//	attestation: sev_snp.measurements[1]: 95 characters, want 96 hex digits (a SHA-384 launch measurement)
//
// # Refusals
//
// A verifier's refusal is a *RefusedError (tee's, aliased here) whose
// Error reads "attestation: sev-snp: measurement: ..."; its Reason is one
// of the Reason constants (size, format, chain, signature, report_data,
// nonce, measurement, debug, migration_agent, smt, tcb, build, vmpl,
// product, consistency, policy, missing, and the GPU verifier's evidence,
// cc_mode, not_ready, devtools, driver, gpu_count), a list that only
// grows; a GPU refusal reads "attestation: nvidia-gpu: cc_mode: ...".
package attestation
