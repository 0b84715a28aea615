package he

import (
	"crypto/sha256"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Ciphertext is an encrypted vector of real values under a collective
// PublicKey: ceil(Len/Slots) CKKS ciphertexts of Slots values each (the
// last one padded with zeros). Summands counts the encrypted updates it is
// the sum of. A Ciphertext made by Encrypt, Sum or UnmarshalBinary is
// well formed; Add changes it in place, so share it only when done.
type Ciphertext struct {
	params   ParamsID
	key      KeyID
	length   int
	summands int
	// coeffs holds, per chunk j, c0 at [2jN, (2j+1)N) and c1 after it, in
	// the NTT domain, every coefficient below Q.
	coeffs []uint64
}

// chunks returns the number of CKKS ciphertexts for length values.
func chunks(length int) int { return (length + Slots - 1) / Slots }

// Len returns the number of values encrypted.
func (c *Ciphertext) Len() int { return c.length }

// Summands returns how many encrypted updates c is the sum of.
func (c *Ciphertext) Summands() int { return c.summands }

// Key returns the identifier of the key c is encrypted under.
func (c *Ciphertext) Key() KeyID { return c.key }

// Digest returns the SHA-256 of c's encoding (computed without holding the
// encoding in memory). Decryption shares carry the digest of the ciphertext
// they decrypt.
func (c *Ciphertext) Digest() [sha256.Size]byte {
	h := sha256.New()
	h.Write(c.appendFields(0))
	buf := make([]byte, polyBytes+packSlack)
	for p := 0; p+N <= len(c.coeffs); p += N {
		packPoly(buf, c.coeffs[p:p+N])
		h.Write(buf[:polyBytes])
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// check refuses a Ciphertext not made by this package.
func (c *Ciphertext) check() error {
	if c == nil || c.params != ParamsV1 || c.length < 1 || c.length > MaxValues ||
		c.summands < 1 || c.summands > MaxSummands || len(c.coeffs) != 2*N*chunks(c.length) {
		return fmt.Errorf("ciphertext not made by this package: %w", ErrInvalid)
	}
	return nil
}

// chunk returns chunk j as a lattigo ciphertext over c's memory.
func (c *Ciphertext) chunk(j int, meta rlwe.MetaData) *rlwe.Ciphertext {
	c0 := c.coeffs[2*j*N : (2*j+1)*N : (2*j+1)*N]
	c1 := c.coeffs[(2*j+1)*N : (2*j+2)*N : (2*j+2)*N]
	return &rlwe.Ciphertext{Element: rlwe.Element[ring.Poly]{
		Value:    []ring.Poly{{Coeffs: [][]uint64{c0}}, {Coeffs: [][]uint64{c1}}},
		MetaData: &meta,
	}}
}

// Add adds o into c in place (no key is needed: the ciphertexts are summed
// coefficient by coefficient mod Q). It refuses ciphertexts under another
// key, of another length, and a sum of more than MaxSummands updates; c is
// unchanged on error. This is the aggregator's streaming accumulator: its
// memory is one ciphertext whatever the number of sites.
func (c *Ciphertext) Add(o *Ciphertext) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("he: add: %w", err)
	}
	if err := o.check(); err != nil {
		return fmt.Errorf("he: add: %w", err)
	}
	switch {
	case o.key != c.key:
		return fmt.Errorf("he: add: ciphertext under key %s to one under %s: %w", o.key, c.key, ErrMismatch)
	case o.length != c.length:
		return fmt.Errorf("he: add: %d values to %d: %w", o.length, c.length, ErrMismatch)
	case c.summands+o.summands > MaxSummands:
		return fmt.Errorf("he: add: %d summands, at most %d: %w", c.summands+o.summands, MaxSummands, ErrTooManySummands)
	}
	addMod(c.coeffs, o.coeffs)
	c.summands += o.summands
	return nil
}

// Sum returns the sum of cts (at least one) as a new ciphertext, leaving
// them unchanged; see Add for what it refuses.
func Sum(cts ...*Ciphertext) (*Ciphertext, error) {
	if len(cts) == 0 {
		return nil, fmt.Errorf("he: sum of no ciphertexts: %w", ErrInvalid)
	}
	if err := cts[0].check(); err != nil {
		return nil, fmt.Errorf("he: sum: %w", err)
	}
	out := &Ciphertext{
		params: cts[0].params, key: cts[0].key, length: cts[0].length, summands: cts[0].summands,
		coeffs: append([]uint64(nil), cts[0].coeffs...),
	}
	for i, ct := range cts[1:] {
		if err := out.Add(ct); err != nil {
			return nil, fmt.Errorf("he: sum: ciphertext %d: %w", i+1, err)
		}
	}
	return out, nil
}

// CiphertextSize is the encoded size (MarshalBinary) of the ciphertext of
// an update of values values.
func CiphertextSize(values int) int {
	return headerSize + len(KeyID{}) + 6 + 2*chunks(values)*polyBytes
}

// MarshalBinary encodes c: header, key id (16 bytes), length (4 bytes),
// summands (2 bytes), then c0 and c1 of every chunk.
func (c *Ciphertext) MarshalBinary() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("he: marshal: %w", err)
	}
	return appendPolys(c.appendFields(2*chunks(c.length)*polyBytes), c.coeffs), nil
}

