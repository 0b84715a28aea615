package he

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
)

// encodings returns one valid encoding of each kind, from a 3-party setup
// with t = 2 and a ciphertext of length values.
func encodings(tb testing.TB, length int) map[kind][]byte {
	tb.Helper()
	params := testParams(tb)
	parties, pk := setup(tb, params, 3, 2, testSeed(1))
	ups, weights := updates(rand.New(rand.NewPCG(1, 1)), 3, length)
	sum, cts := encryptAll(tb, params, pk, ups, weights)
	share := decryptionShares(tb, parties, 1, cts, []int{0, 2}, 2)[0]
	out := map[kind][]byte{}
	for k, m := range map[kind]encoding.BinaryMarshaler{
		kindPublicKeyShare:  parties[1].pkShare,
		kindPublicKey:       pk,
		kindThresholdShare:  parties[0].ThresholdShares()[1],
		kindCiphertext:      sum,
		kindDecryptionShare: share,
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			tb.Fatalf("marshal %s: %v", k, err)
		}
		out[k] = b
	}
	return out
}

// decoderFor returns a fresh value to decode kind k into.
func decoderFor(k kind) interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
} {
	switch k {
	case kindPublicKeyShare:
		return &PublicKeyShare{}
	case kindPublicKey:
		return &PublicKey{}
	case kindThresholdShare:
		return &ThresholdShare{}
	case kindCiphertext:
		return &Ciphertext{}
	case kindDecryptionShare:
		return &DecryptionShare{}
	}
	panic("unknown kind")
}

// with returns a copy of b changed by f.
func with(b []byte, f func(b []byte) []byte) []byte {
	return f(bytes.Clone(b))
}

func putU16(off, v int) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], uint16(v)); return b }
}

func putU32(off int, v uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
}

// bigCoeff makes the first coefficient of the polynomial at off 2^60-1,
// which is not below Q.
func bigCoeff(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[off:], binary.LittleEndian.Uint64(b[off:])|coeffMask)
		return b
	}
}

