package nvgpu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"
)

// Verified is what Verify established about accepted evidence.
type Verified struct {
	// Environment and DevToolsOn are the host-reported CC state.
	Environment Environment
	DevToolsOn  bool
	// Devices are the verified GPUs, in evidence order.
	Devices []VerifiedDevice
}

// VerifiedDevice is one GPU whose report verified.
type VerifiedDevice struct {
	// UUID and Name are NVML's (host-reported, bounded).
	UUID, Name string
	// DriverVersion and VBIOSVersion come from the signed report.
	DriverVersion, VBIOSVersion string
	// Leaf is the device's attestation certificate.
	Leaf *x509.Certificate
	// Report is the parsed, verified report.
	Report *Report
}

var (
	nvidiaPool    = sync.OnceValue(func() *x509.CertPool { return poolOf(NVIDIARoot()) })
	simulatedPool = sync.OnceValue(func() *x509.CertPool { return poolOf(SimulatedRoot()) })
)

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// Verify checks NVIDIA GPU evidence against a site's reference for the
// verifier's nonce, in this order, and refuses with a *RefusedError at the
// first check that fails: the size bounds (before any parsing); the CC
// feature (cc_mode), the ready state (not_ready) and developer-tools mode
// (devtools); the GPU count (gpu_count; a GPU whose attestation key
// appears twice is refused as evidence); then per GPU the chain to the
// pinned NVIDIA root at now (chain), the report's form (format), its
// signature by the leaf key (signature), its nonce (nonce), its
// measurements (measurement) and its driver version (driver).
//
// simulated=true trusts the simulator's test root (nvgputest) instead of
// NVIDIA's, and nothing else; no root that the evidence presents is ever
// trusted. nonce is the one the verifier handed the host (the integrator
// derives it from the host's sealing key and the site's own nonce).
func Verify(ev *Evidence, ref *Reference, nonce [NonceLen]byte, simulated bool, now time.Time) (*Verified, error) {
	if ev == nil || ref == nil {
		return nil, refuse(ReasonEvidence, "no evidence or no reference")
	}
	if err := checkBounds(ev); err != nil {
		return nil, err
	}
	if !ev.CCFeatureOn {
		return nil, refuse(ReasonCCMode, "confidential computing is off")
	}
	if !ev.Ready {
		return nil, refuse(ReasonNotReady, "the GPUs do not accept work (CC ready state not set)")
	}
	if ev.DevToolsOn && !ref.AllowDevTools {
		return nil, refuse(ReasonDevTools, "CC developer-tools mode is on")
	}
	if len(ev.Devices) < max(ref.MinGPUs, 1) {
		return nil, refuse(ReasonGPUCount, "%d GPUs, the reference wants at least %d", len(ev.Devices), max(ref.MinGPUs, 1))
	}
	if len(ref.Measurements) == 0 {
		return nil, refuse(ReasonMeasurement, "the reference lists no measurements")
	}
	roots := nvidiaPool()
	if simulated {
		roots = simulatedPool()
	}
	out := &Verified{Environment: ev.Environment, DevToolsOn: ev.DevToolsOn}
	keys := make(map[string]int, len(ev.Devices))
	for i := range ev.Devices {
		vd, err := verifyDevice(&ev.Devices[i], ev.DriverVersion, ref, nonce, roots, now)
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				re.Detail = fmt.Sprintf("GPU %d (%s): %s", i, clip(ev.Devices[i].UUID), re.Detail)
			}
			return nil, err
		}
		// One GPU's evidence given twice must not count as two GPUs.
		k := string(vd.Leaf.RawSubjectPublicKeyInfo)
		if j, dup := keys[k]; dup {
			return nil, refuse(ReasonEvidence, "GPUs %d and %d have the same attestation key", j, i)
		}
		keys[k] = i
		out.Devices = append(out.Devices, *vd)
	}
	return out, nil
}

// checkBounds refuses oversize evidence before anything is parsed.
func checkBounds(ev *Evidence) error {
	if len(ev.Devices) > MaxDevices {
		return refuse(ReasonSize, "%d devices, at most %d", len(ev.Devices), MaxDevices)
	}
	if len(ev.DriverVersion) > maxStateString || len(ev.Environment) > maxStateString {
		return refuse(ReasonSize, "a state string is longer than %d bytes", maxStateString)
	}
	for i, d := range ev.Devices {
		switch {
		case len(d.Report) > MaxReport:
			return refuse(ReasonSize, "GPU %d: report of %d bytes, at most %d", i, len(d.Report), MaxReport)
		case len(d.CertChain) > MaxCertChain:
			return refuse(ReasonSize, "GPU %d: certificate chain of %d bytes, at most %d", i, len(d.CertChain), MaxCertChain)
		case len(d.UUID) > maxStateString || len(d.Name) > maxStateString:
			return refuse(ReasonSize, "GPU %d: UUID or name longer than %d bytes", i, maxStateString)
		case len(d.Report) == 0 || len(d.CertChain) == 0:
			return refuse(ReasonEvidence, "GPU %d: no report or no certificate chain", i)
		}
	}
	return nil
}

