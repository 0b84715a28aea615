package nvgpu

// Bounds on evidence, checked before anything in it is parsed.
const (
	// MaxReport bounds one device's report: NVML's attestationReport
	// buffer is NVML_CC_GPU_ATTESTATION_REPORT_SIZE (0x2000) bytes.
	MaxReport = 8 << 10
	// MaxCertChain bounds one device's certificate chain (NVML's
	// attestationCertChain buffer is 0x1400 bytes).
	MaxCertChain = 16 << 10
	// MaxDevices bounds the number of GPUs in one piece of evidence.
	MaxDevices = 16
	// MaxChainCerts bounds the certificates in one chain (nvtrust's
	// HopperSettings.MAX_CERT_CHAIN_LENGTH).
	MaxChainCerts = 5
	// maxStateString bounds the host-reported strings (environment,
	// driver version, UUID, name).
	maxStateString = 256
)

// Environment is NVML's CC environment (nvmlSystemGetConfComputeState's
// environment field).
type Environment string

// The environments NVML reports.
const (
	EnvironmentUnavailable Environment = "unavailable" // NVML_CC_SYSTEM_ENVIRONMENT_UNAVAILABLE
	EnvironmentSimulated   Environment = "sim"         // NVML_CC_SYSTEM_ENVIRONMENT_SIM
	EnvironmentProduction  Environment = "prod"        // NVML_CC_SYSTEM_ENVIRONMENT_PROD
)

// Evidence is what an aggregation host collects from its NVIDIA GPUs for a
// verifier's nonce: the system's confidential-computing state as NVML
// reports it, and per GPU the signed attestation report and the
// attestation certificate chain. The state fields are the host's word
// (NVML, not signed by the GPU); the reports are signed by each GPU's
// device key, which the chain ties to NVIDIA's root.
type Evidence struct {
	// CCFeatureOn: nvmlSystemGetConfComputeState's ccFeature is
	// NVML_CC_SYSTEM_FEATURE_ENABLED.
	CCFeatureOn bool
	// DevToolsOn: devToolsMode is NVML_CC_SYSTEM_DEVTOOLS_MODE_ON (CC
	// with debugging tools: not confidential).
	DevToolsOn bool
	// Ready: nvmlSystemGetConfComputeGpusReadyState is
	// NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE (the GPUs accept work).
	Ready bool
	// Environment is the CC environment.
	Environment Environment
	// DriverVersion is nvmlSystemGetDriverVersion's answer.
	DriverVersion string
	// Devices are the GPUs, at most MaxDevices.
	Devices []Device
}

// Device is one GPU's evidence.
type Device struct {
	// UUID and Name are NVML's (nvmlDeviceGetUUID, nvmlDeviceGetName).
	UUID, Name string
	// Report is nvmlDeviceGetConfComputeGpuAttestationReport's
	// attestationReport, its first attestationReportSize bytes: the SPDM
	// GET_MEASUREMENTS request ‖ response.
	Report []byte
	// CertChain is nvmlDeviceGetConfComputeGpuCertificate's
	// attestationCertChain (attestationCertChainSize bytes): PEM
	// certificates, the device's attestation leaf first, the root last.
	CertChain []byte
}