func TestWireRoundTrip(t *testing.T) {
	for k, b := range encodings(t, Slots+3) {
		t.Run(k.String(), func(t *testing.T) {
			v := decoderFor(k)
			if err := v.UnmarshalBinary(b); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			again, err := v.MarshalBinary()
			if err != nil {
				t.Fatalf("marshal again: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Fatal("encoding does not round-trip")
			}
		})
	}
}

// TestWireExpansion pins the ciphertext's size: 30 bytes per value, 7.5
// times float32, plus a 28-byte header.
func TestWireExpansion(t *testing.T) {
	b := encodings(t, 4*Slots)[kindCiphertext]
	if want := headerSize + 22 + 8*polyBytes; len(b) != want {
		t.Fatalf("ciphertext of %d values is %d bytes, want %d", 4*Slots, len(b), want)
	}
	if x := float64(len(b)) / float64(4*4*Slots); x > 8 {
		t.Fatalf("expansion %.3f, want <= 8", x)
	}
	if CiphertextBytesPerValue() != 30 || Expansion() != 7.5 {
		t.Fatalf("CiphertextBytesPerValue %g, Expansion %g; want 30 and 7.5", CiphertextBytesPerValue(), Expansion())
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	enc := encodings(t, Slots+3)
	type tc struct {
		name string
		kind kind
		b    []byte
		want error
	}
	var tests []tc
	for k, b := range enc {
		other := kindCiphertext
		if k == kindCiphertext {
			other = kindPublicKey
		}
		tests = append(tests,
			tc{name: k.String() + ": empty", kind: k, b: nil, want: ErrMalformed},
			tc{name: k.String() + ": header only", kind: k, b: b[:headerSize], want: ErrMalformed},
			tc{name: k.String() + ": bad magic", kind: k, b: with(b, func(b []byte) []byte { b[0] = 'X'; return b }), want: ErrMalformed},
			tc{name: k.String() + ": future wire version", kind: k, b: with(b, func(b []byte) []byte { b[3] = 2; return b }), want: ErrMalformed},
			tc{name: k.String() + ": unknown parameter set", kind: k, b: with(b, func(b []byte) []byte { b[4] = 9; return b }), want: ErrParams},
			tc{name: k.String() + ": decoded as " + other.String(), kind: other, b: b, want: ErrMalformed},
			tc{name: k.String() + ": truncated by one byte", kind: k, b: b[:len(b)-1], want: ErrMalformed},
			tc{name: k.String() + ": one trailing byte", kind: k, b: append(bytes.Clone(b), 0), want: ErrMalformed},
			tc{name: k.String() + ": a coefficient not below Q", kind: k, b: with(b, bigCoeff(len(b)-polyBytes)), want: ErrMalformed},
		)
	}
	pks, pk, ths, ct, ds := enc[kindPublicKeyShare], enc[kindPublicKey], enc[kindThresholdShare], enc[kindCiphertext], enc[kindDecryptionShare]
	zeroSeed := func(b []byte) []byte { clear(b[headerSize : headerSize+SeedSize]); return b }
	tests = append(tests,
		tc{name: "public key share: zero seed", kind: kindPublicKeyShare, b: with(pks, zeroSeed), want: ErrInvalid},
		tc{name: "public key share: threshold above n", kind: kindPublicKeyShare, b: with(pks, putU16(40, 4)), want: ErrInvalid},
		tc{name: "public key share: sender out of range", kind: kindPublicKeyShare, b: with(pks, putU16(42, 3)), want: ErrMalformed},
		tc{name: "public key: threshold 1", kind: kindPublicKey, b: with(pk, putU16(40, 1)), want: ErrInvalid},
		tc{name: "public key: too many parties", kind: kindPublicKey, b: with(pk, putU16(38, MaxParties+1)), want: ErrInvalid},
		tc{name: "threshold share: to itself", kind: kindThresholdShare, b: with(ths, putU16(24, 0)), want: ErrMalformed},
		tc{name: "threshold share: sender out of range", kind: kindThresholdShare, b: with(ths, putU16(22, MaxParties)), want: ErrMalformed},
		tc{name: "ciphertext: no values", kind: kindCiphertext, b: with(ct, putU32(22, 0)), want: ErrMalformed},
		tc{name: "ciphertext: more than MaxValues", kind: kindCiphertext, b: with(ct, putU32(22, MaxValues+1)), want: ErrTooLarge},
		tc{name: "ciphertext: 2^32-1 values", kind: kindCiphertext, b: with(ct, putU32(22, 1<<32-1)), want: ErrTooLarge},
		tc{name: "ciphertext: length of another chunk count", kind: kindCiphertext, b: with(ct, putU32(22, 3*Slots)), want: ErrMalformed},
		tc{name: "ciphertext: zero summands", kind: kindCiphertext, b: with(ct, putU16(26, 0)), want: ErrMalformed},
		tc{name: "ciphertext: more than MaxSummands", kind: kindCiphertext, b: with(ct, putU16(26, MaxSummands+1)), want: ErrMalformed},
		tc{name: "decryption share: active set of MaxParties+1", kind: kindDecryptionShare, b: with(ds, putU16(56, MaxParties+1)), want: ErrTooLarge},
		tc{name: "decryption share: active set of one", kind: kindDecryptionShare, b: with(ds, putU16(56, 1)), want: ErrTooLarge},
		tc{name: "decryption share: active set not increasing", kind: kindDecryptionShare, b: with(ds, putU16(58, 2)), want: ErrMalformed},
		tc{name: "decryption share: sender outside the active set", kind: kindDecryptionShare, b: with(ds, putU16(54, 1)), want: ErrMalformed},
		tc{name: "decryption share: no chunks", kind: kindDecryptionShare, b: with(ds, putU32(62, 0)), want: ErrTooLarge},
		tc{name: "decryption share: 2^32-1 chunks", kind: kindDecryptionShare, b: with(ds, putU32(62, 1<<32-1)), want: ErrTooLarge},
		tc{name: "decryption share: chunk count not the body's", kind: kindDecryptionShare, b: with(ds, putU32(62, 3)), want: ErrMalformed},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decoderFor(tt.kind)
			before, _ := v.MarshalBinary()
			err := v.UnmarshalBinary(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnmarshalBinary: %v, want %v", err, tt.want)
			}
			if after, _ := v.MarshalBinary(); !bytes.Equal(before, after) {
				t.Fatal("a refused decode changed the value")
			}
		})
	}
}

