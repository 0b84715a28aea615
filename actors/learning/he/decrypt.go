package he

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// plausibleSlack is how far beyond the range of an honest sum a decrypted
// value may lie (the decryption noise is below 1e-4; a wrong decryption
// gives values of order 1e5 and more).
const plausibleSlack = 1e-3

// DecryptionShare is one party's share of the threshold decryption of one
// ciphertext for one active set. It names the key, the ciphertext (by its
// digest), the party and the active set; t of them with the same active set
// combine into the plaintext. It reveals nothing alone, so it may travel
// unsealed to whoever combines; but whoever holds t of them and the
// ciphertext learns the plaintext.
type DecryptionShare struct {
	params ParamsID
	key    KeyID
	ct     [sha256.Size]byte
	from   int
	active []int
	coeffs []uint64 // one polynomial per chunk of the ciphertext
}

// From returns the index of the party that made the share.
func (s *DecryptionShare) From() int { return s.from }

// Active returns the active set the share was made for.
func (s *DecryptionShare) Active() []int { return slices.Clone(s.active) }

// String prints what the share is for.
func (s *DecryptionShare) String() string {
	return fmt.Sprintf("he.DecryptionShare{key: %s, ciphertext: %s, from: %d, active: %v}", s.key, hex.EncodeToString(s.ct[:8]), s.from, s.active)
}

// MarshalBinary encodes the share: header, key id (16 bytes), ciphertext
// digest (32 bytes), from (2 bytes), the size of the active set (2 bytes)
// and its indices (2 bytes each), the number of chunks (4 bytes), then one
// polynomial per chunk.
// DecryptionShareSize is the encoded size (MarshalBinary) of a party's
// decryption share of the ciphertext of values values, for an active set
// of t parties.
func DecryptionShareSize(values, t int) int {
	return headerSize + len(KeyID{}) + sha256.Size + 4 + 2*t + 4 + chunks(values)*polyBytes
}

func (s *DecryptionShare) MarshalBinary() ([]byte, error) {
	nchunks := len(s.coeffs) / N
	if nchunks < 1 || len(s.coeffs) != nchunks*N || len(s.active) < 2 {
		return nil, fmt.Errorf("he: marshal: decryption share not made by this package: %w", ErrInvalid)
	}
	b := appendHeader(s.params, kindDecryptionShare, len(s.key)+len(s.ct)+4+2*len(s.active)+4+nchunks*polyBytes)
	b = append(b, s.key[:]...)
	b = append(b, s.ct[:]...)
	b = appendU16(appendU16(b, s.from), len(s.active))
	for _, a := range s.active {
		b = appendU16(b, a)
	}
	b = appendU32(b, nchunks)
	return appendPolys(b, s.coeffs), nil
}

// UnmarshalBinary decodes a share written by MarshalBinary, refusing an
// active set larger than MaxParties or not increasing, a sender outside it,
// and more chunks than MaxValues needs, before allocating; s is unchanged on
// error.
func (s *DecryptionShare) UnmarshalBinary(b []byte) error {
	d, id, err := newDecoder(b, kindDecryptionShare)
	if err != nil {
		return err
	}
	out := DecryptionShare{params: id}
	copy(out.key[:], d.take(len(out.key)))
	copy(out.ct[:], d.take(len(out.ct)))
	out.from = d.u16()
	size := d.u16()
	if d.err == nil && (size < 2 || size > MaxParties) {
		d.fail(fmt.Errorf("active set of %d parties, want 2 to %d: %w", size, MaxParties, ErrTooLarge))
	}
	if d.err == nil {
		out.active = make([]int, size)
		for i := range out.active {
			out.active[i] = d.u16()
		}
	}
	if d.err == nil {
		if err := checkActive(out.active, MaxParties, size); err != nil {
			d.fail(fmt.Errorf("%w: %w", ErrMalformed, err))
		} else if !slices.Contains(out.active, out.from) {
			d.fail(fmt.Errorf("party %d not in its active set: %w", out.from, ErrMalformed))
		}
	}
	nchunks := d.u32()
	if d.err == nil && (nchunks < 1 || nchunks > uint32(chunks(MaxValues))) {
		d.fail(fmt.Errorf("%d chunks, want 1 to %d: %w", nchunks, chunks(MaxValues), ErrTooLarge))
	}
	out.coeffs = d.polys(int(nchunks))
	if err := d.finish(kindDecryptionShare); err != nil {
		return err
	}
	*s = out
	return nil
}