func verifyDevice(d *Device, nvmlDriver string, ref *Reference, nonce [NonceLen]byte, roots *x509.CertPool, now time.Time) (*VerifiedDevice, error) {
	leaf, err := verifyChain(d.CertChain, roots, now)
	if err != nil {
		return nil, err
	}
	rep, err := ParseReport(d.Report)
	if err != nil {
		return nil, refuse(ReasonFormat, "attestation report: %v", err)
	}
	if err := verifySignature(leaf, rep); err != nil {
		return nil, err
	}
	if rep.Nonce != nonce {
		return nil, refuse(ReasonNonce, "the report answers nonce %s, not the verifier's", hex.EncodeToString(rep.Nonce[:8])+"...")
	}
	if err := checkMeasurements(rep, ref); err != nil {
		return nil, err
	}
	drv := rep.DriverVersion()
	if err := checkDriver(drv, nvmlDriver, ref); err != nil {
		return nil, err
	}
	return &VerifiedDevice{
		UUID: clip(d.UUID), Name: clip(d.Name),
		DriverVersion: drv, VBIOSVersion: rep.VBIOSVersion(),
		Leaf: leaf, Report: rep,
	}, nil
}

// verifyChain parses the PEM chain (leaf first) and verifies the leaf to
// roots at now. Certificates issued by their own subject (the root NVML
// appends) are dropped, as nvtrust drops the chain's last certificate:
// only roots anchor the chain. The leaf key must be ECDSA P-384.
func verifyChain(chain []byte, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := chain
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, refuse(ReasonChain, "certificate %d is not a PEM CERTIFICATE", len(certs))
		}
		if len(certs) == MaxChainCerts {
			return nil, refuse(ReasonChain, "more than %d certificates", MaxChainCerts)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, refuse(ReasonChain, "certificate %d: %v", len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, refuse(ReasonChain, "no certificates")
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		if bytes.Equal(c.RawSubject, c.RawIssuer) {
			continue // a root, or posing as one: never an anchor, not needed as a link
		}
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, refuse(ReasonChain, "%v", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, refuse(ReasonChain, "the leaf key is not ECDSA P-384")
	}
	return leaf, nil
}

// verifySignature checks the report's raw r ‖ s signature over SHA-384 of
// request ‖ response-without-signature with the leaf's key.
func verifySignature(leaf *x509.Certificate, rep *Report) error {
	pub := leaf.PublicKey.(*ecdsa.PublicKey)
	h := sha512.Sum384(rep.Signed)
	half := SignatureLen / 2
	r := new(big.Int).SetBytes(rep.Signature[:half])
	s := new(big.Int).SetBytes(rep.Signature[half:])
	if !ecdsa.Verify(pub, h[:], r, s) {
		return refuse(ReasonSignature, "the report's signature does not verify with the attestation certificate's key")
	}
	return nil
}

// checkMeasurements requires every referenced index in the report with
// one of its accepted values.
func checkMeasurements(rep *Report, ref *Reference) error {
	idxs := make([]int, 0, len(ref.Measurements))
	for idx := range ref.Measurements {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	for _, idx := range idxs {
		accepted := ref.Measurements[idx]
		got, ok := rep.Measurement(idx)
		if !ok {
			return refuse(ReasonMeasurement, "RIM index %d (SPDM block %d) is not in the report", idx-1, idx)
		}
		match := false
		for _, a := range accepted {
			if bytes.Equal(a, got) {
				match = true
				break
			}
		}
		if !match {
			return refuse(ReasonMeasurement, "RIM index %d (SPDM block %d): %s... matches no reference value", idx-1, idx, hex.EncodeToString(got[:min(len(got), 8)]))
		}
	}
	return nil
}

// checkDriver requires the signed driver version, equal to NVML's when
// the host reported one, and not below the reference's minimum.
func checkDriver(signed, nvml string, ref *Reference) error {
	if signed == "" {
		return refuse(ReasonDriver, "the report carries no driver version")
	}
	if nvml != "" && nvml != signed {
		return refuse(ReasonDriver, "NVML reports driver %q, the GPU's report %q", clip(nvml), clip(signed))
	}
	if ref.MinimumDriver == nil {
		return nil
	}
	v, err := parseVersion(signed)
	if err != nil {
		return refuse(ReasonDriver, "driver version: %v", err)
	}
	if versionLess(v, ref.MinimumDriver) {
		return refuse(ReasonDriver, "driver %s is below the minimum %s", clip(signed), versionString(ref.MinimumDriver))
	}
	return nil
}