// TestOversizedHeaderAllocatesNothing: a header that claims MaxValues
// values (about 470 MiB of ciphertext) over a short body is refused
// without allocating for the claim.
func TestOversizedHeaderAllocatesNothing(t *testing.T) {
	ct := encodings(t, 1)[kindCiphertext]
	b := with(ct, putU32(22, MaxValues))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := new(Ciphertext).UnmarshalBinary(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("UnmarshalBinary: %v, want ErrMalformed", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("refusing the header allocated %d bytes", got)
	}
}

// FuzzUnmarshal: no input makes a decoder panic, and whatever decodes
// encodes back to the same bytes (one value, one encoding).
func FuzzUnmarshal(f *testing.F) {
	for k, b := range encodings(f, 5) {
		f.Add(byte(k), b)
		f.Add(byte(k), b[:headerSize+40])
	}
	f.Fuzz(func(t *testing.T, k byte, b []byte) {
		kd := kind(k%5 + 1)
		v := decoderFor(kd)
		if err := v.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal decoded %s: %v", kd, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%s decodes but does not encode back to its bytes", kd)
		}
	})
}

// TestUnmarshalMutationsNeverPanic decodes thousands of mutations of valid
// encodings (flipped bytes, mostly in headers and fields, truncations,
// extensions) into every type: no decoder panics, and whatever decodes
// encodes back to the same bytes. FuzzUnmarshal explores further when run
// with -fuzz.
func TestUnmarshalMutationsNeverPanic(t *testing.T) {
	enc := encodings(t, 3)
	kinds := []kind{kindPublicKeyShare, kindPublicKey, kindThresholdShare, kindCiphertext, kindDecryptionShare}
	rng := rand.New(rand.NewPCG(42, 42))
	decoded := 0
	for range 3000 {
		b := bytes.Clone(enc[kinds[rng.IntN(len(kinds))]])
		for range 1 + rng.IntN(3) {
			switch rng.IntN(4) {
			case 0: // a byte in the header or fixed fields
				b[rng.IntN(min(len(b), 80))] ^= byte(1 + rng.IntN(255))
			case 1: // a byte anywhere
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			case 2:
				b = b[:rng.IntN(len(b))]
			case 3:
				for range 1 + rng.IntN(polyBytes) {
					b = append(b, byte(rng.IntN(256)))
				}
			}
			if len(b) == 0 {
				b = []byte{0}
			}
		}
		for _, k := range kinds {
			v := decoderFor(k)
			if err := v.UnmarshalBinary(b); err != nil {
				continue
			}
			decoded++
			if again, err := v.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("%s decodes from mutated bytes but does not encode back to them (%v)", k, err)
			}
		}
	}
	t.Logf("%d of 3000 mutations decoded (and round-tripped)", decoded)
}

// TestMarshalRefusesZeroValues: a value not made by this package has no
// encoding.
func TestMarshalRefusesZeroValues(t *testing.T) {
	for _, k := range []kind{kindPublicKeyShare, kindPublicKey, kindThresholdShare, kindCiphertext, kindDecryptionShare} {
		t.Run(k.String(), func(t *testing.T) {
			if _, err := decoderFor(k).MarshalBinary(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("MarshalBinary of a zero %s: %v, want ErrInvalid", k, err)
			}
		})
	}
}
