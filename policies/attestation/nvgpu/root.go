package nvgpu

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"
)

// nvidiaRootPEM is the NVIDIA Device Identity CA that nvtrust pins:
// guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/certs/verifier_device_root.pem
// in github.com/NVIDIA/nvtrust (commit 028173093d43, Apache-2.0), the same
// bytes. ECDSA P-384, valid 2021-11-05 to 9999-12-31.
//
//go:embed nvidia_device_root.pem
var nvidiaRootPEM []byte

// simulatedRootPEM is the certificate of nvgputest's test root (its key is
// in nvgputest): trusted only when Verify is asked for simulated mode.
//
//go:embed simulated_root.pem
var simulatedRootPEM []byte

// NVIDIARoot returns the pinned NVIDIA Device Identity CA certificate.
func NVIDIARoot() *x509.Certificate { return mustParseRoot(nvidiaRootPEM) }

// SimulatedRoot returns the simulator's test root certificate, the only
// root Verify trusts in simulated mode.
func SimulatedRoot() *x509.Certificate { return mustParseRoot(simulatedRootPEM) }

// mustParseRoot parses an embedded root; a failure is a build defect.
func mustParseRoot(b []byte) *x509.Certificate {
	blk, _ := pem.Decode(b)
	if blk == nil {
		panic("nvgpu: embedded root is not PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		panic(fmt.Sprintf("nvgpu: embedded root: %v", err))
	}
	return c
}
