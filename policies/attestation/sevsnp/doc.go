// Package sevsnp verifies AMD SEV-SNP evidence offline against a site's
// reference values: Verify takes the raw ATTESTATION_REPORT and the
// extended report's certificate table as an aggregation host's kernel
// returns them (plugins/attest collects them), the site's Reference (the
// sev_snp section of local/attestation.json, ParseReference) and the
// REPORT_DATA the site expects, and accepts (a *Verified for the audit)
// or refuses with a *tee.RefusedError whose Reason names the check that
// failed.
//
// Verification is go-sev-guest's: verify.SnpAttestation for the chain
// and the signature, with the trusted roots fixed here (AMD's, embedded
// in go-sev-guest; never a root the evidence presents) and certificate
// fetching off (no network: a report without its VCEK or VLEK
// certificate is refused), then Hearth's own checks, one reason each,
// then validate.SnpAttestation over the same values for what only it
// checks. Both sizes are bounded before anything is parsed. Revocation
// (AMD's CRL) is not checked: it needs the network.
//
// Simulated evidence (go-sev-guest's test device, plugins/attest's
// SimulatedSNP) verifies only with simulated true, against go-sev-guest's
// test-only roots, which are then the only roots trusted; a site's policy
// says "simulated": true only in tests and hearth poc.
//
// # Global flags
//
// go-sev-guest registers flags on the standard library's global flag set
// when its packages are linked (verify: -workaround_kds_productname;
// testing: -product, -product_name, -test_kds, -test_use_kds; client:
// -sev_guest_device_path, -self_throttle_duration, -self_throttle_burst,
// -default_vmpl). Hearth parses its own flag.FlagSets and never
// flag.CommandLine, so none of them can be set from hearth's command
// line, and each keeps its default (verify's workaround off: the VCEK's
// stepping is compared). A main that calls flag.Parse would expose them;
// do not.
//
// # TCB components
//
// A TCB is split with go-sev-guest's kds.DecomposeTCBVersion, the layout
// of Milan and Genoa (bootloader, TEE, SNP, microcode). Turin's TCB
// layout differs (it adds an FMC component) and go-sev-guest v0.15.0 does
// not decompose it: a policy naming Turin compares the bytes at Milan's
// positions.
package sevsnp
