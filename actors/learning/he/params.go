package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// The one parameter set this package speaks (ParamsV1). Changing any of
// these changes what crosses the wire: a new set takes a new ParamsID.
const (
	// ParamsV1 is the identifier of the parameter set below, written into
	// every wire encoding.
	ParamsV1 ParamsID = 1

	// LogN is log2 of the ring degree N = 4096.
	LogN = 12
	// N is the ring degree: each polynomial has N coefficients.
	N = 1 << LogN
	// Slots is the number of real values one ciphertext carries (N/2).
	Slots = N / 2
	// LogQ is the bit size of the single ciphertext modulus Q; it is also
	// the number of bits each coefficient takes on the wire.
	LogQ = 60
	// Q is the single ciphertext modulus, the prime 2^60 - 2^14 + 1,
	// congruent to 1 mod 2N as the NTT needs.
	Q uint64 = 0x0fffffffffffc001
	// LogScale is log2 of the CKKS scale: a value v is encoded as round(v * 2^45).
	LogScale = 45
	// FloodSigma is the standard deviation of the noise each party adds to
	// its decryption share (noise flooding). It hides the party's secret
	// share and the ciphertext's own noise in the decrypted result, and it
	// must stay far below the scale: the decrypted sum carries noise of
	// about sqrt(t) * FloodSigma * sqrt(N/2) / 2^LogScale per value.
	FloodSigma = 1 << 20

	// MaxParties is the largest number of sites a key may be shared among.
	MaxParties = 64
	// MaxSummands is the most encrypted updates one ciphertext may be the
	// sum of.
	MaxSummands = 64
	// MaxAbsValue bounds every value a site encrypts (weight times update
	// value): Encrypt refuses anything larger in magnitude, so a sum of
	// MaxSummands updates stays below MaxSummands*MaxAbsValue = 640, far from
	// the modulus (Q/2 / 2^LogScale = 16384 in the worst case of the
	// encoding, where every slot adds up in one coefficient).
	MaxAbsValue = 10
	// MaxValues is the most values one Ciphertext may carry (2^24, about
	// 470 MiB of ciphertext); larger models are encrypted in several
	// vectors, as they are streamed in chunks anyway.
	MaxValues = 1 << 24
	// SeedSize is the size of the job seed from which the common reference
	// polynomial of key generation is derived.
	SeedSize = 32
)

// ParamsID names a parameter set on the wire.
type ParamsID byte

// Params is the CKKS parameter set for sum-only aggregation of float32
// updates: one modulus level (no multiplication is ever evaluated, so no
// rescaling and no relinearization key are needed), N = 2^12, Q a 60-bit
// prime, uniform ternary secrets, Gaussian errors of sigma 3.2, scale 2^45.
//
// Security: the HomomorphicEncryption.org standard (Albrecht et al. 2018,
// table for uniform ternary secrets, classical attacks) allows log Q <= 109
// for 128-bit security at N = 4096 and log Q <= 75 for 192-bit; log Q = 60
// is inside both (and there is no special modulus P: the whole modulus is
// 60 bits). The collective secret is a sum of n such secrets, so it is no
// smaller.
//
// Accuracy: with sums of up to MaxSummands updates of values |v| <=
// MaxAbsValue and t <= MaxParties decrypting parties, the decrypted sum is
// within 1e-4 of the exact sum: the flooding noise is about
// sqrt(t)*1.35e-6 per value (1.1e-5 at t = 64, so 1e-4 is nine standard
// deviations), the encoding error and the encryption noise are smaller
// still.
//
// Size: a ciphertext is two polynomials of N coefficients of LogQ bits and
// carries Slots values: 30 bytes per value, 7.5 times the float32 bytes
// (plus a small header, and padding in the last ciphertext of a vector).
//
// A Params is immutable and safe to share; it is a value from NewParams.
type Params struct {
	id   ParamsID
	ckks ckks.Parameters
	meta rlwe.MetaData // of a fresh ciphertext at this set's scale
}

// NewParams returns the parameter set ParamsV1.
func NewParams() (Params, error) {
	p, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{
		LogN:            LogN,
		Q:               []uint64{Q},
		Xs:              ring.Ternary{P: 2.0 / 3.0},
		Xe:              rlwe.DefaultXe,
		LogDefaultScale: LogScale,
	})
	if err != nil {
		return Params{}, fmt.Errorf("he: build parameters: %w", err)
	}
	pt := ckks.NewPlaintext(p, p.MaxLevel())
	return Params{id: ParamsV1, ckks: p, meta: *pt.MetaData}, nil
}

// ID returns the parameter set's identifier.
func (p Params) ID() ParamsID { return p.id }

// CiphertextBytesPerValue returns the wire bytes of ciphertext per value
// carried, headers aside: 2 * N * LogQ / 8 / Slots.
func CiphertextBytesPerValue() float64 {
	return float64(2*N*LogQ/8) / Slots
}

// Expansion returns the ciphertext bytes per float32 byte of update,
// headers and the last ciphertext's padding aside (7.5).
func Expansion() float64 {
	return CiphertextBytesPerValue() / 4
}

// check refuses a zero Params (one not made by NewParams).
func (p Params) check() error {
	if p.id != ParamsV1 {
		return fmt.Errorf("he: parameters not made by NewParams: %w", ErrParams)
	}
	return nil
}
