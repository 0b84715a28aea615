package he

import (
	"encoding/binary"
	"fmt"
)

// Wire format. Every encoding starts with a 6-byte header:
//
//	"HHE"  magic
//	1      wire format version
//	id     parameter set (ParamsV1)
//	kind   what follows (the kind* constants)
//
// then the kind's fixed fields (big-endian integers), then its polynomials,
// each N coefficients of LogQ bits packed little-endian (polyBytes bytes),
// and nothing after. Every length is checked against the header and the
// package limits before anything is allocated, and every coefficient must
// be below Q, so a decoder allocates at most about the size of its input
// and one value has one encoding.
const (
	magic       = "HHE"
	wireVersion = 1
	headerSize  = len(magic) + 3
	// polyBytes is the size of one packed polynomial (30720 bytes).
	polyBytes = N * LogQ / 8
	// packSlack is the room packPoly may touch past a polynomial's end.
	packSlack = 8
	coeffMask = uint64(1)<<LogQ - 1
)

// kind is the type of an encoded object.
type kind byte

const (
	kindPublicKeyShare  kind = 1
	kindPublicKey       kind = 2
	kindThresholdShare  kind = 3
	kindCiphertext      kind = 4
	kindDecryptionShare kind = 5
)

func (k kind) String() string {
	switch k {
	case kindPublicKeyShare:
		return "public key share"
	case kindPublicKey:
		return "public key"
	case kindThresholdShare:
		return "threshold share"
	case kindCiphertext:
		return "ciphertext"
	case kindDecryptionShare:
		return "decryption share"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// appendHeader starts an encoding of kind k into a buffer with room for
// size more bytes (plus the packing slack).
func appendHeader(id ParamsID, k kind, size int) []byte {
	b := make([]byte, 0, headerSize+size+packSlack)
	b = append(b, magic...)
	return append(b, wireVersion, byte(id), byte(k))
}

// The packing below is written for LogQ = 60: two coefficients fill 15
// bytes exactly. These two lines stop the build if LogQ changes.
const (
	_ = uint(LogQ - 60)
	_ = uint(60 - LogQ)
)

// appendPolys appends the packed coefficients of src (a multiple of N of
// them) to b.
func appendPolys(b []byte, src []uint64) []byte {
	for len(src) > 0 {
		start := len(b)
		b = b[:start+polyBytes+packSlack]
		packPoly(b[start:], src[:N])
		b = b[:start+polyBytes]
		src = src[N:]
	}
	return b
}

// packPoly writes the N coefficients of src as 60-bit little-endian fields
// into dst, which must hold polyBytes+packSlack bytes (the bytes past
// polyBytes are scratch). Coefficients not below Q (lattigo leaves some in
// [Q, 2Q)) are reduced.
func packPoly(dst []byte, src []uint64) {
	for p := 0; p < N; p += 2 {
		a, b := src[p], src[p+1]
		if a >= Q {
			a %= Q
		}
		if b >= Q {
			b %= Q
		}
		o := p / 2 * 15
		binary.LittleEndian.PutUint64(dst[o:], a|b<<60)
		binary.LittleEndian.PutUint64(dst[o+8:], b>>4) // its 8th byte is the next pair's first
	}
}

// unpackPoly reads N coefficients from src (exactly polyBytes bytes) into
// dst, refusing any that is not below Q.
func unpackPoly(dst []uint64, src []byte) error {
	if len(src) != polyBytes || len(dst) != N {
		return fmt.Errorf("polynomial of %d bytes: %w", len(src), ErrMalformed)
	}
	for p := 0; p < N; p += 2 {
		o := p / 2 * 15
		lo := binary.LittleEndian.Uint64(src[o:])
		hi := binary.LittleEndian.Uint64(src[o+7:]) >> 8 // bytes o+8 to o+14
		a, b := lo&coeffMask, lo>>60|hi<<4
		if a >= Q || b >= Q {
			return fmt.Errorf("coefficient %d or %d not below the modulus: %w", p, p+1, ErrMalformed)
		}
		dst[p], dst[p+1] = a, b
	}
	return nil
}

// decoder reads an encoding front to back; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

// newDecoder checks the header of b for kind k and returns a decoder on
// the rest.
func newDecoder(b []byte, k kind) (*decoder, ParamsID, error) {
	if len(b) < headerSize {
		return nil, 0, fmt.Errorf("he: %s: %d bytes, shorter than a header: %w", k, len(b), ErrMalformed)
	}
	if string(b[:len(magic)]) != magic {
		return nil, 0, fmt.Errorf("he: %s: bad magic: %w", k, ErrMalformed)
	}
	if v := b[len(magic)]; v != wireVersion {
		return nil, 0, fmt.Errorf("he: %s: wire version %d (want %d): %w", k, v, wireVersion, ErrMalformed)
	}
	id := ParamsID(b[len(magic)+1])
	if id != ParamsV1 {
		return nil, 0, fmt.Errorf("he: %s: unknown parameter set %d: %w", k, id, ErrParams)
	}
	if got := kind(b[len(magic)+2]); got != k {
		return nil, 0, fmt.Errorf("he: %s expected, got %s: %w", k, got, ErrMalformed)
	}
	return &decoder{b: b[headerSize:]}, id, nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("truncated: %w", ErrMalformed)
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u16() int {
	b := d.take(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (d *decoder) u32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// polys reads count polynomials; the remaining input must be exactly that
// long, which is checked before the coefficients are allocated.
func (d *decoder) polys(count int) []uint64 {
	if d.err != nil {
		return nil
	}
	if count < 1 || len(d.b)/polyBytes != count || len(d.b)%polyBytes != 0 {
		d.err = fmt.Errorf("%d bytes of polynomials, want %d polynomials of %d bytes: %w", len(d.b), count, polyBytes, ErrMalformed)
		return nil
	}
	out := make([]uint64, count*N)
	for i := range count {
		if err := unpackPoly(out[i*N:(i+1)*N], d.b[i*polyBytes:(i+1)*polyBytes]); err != nil {
			d.err = err
			return nil
		}
	}
	d.b = d.b[count*polyBytes:]
	return out
}

// fail records a field check's failure.
func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// finish returns the first failure, or one for trailing bytes.
func (d *decoder) finish(k kind) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes: %w", len(d.b), ErrMalformed)
	}
	if d.err != nil {
		return fmt.Errorf("he: decode %s: %w", k, d.err)
	}
	return nil
}

func appendU16(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }

func appendU32(b []byte, v int) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }
