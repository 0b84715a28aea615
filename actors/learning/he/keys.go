package he

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
)

// SetupID names one key generation: a parameter set, a job seed, n and t.
// Every share of the setup carries it or the fields it is derived from, so
// shares of two jobs (or of two attempts of one job) never mix.
type SetupID [16]byte

// String returns the identifier in hex.
func (s SetupID) String() string { return hex.EncodeToString(s[:]) }

// KeyID names a collective public key: the first 16 bytes of the SHA-256
// of its encoding. Ciphertexts and decryption shares carry the KeyID of the
// key they belong to.
type KeyID [16]byte

// String returns the identifier in hex.
func (k KeyID) String() string { return hex.EncodeToString(k[:]) }

// SetupOf is the SetupID of a setup of params among n parties with
// threshold t from seed: what every party's Setup is, for whoever checks
// their statements without being one (the aggregator).
func SetupOf(params Params, seed [SeedSize]byte, n, t int) SetupID {
	return newSetupID(params.id, seed, n, t)
}

// newSetupID derives the SetupID of (params, seed, n, t).
func newSetupID(id ParamsID, seed [SeedSize]byte, n, t int) SetupID {
	h := sha256.New()
	h.Write([]byte("hearth/he/setup/v1\x00"))
	h.Write([]byte{byte(id)})
	h.Write(seed[:])
	h.Write(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(n)), uint16(t)))
	var s SetupID
	copy(s[:], h.Sum(nil))
	return s
}

// crsKey derives the key of the common reference string from the job seed.
func crsKey(seed [SeedSize]byte) []byte {
	h := sha256.New()
	h.Write([]byte("hearth/he/crs/v1\x00"))
	h.Write(seed[:])
	return h.Sum(nil)
}

// checkSetup validates the public setup values shared by every party.
func checkSetup(seed [SeedSize]byte, n, t int) error {
	switch {
	case n < 2 || n > MaxParties:
		return fmt.Errorf("he: %d parties, want 2 to %d: %w", n, MaxParties, ErrInvalid)
	case t < 2 || t > n:
		// t = 1 would let any one site decrypt every other site's update.
		return fmt.Errorf("he: threshold %d, want 2 to %d (the number of parties): %w", t, n, ErrInvalid)
	case seed == [SeedSize]byte{}:
		return fmt.Errorf("he: all-zero job seed: %w", ErrInvalid)
	}
	return nil
}

// PublicKeyShare is one party's contribution to the collective public key
// (CKG): b_i = -s_i*a + e_i, where a is the common reference polynomial
// derived from the job seed and s_i the party's secret. It reveals nothing
// of s_i (an RLWE sample) and may be sent in the clear to whoever
// aggregates.
type PublicKeyShare struct {
	params ParamsID
	seed   [SeedSize]byte
	n, t   int
	from   int
	value  []uint64
}

// From returns the index of the party that made the share.
func (s *PublicKeyShare) From() int { return s.from }

// equal reports whether o is the same share as s.
func (s *PublicKeyShare) equal(o *PublicKeyShare) bool {
	return o != nil && s.params == o.params && s.seed == o.seed && s.n == o.n && s.t == o.t &&
		s.from == o.from && slices.Equal(s.value, o.value)
}

// check refuses a share not made by a Party or UnmarshalBinary.
func (s *PublicKeyShare) check() error {
	if s == nil || checkSetup(s.seed, s.n, s.t) != nil || s.from < 0 || s.from >= s.n || len(s.value) != N {
		return fmt.Errorf("public key share not made by a party: %w", ErrInvalid)
	}
	return nil
}

// Setup returns the setup the share belongs to.
func (s *PublicKeyShare) Setup() SetupID { return newSetupID(s.params, s.seed, s.n, s.t) }

// MarshalBinary encodes the share: header, seed (32 bytes), n, t, from
// (2 bytes each), one polynomial.
func (s *PublicKeyShare) MarshalBinary() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("he: marshal: %w", err)
	}
	b := appendHeader(s.params, kindPublicKeyShare, SeedSize+6+polyBytes)
	b = append(b, s.seed[:]...)
	b = appendU16(appendU16(appendU16(b, s.n), s.t), s.from)
	return appendPolys(b, s.value), nil
}

// UnmarshalBinary decodes a share written by MarshalBinary, refusing
// anything malformed or out of range; s is unchanged on error.
func (s *PublicKeyShare) UnmarshalBinary(b []byte) error {
	d, id, err := newDecoder(b, kindPublicKeyShare)
	if err != nil {
		return err
	}
	var out PublicKeyShare
	out.params = id
	copy(out.seed[:], d.take(SeedSize))
	out.n, out.t, out.from = d.u16(), d.u16(), d.u16()
	if d.err == nil {
		if err := checkSetup(out.seed, out.n, out.t); err != nil {
			d.fail(fmt.Errorf("%w: %w", ErrMalformed, err))
		} else if out.from >= out.n {
			d.fail(fmt.Errorf("party %d of %d: %w", out.from, out.n, ErrMalformed))
		}
	}
	out.value = d.polys(1)
	if err := d.finish(kindPublicKeyShare); err != nil {
		return err
	}
	*s = out
	return nil
}

// PublicKey is the collective public key (pk0, a): pk0 is the sum of every
// party's PublicKeyShare and a is derived again from the seed it carries.
// It is public; anyone may encrypt with it, and nobody holds its secret key,
// which exists only as the sum of the parties' secrets. A PublicKey is
// immutable.
type PublicKey struct {
	params ParamsID
	seed   [SeedSize]byte
	n, t   int
	value  []uint64
	id     KeyID
}

// ID returns the key's identifier.
func (pk *PublicKey) ID() KeyID { return pk.id }

// Parties returns n, the number of parties the secret is shared among.
func (pk *PublicKey) Parties() int { return pk.n }

// Threshold returns t, the number of parties needed to decrypt.
func (pk *PublicKey) Threshold() int { return pk.t }

// Setup returns the setup the key was generated in.
func (pk *PublicKey) Setup() SetupID { return newSetupID(pk.params, pk.seed, pk.n, pk.t) }

// AggregatePublicKey sums the public key shares of all n parties of one
// setup into the collective public key (anyone may do it: there is no
// secret in the shares). It refuses shares of different setups, a party
// twice, and fewer than n shares: the key is the sum of every party's
// secret, so every party must contribute.
func AggregatePublicKey(shares []*PublicKeyShare) (*PublicKey, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("he: aggregate public key: no shares: %w", ErrMissingShares)
	}
	for _, s := range shares {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("he: aggregate public key: %w", err)
		}
	}
	first := shares[0]
	if len(shares) > first.n {
		return nil, fmt.Errorf("he: aggregate public key: %d shares for %d parties: %w", len(shares), first.n, ErrDuplicate)
	}
	seen := make([]bool, first.n)
	sum := make([]uint64, N)
	for _, s := range shares {
		if s.params != first.params {
			return nil, fmt.Errorf("he: aggregate public key: share of party %d: %w", s.from, ErrParams)
		}
		if s.seed != first.seed || s.n != first.n || s.t != first.t {
			return nil, fmt.Errorf("he: aggregate public key: share of party %d belongs to another setup: %w", s.from, ErrMismatch)
		}
		if seen[s.from] {
			return nil, fmt.Errorf("he: aggregate public key: party %d twice: %w", s.from, ErrDuplicate)
		}
		seen[s.from] = true
		addMod(sum, s.value)
	}
	if len(shares) < first.n {
		return nil, fmt.Errorf("he: aggregate public key: %d of %d shares: %w", len(shares), first.n, ErrMissingShares)
	}
	return newPublicKey(first.params, first.seed, first.n, first.t, sum), nil
}

func newPublicKey(id ParamsID, seed [SeedSize]byte, n, t int, value []uint64) *PublicKey {
	pk := &PublicKey{params: id, seed: seed, n: n, t: t, value: value}
	b, _ := pk.MarshalBinary()
	sum := sha256.Sum256(b)
	copy(pk.id[:], sum[:])
	return pk
}

