// Package attest collects an aggregation host's attestation evidence, the
// host side of issue 12's confidential computing: for each site's nonce
// the host asks its TEE for a report whose REPORT_DATA binds the host's
// sealing key to that nonce (policies/attestation.ReportData), and hands
// the raw bytes to the site, which verifies them itself
// (policies/attestation/sevsnp.Verify). Collection only: this package
// judges nothing.
//
// SNP is the SEV-SNP collector. HardwareSNP reaches the guest's AMD
// secure processor through go-sev-guest (configfs-tsm, then
// /dev/sev-guest); SimulatedSNP is go-sev-guest's test device, signing
// with go-sev-guest's test-only AMD chain (or a second, foreign test chain)
// whatever measurement, TCB and guest policy it is told to claim, for
// tests and hearth poc --aggregator attested. A simulated collector names
// itself "simulated (go-sev-guest test device)" (SimulatedSNPName), and
// its evidence verifies only at a site whose policy says "simulated":
// true.
//
// Linking: SimulatedSNP imports go-sev-guest's testing package, which
// imports Go's testing package, so the hearth binary that links this
// package links testing; integration/imports_test.go lists that package
// as a labelled simulator. Both collectors are pure Go (CGO_ENABLED=0
// builds them). go-sev-guest's packages register global flags
// (-sev_guest_device_path, -default_vmpl, -product, ...) on
// flag.CommandLine, which Hearth never parses: each keeps its default.
//
// GPU is the NVIDIA GPU collector. NVML (nvml.go, built only with cgo and
// -tags nvml, so the default hearth binary stays CGO_ENABLED=0) asks the
// driver for the system's CC state and ready state, checks both, and
// collects each GPU's SPDM attestation report for the nonce and its
// certificate chain; SimulatedGPU signs real-format reports under a test
// root (policies/attestation/nvgpu/nvgputest), labelled simulated.
// poc.go holds the simulated host the POC runs and the site policy that
// accepts it.
package attest
