package attestation

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
)

// NonceSize is the size of a site's attestation nonce.
const NonceSize = 32

// gpuNonceLabel separates the GPU nonce's hash from any other use of the
// same key and nonce.
const gpuNonceLabel = "hearth.gpu-nonce.v1"

// ReportData is the REPORT_DATA a site expects in a host's SEV-SNP report:
// SHA-512(key ‖ nonce), binding the host's sealing public key (its bytes
// as the host presents them) to the site's fresh nonce, so that a report
// made for another key or an earlier nonce does not verify. nonce must be
// NonceSize bytes.
func ReportData(key, nonce []byte) ([64]byte, error) {
	if len(nonce) != NonceSize {
		return [64]byte{}, fmt.Errorf("attestation: nonce is %d bytes, want %d", len(nonce), NonceSize)
	}
	h := sha512.New()
	h.Write(key)
	h.Write(nonce)
	var out [64]byte
	h.Sum(out[:0])
	return out, nil
}

// GPUNonce is the 32-byte nonce a site expects in a host's GPU report:
// SHA-256("hearth.gpu-nonce.v1" ‖ 0x00 ‖ key ‖ nonce), the same binding as
// ReportData under its own label. nonce must be NonceSize bytes.
func GPUNonce(key, nonce []byte) ([32]byte, error) {
	if len(nonce) != NonceSize {
		return [32]byte{}, fmt.Errorf("attestation: nonce is %d bytes, want %d", len(nonce), NonceSize)
	}
	h := sha256.New()
	h.Write([]byte(gpuNonceLabel))
	h.Write([]byte{0})
	h.Write(key)
	h.Write(nonce)
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}