// MarshalBinary encodes the key: header, seed (32 bytes), n, t (2 bytes
// each), pk0 (one polynomial; a is derived from the seed).
func (pk *PublicKey) MarshalBinary() ([]byte, error) {
	if len(pk.value) != N {
		return nil, fmt.Errorf("he: marshal: public key not made by this package: %w", ErrInvalid)
	}
	b := appendHeader(pk.params, kindPublicKey, SeedSize+4+polyBytes)
	b = append(b, pk.seed[:]...)
	b = appendU16(appendU16(b, pk.n), pk.t)
	return appendPolys(b, pk.value), nil
}

// UnmarshalBinary decodes a key written by MarshalBinary; pk is unchanged
// on error.
func (pk *PublicKey) UnmarshalBinary(b []byte) error {
	d, id, err := newDecoder(b, kindPublicKey)
	if err != nil {
		return err
	}
	var seed [SeedSize]byte
	copy(seed[:], d.take(SeedSize))
	n, t := d.u16(), d.u16()
	if d.err == nil {
		if err := checkSetup(seed, n, t); err != nil {
			d.fail(fmt.Errorf("%w: %w", ErrMalformed, err))
		}
	}
	value := d.polys(1)
	if err := d.finish(kindPublicKey); err != nil {
		return err
	}
	*pk = *newPublicKey(id, seed, n, t, value)
	return nil
}

// ThresholdShare is a secret: the evaluation, at the recipient's point, of
// the sender's Shamir polynomial whose constant term is the sender's
// secret. Each party sends one to each other party during setup; a
// recipient sums the n it holds (its own included) into its share of the
// collective secret. It must travel sealed to its recipient (encrypted to
// the recipient's key, signed by the sender): t-1 of them together with the
// recipient's reveal nothing, but anyone who gathers t parties' incoming
// shares holds the secret key. It prints redacted.
type ThresholdShare struct {
	params   ParamsID
	setup    SetupID
	from, to int
	value    []uint64
}

// From returns the index of the sending party.
func (s *ThresholdShare) From() int { return s.from }

// To returns the index of the party the share is for.
func (s *ThresholdShare) To() int { return s.to }

// Setup returns the setup the share belongs to.
func (s *ThresholdShare) Setup() SetupID { return s.setup }

// String prints the share's routing, never its value.
func (s *ThresholdShare) String() string {
	return fmt.Sprintf("he.ThresholdShare{setup: %s, from: %d, to: %d, value: REDACTED}", s.setup, s.from, s.to)
}

// GoString is String, so %#v does not print the value either.
func (s *ThresholdShare) GoString() string { return s.String() }

// MarshalBinary encodes the share: header, setup id (16 bytes), from, to
// (2 bytes each), one polynomial. The encoding is secret: seal it.
func (s *ThresholdShare) MarshalBinary() ([]byte, error) {
	if len(s.value) != N {
		return nil, fmt.Errorf("he: marshal: threshold share not made by this package: %w", ErrInvalid)
	}
	b := appendHeader(s.params, kindThresholdShare, len(s.setup)+4+polyBytes)
	b = append(b, s.setup[:]...)
	b = appendU16(appendU16(b, s.from), s.to)
	return appendPolys(b, s.value), nil
}

// UnmarshalBinary decodes a share written by MarshalBinary; s is unchanged
// on error.
func (s *ThresholdShare) UnmarshalBinary(b []byte) error {
	d, id, err := newDecoder(b, kindThresholdShare)
	if err != nil {
		return err
	}
	out := ThresholdShare{params: id}
	copy(out.setup[:], d.take(len(out.setup)))
	out.from, out.to = d.u16(), d.u16()
	if d.err == nil && (out.from >= MaxParties || out.to >= MaxParties || out.from == out.to) {
		d.fail(fmt.Errorf("from %d to %d: %w", out.from, out.to, ErrMalformed))
	}
	out.value = d.polys(1)
	if err := d.finish(kindThresholdShare); err != nil {
		return err
	}
	*s = out
	return nil
}