// appendFields returns c's header and fields in a buffer with room for
// polys more bytes.
func (c *Ciphertext) appendFields(polys int) []byte {
	b := appendHeader(c.params, kindCiphertext, len(c.key)+6+polys)
	b = append(b, c.key[:]...)
	return appendU16(appendU32(b, c.length), c.summands)
}

// UnmarshalBinary decodes a ciphertext written by MarshalBinary, refusing
// more than MaxValues values or MaxSummands summands, before allocating;
// c is unchanged on error.
func (c *Ciphertext) UnmarshalBinary(b []byte) error {
	d, id, err := newDecoder(b, kindCiphertext)
	if err != nil {
		return err
	}
	out := Ciphertext{params: id}
	copy(out.key[:], d.take(len(out.key)))
	length := d.u32()
	out.summands = d.u16()
	if d.err == nil {
		switch {
		case length < 1:
			d.fail(fmt.Errorf("no values: %w", ErrMalformed))
		case length > MaxValues:
			d.fail(fmt.Errorf("%d values, at most %d: %w", length, MaxValues, ErrTooLarge))
		case out.summands < 1 || out.summands > MaxSummands:
			d.fail(fmt.Errorf("%d summands, want 1 to %d: %w", out.summands, MaxSummands, ErrMalformed))
		}
	}
	out.length = int(length)
	out.coeffs = d.polys(2 * chunks(out.length))
	if err := d.finish(kindCiphertext); err != nil {
		return err
	}
	*c = out
	return nil
}

// Encryptor encrypts weighted updates under a collective public key. It
// holds scratch buffers: use one per goroutine.
type Encryptor struct {
	params Params
	key    KeyID
	enc    *ckks.Encoder
	encr   *rlwe.Encryptor
	values []float64
	pt     *rlwe.Plaintext
}

// NewEncryptor returns an Encryptor for pk.
func NewEncryptor(params Params, pk *PublicKey) (*Encryptor, error) {
	if err := params.check(); err != nil {
		return nil, err
	}
	if pk == nil || len(pk.value) != N {
		return nil, fmt.Errorf("he: encryptor: public key not made by this package: %w", ErrInvalid)
	}
	if pk.params != params.id {
		return nil, fmt.Errorf("he: encryptor: key of parameter set %d: %w", pk.params, ErrParams)
	}
	crs, err := sampling.NewKeyedPRNG(crsKey(pk.seed))
	if err != nil {
		return nil, fmt.Errorf("he: encryptor: common reference string: %w", err)
	}
	ckg := multiparty.NewPublicKeyGenProtocol(params.ckks)
	crp := ckg.SampleCRP(crs)
	rpk := rlwe.NewPublicKey(params.ckks)
	copy(rpk.Value[0].Q.Coeffs[0], pk.value)
	rpk.Value[1].Q.Copy(crp.Value.Q)
	return &Encryptor{
		params: params,
		key:    pk.id,
		enc:    ckks.NewEncoder(params.ckks),
		encr:   rlwe.NewEncryptor(params.ckks, rpk),
		values: make([]float64, Slots),
		pt:     ckks.NewPlaintext(params.ckks, params.ckks.MaxLevel()),
	}, nil
}

// Encrypt encrypts weight*update[i] for every i (the products are formed
// in float64). It refuses an empty update, one of more than MaxValues
// values, and any product that is not finite or exceeds MaxAbsValue in
// magnitude, so that a sum of MaxSummands ciphertexts always decrypts
// correctly.
func (e *Encryptor) Encrypt(update []float32, weight float64) (*Ciphertext, error) {
	if len(update) == 0 {
		return nil, fmt.Errorf("he: encrypt: empty update: %w", ErrInvalid)
	}
	if len(update) > MaxValues {
		return nil, fmt.Errorf("he: encrypt: %d values, at most %d: %w", len(update), MaxValues, ErrTooLarge)
	}
	for i, v := range update {
		if x := weight * float64(v); !(math.Abs(x) <= MaxAbsValue) { // NaN fails too
			return nil, fmt.Errorf("he: encrypt: value %d is %g (weight %g): %w", i, x, weight, ErrValueOutOfRange)
		}
	}
	ct := &Ciphertext{
		params: e.params.id, key: e.key, length: len(update), summands: 1,
		coeffs: make([]uint64, 2*N*chunks(len(update))),
	}
	for j := range chunks(len(update)) {
		part := update[j*Slots : min((j+1)*Slots, len(update))]
		for i, v := range part {
			e.values[i] = weight * float64(v)
		}
		clear(e.values[len(part):])
		if err := e.enc.Encode(e.values, e.pt); err != nil {
			return nil, fmt.Errorf("he: encrypt: encode: %w", err)
		}
		if err := e.encr.Encrypt(e.pt, ct.chunk(j, e.params.meta)); err != nil {
			return nil, fmt.Errorf("he: encrypt: %w", err)
		}
	}
	reduce(ct.coeffs)
	return ct, nil
}