// Combine decrypts ct, which must be under pk, from the decryption shares
// of exactly the t parties of one active set, and returns its Len values.
// Anyone may combine (the server's aggregator, for instance); the shares
// need no secret.
//
// It refuses fewer than t shares, shares of another key or ciphertext,
// shares of different active sets or of parties outside theirs, and a party
// twice. It then checks that the result is plausible (every value within
// the range a sum of Summands honest updates can have, padding slots near
// zero) and refuses it otherwise: a wrong share decrypts to garbage, which
// this catches, though it is no integrity check against a party that lies
// on purpose by a small amount.
func Combine(params Params, pk *PublicKey, ct *Ciphertext, shares []*DecryptionShare) ([]float64, error) {
	if err := params.check(); err != nil {
		return nil, err
	}
	if pk == nil || len(pk.value) != N {
		return nil, fmt.Errorf("he: combine: public key not made by this package: %w", ErrInvalid)
	}
	if err := ct.check(); err != nil {
		return nil, fmt.Errorf("he: combine: %w", err)
	}
	if ct.key != pk.id {
		return nil, fmt.Errorf("he: combine: ciphertext under key %s, not %s: %w", ct.key, pk.id, ErrMismatch)
	}
	if len(shares) < pk.t {
		return nil, fmt.Errorf("he: combine: %d decryption shares, the threshold is %d: %w", len(shares), pk.t, ErrTooFewShares)
	}
	if len(shares) > pk.t {
		return nil, fmt.Errorf("he: combine: %d decryption shares, want the threshold, %d: %w", len(shares), pk.t, ErrActiveSet)
	}
	digest := ct.Digest()
	for _, s := range shares {
		switch {
		case s == nil || len(s.coeffs) != N*chunks(ct.length):
			return nil, fmt.Errorf("he: combine: share not made for this ciphertext: %w", ErrMismatch)
		case s.params != params.id:
			return nil, fmt.Errorf("he: combine: share of parameter set %d: %w", s.params, ErrParams)
		case s.key != pk.id || s.ct != digest:
			return nil, fmt.Errorf("he: combine: share of party %d made for another key or ciphertext: %w", s.from, ErrMismatch)
		case !slices.Equal(s.active, shares[0].active):
			return nil, fmt.Errorf("he: combine: shares of active sets %v and %v: %w", shares[0].active, s.active, ErrActiveSet)
		}
	}
	if err := checkActive(shares[0].active, pk.n, pk.t); err != nil {
		return nil, fmt.Errorf("he: combine: %w", err)
	}
	seen := make(map[int]bool, len(shares))
	for _, s := range shares {
		if seen[s.from] {
			return nil, fmt.Errorf("he: combine: party %d twice: %w", s.from, ErrDuplicate)
		}
		if !slices.Contains(s.active, s.from) {
			return nil, fmt.Errorf("he: combine: party %d outside its active set: %w", s.from, ErrActiveSet)
		}
		seen[s.from] = true
	}
	values, err := combine(params, ct, shares)
	if err != nil {
		return nil, fmt.Errorf("he: combine: %w", err)
	}
	if err := plausible(values, ct); err != nil {
		return nil, fmt.Errorf("he: combine: %w", err)
	}
	return values[:ct.length:ct.length], nil
}

// combine adds the shares to c0 chunk by chunk and decodes, with no check:
// it returns every slot, padding included.
func combine(params Params, ct *Ciphertext, shares []*DecryptionShare) ([]float64, error) {
	enc := ckks.NewEncoder(params.ckks)
	values := make([]float64, chunks(ct.length)*Slots)
	acc := make([]uint64, N)
	meta := params.meta
	poly := ring.Poly{Coeffs: [][]uint64{acc}}
	pt := &rlwe.Plaintext{Element: rlwe.Element[ring.Poly]{Value: []ring.Poly{poly}, MetaData: &meta}, Value: poly}
	for j := range chunks(ct.length) {
		copy(acc, ct.coeffs[2*j*N:(2*j+1)*N])
		for _, s := range shares {
			addMod(acc, s.coeffs[j*N:(j+1)*N])
		}
		*pt.MetaData = params.meta
		if err := enc.Decode(pt, values[j*Slots:(j+1)*Slots]); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
	}
	return values, nil
}

// plausible checks decrypted slots against the range of an honest sum.
func plausible(values []float64, ct *Ciphertext) error {
	limit := float64(ct.summands)*MaxAbsValue + plausibleSlack
	for i, v := range values {
		bound := limit
		if i >= ct.length {
			bound = plausibleSlack
		}
		if !(math.Abs(v) <= bound) {
			return fmt.Errorf("slot %d decrypts to %.3g, outside +-%g: %w", i, v, bound, ErrImplausible)
		}
	}
	return nil
}
