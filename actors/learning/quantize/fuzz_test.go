package quantize

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// FuzzDecode: any bytes given to any codec's Decode either decode to
// DecodedLen values or are refused with ErrMalformed, never a panic; a
// decoded int8 chunk encodes again within its own bound.
func FuzzDecode(f *testing.F) {
	for _, c := range allCodecs(f) {
		enc, _ := c.Encode(nil, []float32{1, -2, 0.5, 0, 3e-3})
		f.Add(c.Name(), enc)
		f.Add(c.Name(), enc[:len(enc)-1])
	}
	f.Add("int8-block64", []byte{0x00, 0x00, 0x80, 0xbf, 0x80}) // negative scale, code -128
	f.Add("int8-block64", []byte{0xff, 0xff, 0xff, 0x7f, 0x01}) // NaN scale
	f.Add("int8-block64", []byte{0x00, 0x00, 0x00, 0x00, 0x05}) // code under a zero scale
	f.Add("float16", []byte{0x00, 0x7c, 0x01, 0x7c})            // infinity, signalling NaN
	f.Fuzz(func(t *testing.T, name string, src []byte) {
		c, err := ByName(name)
		if err != nil {
			return
		}
		n, lenErr := c.DecodedLen(len(src))
		dec, err := c.Decode(nil, src)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %v, not ErrMalformed", err)
			}
			return
		}
		if lenErr != nil || len(dec) != n {
			t.Fatalf("decoded %d values; DecodedLen says %d, %v", len(dec), n, lenErr)
		}
		if _, ok := c.(Int8Block); ok {
			for i, y := range dec {
				if math.IsNaN(float64(y)) || math.IsInf(float64(y), 0) {
					t.Fatalf("value %d decoded to %v", i, y)
				}
			}
			if _, err := c.Encode(nil, dec); err != nil {
				t.Fatalf("a decoded chunk does not encode: %v", err)
			}
		}
	})
}

// FuzzRoundTrip: any float32 values round-trip through every codec as the
// package doc says (the same checks as TestRoundTrip).
func FuzzRoundTrip(f *testing.F) {
	seed := func(v ...float32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	f.Add(seed(1, -2, 0.5))
	f.Add(seed(65520, 0x1p-25, 0x1p-149, MaxInt8Block))
	f.Add(seed(float32(math.Inf(-1)), float32(math.NaN())))
	f.Fuzz(func(t *testing.T, raw []byte) {
		x := make([]float32, len(raw)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		for _, c := range allCodecs(t) {
			i8, ok := c.(Int8Block)
			if !ok {
				_, y := roundTrip(t, c, x)
				for i := range x {
					checkValue(t, c.Name(), x[i], y[i], true)
				}
				continue
			}
			if len(encodable(x)) != len(x) {
				if _, err := c.Encode(nil, x); !errors.Is(err, ErrNonFinite) && !errors.Is(err, ErrRange) {
					t.Fatalf("%s: Encode of %v: %v", c.Name(), x, err)
				}
				continue
			}
			enc, y := roundTrip(t, c, x)
			checkInt8Bound(t, i8, x, y, enc)
		}
	})
}
