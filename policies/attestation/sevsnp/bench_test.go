package sevsnp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"testing"
	"time"

	"github.com/hearthfl/hearth/policies/attestation/sevsnp"
)

// BenchmarkVerify is one whole verification of good simulated evidence:
// parsing, the VCEK's chain (RSA-PSS), the report's ECDSA P-384 signature,
// the checks and validate's. The baselines below, in the same run, are
// its two cheapest and its one fixed cryptographic part.
func BenchmarkVerify(b *testing.B) {
	rd := reportData(hostKey, nonce)
	report, certs := collect(b, claims(), rd)
	ref := reference()
	now := time.Now()
	if _, err := sevsnp.Verify(report, certs, ref, rd, true, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sevsnp.Verify(report, certs, ref, rd, true, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA512ReportData is the baseline of the binding alone: the
// REPORT_DATA a site computes for each nonce.
func BenchmarkSHA512ReportData(b *testing.B) {
	key := make([]byte, 97) // an uncompressed P-384 public key
	for b.Loop() {
		h := sha512.New()
		h.Write(key)
		h.Write(nonce)
		_ = h.Sum(nil)
	}
}

// BenchmarkECDSAP384Verify is the baseline of the report's signature
// check alone (over a SHA-384 digest).
func BenchmarkECDSAP384Verify(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := make([]byte, 48)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !ecdsa.VerifyASN1(&key.PublicKey, digest, sig) {
			b.Fatal("does not verify")
		}
	}
}
