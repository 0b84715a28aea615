// Package nvgpu verifies NVIDIA GPU confidential-computing evidence
// offline, in pure Go, against a site's own reference values: the
// verifier's half of issue 12's attested aggregation hosts. A site hands
// the host a 32-byte nonce (bound to the host's sealing key by the
// integrator), the host collects Evidence with NVML (plugins/attest), and
// Verify decides from values, refusing with the verifiers' shared
// *tee.RefusedError (kind nvidia-gpu), one Reason per check. Collection (go-nvml, cgo) lives elsewhere; this
// package imports nothing under bus/ or plugins/.
//
// # What is checked
//
// Verify checks, in order: size bounds before anything is parsed
// (MaxReport, MaxCertChain, MaxDevices); the host's CC state as NVML
// reports it (cc_mode, not_ready, devtools; these are the host's word,
// not signed by the GPU); the GPU count (gpu_count; one GPU's evidence
// given twice is refused); then per GPU: the
// certificate chain to the pinned NVIDIA Device Identity CA at the
// verification time (chain; self-signed certificates the evidence
// presents are dropped, never trusted), the SPDM form of the report
// (format), its ECDSA P-384 signature by the leaf key (signature), the
// request's nonce (nonce), the measurements (measurement) and the signed
// driver version (driver). With simulated=true only nvgputest's test root
// anchors chains, and NVIDIA's does not.
//
// Not checked (offline, no NVIDIA services): certificate revocation
// (nvtrust asks NVIDIA's OCSP service), the RIM files' own signatures
// (the site's operator takes the values from RIMs they trust), the
// leaf's FWID extension against the report's FWID field, and NVSwitch or
// Blackwell CEC reports.
//
// # Evidence formats (confirmed against NVIDIA's nvtrust)
//
// Paths are in github.com/NVIDIA/nvtrust (commit 028173093d43), under
// guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/.
//
// nvmlDeviceGetConfComputeGpuAttestationReport fills
// nvmlConfComputeGpuAttestationReport_t: the caller's 32-byte nonce in,
// attestationReport[0x2000] and attestationReportSize out. The report is
// the SPDM GET_MEASUREMENTS request followed by the MEASUREMENTS response
// (attestation/__init__.py, AttestationReport: the first
// LENGTH_OF_SPDM_GET_MEASUREMENT_REQUEST_MESSAGE = 37 bytes are the
// request). Multi-byte integers are little-endian
// (utils/__init__.py, read_field_as_little_endian).
//
//	request  (attestation/spdm_msrt_req_msg.py)
//	  0  SPDMVersion 1 (0x11)   1  RequestResponseCode 1 (0xE0)
//	  2  Param1 1 (bit 0: sign) 3  Param2 1 (0xFF: all blocks)
//	  4  Nonce 32               36 SlotIDParam 1
//	response (attestation/spdm_msrt_resp_msg.py, SpdmMeasurementResponseMessage)
//	  0  SPDMVersion 1   1 RequestResponseCode 1 (0x60)   2 Param1 1   3 Param2 1
//	  4  NumberOfBlocks 1          5 MeasurementRecordLength 3 (L1)
//	  8  MeasurementRecord L1      8+L1  Nonce 32 (the responder's)
//	  40+L1 OpaqueLength 2 (L2)    42+L1 OpaqueData L2
//	  42+L1+L2 Signature 96 (config.py, HopperSettings.signature_length)
//	measurement block (MeasurementRecord, DmtfMeasurement)
//	  Index 1, MeasurementSpecification 1 (must be 1: DMTF), MeasurementSize 2,
//	  then DMTFSpecMeasurementValueType 1, DMTFSpecMeasurementValueSize 2, value
//	opaque data (OpaqueData): fields of DataType 2, DataSize 2, Data;
//	  3 DRIVER_VERSION (NUL-terminated), 6 VBIOS_VERSION (formatted as
//	  utils.format_vbios_version does), ... (OPAQUE_DATA_TYPES lists them)
//
// The signature is ECDSA P-384, r ‖ s, over SHA-384 of request ‖ response
// without the signature (AttestationReport.concatenate and
// verify_signature; config.py HopperSettings.HashFunction = sha384). The
// parser here is stricter than nvtrust's: the record and the opaque data
// must be consumed exactly and the signature must end the report.
// NVIDIA's own sample H100 report (samples/hopperAttestationReport.txt)
// parses so, and verifies with its chain (samples/hopperCertChain.txt)
// to the pinned root: see TestRealHopperSample.
//
// nvmlDeviceGetConfComputeGpuCertificate fills
// nvmlConfComputeGpuCertificate_t; its attestationCertChain[0x1400]
// (attestationCertChainSize bytes) is PEM, the device's attestation leaf
// first, the root last; nvtrust drops that last certificate and appends
// its pinned certs/verifier_device_root.pem (nvml/gpu_cert_chains.py,
// GpuCertificateChains), at most MAX_CERT_CHAIN_LENGTH = 5 certificates.
// That root, "NVIDIA Device Identity CA" (ECDSA P-384, to 9999), is
// embedded here byte for byte (nvidia_device_root.pem; NVIDIARoot).
//
// nvmlSystemGetConfComputeState gives environment (0 unavailable, 1 sim,
// 2 prod), ccFeature (1 enabled) and devToolsMode (1 on: CC with
// debugging, not confidential); nvmlSystemGetConfComputeGpusReadyState
// gives 1 (NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE) once the GPUs accept
// work. nvtrust's cc_admin.py sets it (NvmlHandler.set_gpu_ready_state
// in nvml/__init__.py) after the host's own attestation succeeds: until
// then the GPUs refuse CUDA work.
//
// # Reference format
//
//	{"measurements": {
//	   "1": ["c3f65ef79a19...4d82db6"],
//	   "2": ["c23e53982325...8381a50a", "<another accepted value>"]},
//	 "minimum_driver": "550.54",
//	 "allow_devtools": false,
//	 "min_gpus": 1}
//
// measurements (required, non-empty) maps a RIM index to its accepted
// values: copy them from NVIDIA's reference integrity manifests (the
// driver RIM and the VBIOS RIM for your GPUs' VBIOS), one key per
// <Resource type="Measurement" active="True"> element, the key its index
// attribute (decimal, 0 to 253), the values its Hash0 ... HashN-1
// attributes (hex, alternatives = N). RIM index i is SPDM block i+1
// (nvtrust's get_measurements lists block i+1 at position i); Reference
// stores SPDM indices. Every listed index must be in every GPU's report
// with one of its values; indices not listed are not checked, as nvtrust
// checks only active ones. For several GPU models or VBIOS versions, list
// each one's values as alternatives.
//
// minimum_driver (optional) is the lowest driver version accepted, from
// the signed report, compared numerically by component; the report's
// version must also equal NVML's when the host gave one. allow_devtools
// (default false) accepts devtools mode. min_gpus (default 1, at most
// MaxDevices) is the fewest GPUs accepted. Unknown keys are refused.
package nvgpu
