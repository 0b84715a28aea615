package quantize

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestByName(t *testing.T) {
	tests := []struct {
		name string
		want string // canonical name; "" when refused
	}{
		{name: "float32", want: "float32"},
		{name: "float16", want: "float16"},
		{name: "bfloat16", want: "bfloat16"},
		{name: "int8-block64", want: "int8-block64"},
		{name: "int8-block256", want: "int8-block256"},
		{name: "int8-block4096", want: "int8-block4096"},
		{name: "empty", want: ""},
		{name: "FLOAT16", want: ""},
		{name: "fp16", want: ""},
		{name: "int8-block", want: ""},
		{name: "int8-block32", want: ""},   // below MinBlock
		{name: "int8-block8192", want: ""}, // above MaxBlock
		{name: "int8-block100", want: ""},  // not a power of two
		{name: "int8-block064", want: ""},  // not canonical
		{name: "int8-block+64", want: ""},  // not canonical
		{name: "int8-block64 ", want: ""},
		{name: "int4-block64", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arg := tt.name
			if arg == "empty" {
				arg = ""
			}
			c, err := ByName(arg)
			if tt.want == "" {
				if !errors.Is(err, ErrUnknownCodec) || c != nil {
					t.Fatalf("ByName(%q) = %v, %v; want ErrUnknownCodec", arg, c, err)
				}
				return
			}
			if err != nil || c.Name() != tt.want {
				t.Fatalf("ByName(%q) = %v, %v; want %s", arg, c, err, tt.want)
			}
		})
	}
}

func TestByNameBoundsTheNameInItsError(t *testing.T) {
	_, err := ByName(strings.Repeat("x", 10000))
	if !errors.Is(err, ErrUnknownCodec) || len(err.Error()) > 400 {
		t.Fatalf("error of %d bytes: %.100v", len(err.Error()), err)
	}
}

func TestNamesAreCanonical(t *testing.T) {
	names := Names()
	if names[0] != NameFloat32 || !slices.Contains(names, NameInt8Block64) {
		t.Fatalf("Names() = %v", names)
	}
	for _, c := range allCodecs(t) {
		if got := c.Name(); got != names[slices.Index(names, got)] {
			t.Fatalf("%s not in Names", got)
		}
	}
	if (Int8Block{}).Name() != NameInt8Block64 || (Int8Block{}).BlockSize() != DefaultBlock {
		t.Fatalf("the zero Int8Block is %s", Int8Block{}.Name())
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		codec string
		n     int
		size  int
	}{
		{codec: "float32", n: 0, size: 0},
		{codec: "float32", n: 262144, size: 1 << 20},
		{codec: "float16", n: 262144, size: 1 << 19},
		{codec: "bfloat16", n: 3, size: 6},
		{codec: "int8-block64", n: 0, size: 0},
		{codec: "int8-block64", n: 1, size: 5},
		{codec: "int8-block64", n: 64, size: 68},
		{codec: "int8-block64", n: 65, size: 73},
		{codec: "int8-block64", n: 262144, size: 278528},
		{codec: "int8-block4096", n: 262144, size: 262400},
	}
	for _, tt := range tests {
		c, _ := ByName(tt.codec)
		if got := c.EncodedSize(tt.n); got != tt.size {
			t.Errorf("%s.EncodedSize(%d) = %d, want %d", tt.codec, tt.n, got, tt.size)
		}
		if got, err := c.DecodedLen(tt.size); err != nil || got != tt.n {
			t.Errorf("%s.DecodedLen(%d) = %d, %v; want %d", tt.codec, tt.size, got, err, tt.n)
		}
	}
	for _, c := range allCodecs(t) { // every size is one n's, or malformed
		for size := range 3 * 4100 {
			n, err := c.DecodedLen(size)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s.DecodedLen(%d): %v", c.Name(), size, err)
				}
				continue
			}
			if c.EncodedSize(n) != size {
				t.Fatalf("%s.DecodedLen(%d) = %d, whose EncodedSize is %d", c.Name(), size, n, c.EncodedSize(n))
			}
		}
	}
}

func TestEncodeAndDecodeAppend(t *testing.T) {
	src := []float32{1, -2, 127} // exact in every codec (an int8 scale of 1)
	for _, c := range allCodecs(t) {
		t.Run(c.Name(), func(t *testing.T) {
			enc, err := c.Encode([]byte("head"), src)
			if err != nil || string(enc[:4]) != "head" || len(enc) != 4+c.EncodedSize(3) {
				t.Fatalf("Encode: % x, %v", enc, err)
			}
			dec, err := c.Decode([]float32{7}, enc[4:])
			if err != nil || !slices.Equal(dec, []float32{7, 1, -2, 127}) {
				t.Fatalf("Decode: %v, %v", dec, err)
			}
		})
	}
}

// TestNoAllocationPerChunk: with buffers of enough capacity, a 1 MiB chunk
// encodes and decodes without allocating.
func TestNoAllocationPerChunk(t *testing.T) {
	src := randomVector(1, 262144, 0.01)
	for _, c := range allCodecs(t) {
		t.Run(c.Name(), func(t *testing.T) {
			enc := make([]byte, 0, c.EncodedSize(len(src)))
			dec := make([]float32, 0, len(src))
			allocs := testing.AllocsPerRun(3, func() {
				var err error
				if enc, err = c.Encode(enc[:0], src); err != nil {
					t.Fatal(err)
				}
				if dec, err = c.Decode(dec[:0], enc); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per chunk", allocs)
			}
		})
	}
}

// TestDecodeRefusesMalformed: a length no chunk has, or an int8 block that
// the encoder never writes, is refused with ErrMalformed and a reason, and
// dst comes back as it was.
func TestDecodeRefusesMalformed(t *testing.T) {
	block := func(scale uint32, codes ...byte) []byte {
		b := []byte{byte(scale), byte(scale >> 8), byte(scale >> 16), byte(scale >> 24)}
		return append(b, codes...)
	}
	one := math.Float32bits(1.0 / 127) // not of 17 bits: 0x3c010204
	good := block(math.Float32bits(scaleFor(1)), 127)
	tests := []struct {
		name   string
		codec  string
		src    []byte
		reason string
	}{
		{name: "float32 short", codec: "float32", src: []byte{1, 2, 3}, reason: "not a multiple of 4"},
		{name: "float16 odd", codec: "float16", src: []byte{1, 2, 3}, reason: "not a multiple of 2"},
		{name: "bfloat16 odd", codec: "bfloat16", src: []byte{1}, reason: "not a multiple of 2"},
		{name: "int8 scale only", codec: "int8-block64", src: block(0), reason: "holds no value"},
		{name: "int8 part of a scale", codec: "int8-block64", src: []byte{0, 0}, reason: "holds no value"},
		{name: "int8 scale only after a block", codec: "int8-block64", src: append(block(0, make([]byte, 64)...), 0, 0, 0, 0), reason: "holds no value"},
		{name: "int8 negative scale", codec: "int8-block64", src: block(math.Float32bits(-0.5), 1), reason: "negative scale"},
		{name: "int8 negative zero scale", codec: "int8-block64", src: block(0x80000000, 0), reason: "negative scale"},
		{name: "int8 infinite scale", codec: "int8-block64", src: block(f32Inf, 1), reason: "not finite"},
		{name: "int8 NaN scale", codec: "int8-block64", src: block(0x7fc00000, 1), reason: "not finite"},
		{name: "int8 scale above the largest", codec: "int8-block64", src: block(math.Float32bits(0x1p126), 1), reason: "above the largest"},
		{name: "int8 scale of 24 bits", codec: "int8-block64", src: block(one, 1), reason: "more than 17 significant bits"},
		{name: "int8 subnormal scale of 23 bits", codec: "int8-block64", src: block(0x007fffff, 1), reason: "more than 17 significant bits"},
		{name: "int8 code -128", codec: "int8-block64", src: block(math.Float32bits(scaleFor(1)), 1, 0x80, 2), reason: "code -128"},
		{name: "int8 code under zero scale", codec: "int8-block64", src: block(0, 0, 0, 3), reason: "nonzero code under a zero scale"},
		{name: "int8 bad second block", codec: "int8-block64", src: append(block(0, make([]byte, 64)...), block(one, 1)...), reason: "block 1"},
		{name: "int8 bad block after a good one", codec: "int8-block4096", src: append(append(good[:4:4], make([]byte, 4096)...), block(0x80000000, 1)...), reason: "block 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := ByName(tt.codec)
			dst := []float32{42}
			got, err := c.Decode(dst, tt.src)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Decode: %v; want ErrMalformed with %q", err, tt.reason)
			}
			if len(got) != 1 || got[0] != 42 {
				t.Fatalf("dst became %v", got)
			}
		})
	}
	for _, c := range allCodecs(t) { // and the good chunk of each decodes
		if _, err := c.Decode(nil, good[:c.EncodedSize(1)]); strings.HasPrefix(c.Name(), "int8") && err != nil {
			t.Errorf("%s: a good block refused: %v", c.Name(), err)
		}
	}
}

func TestCodecsCompareByValue(t *testing.T) {
	c64, err := NewInt8Block(64)
	if err != nil || c64 != (Int8Block{}) {
		t.Fatalf("NewInt8Block(64) = %#v, %v; want the zero Int8Block", c64, err)
	}
	byName, _ := ByName(NameInt8Block64)
	if byName != Codec(Int8Block{}) {
		t.Fatalf("ByName(%q) = %#v", NameInt8Block64, byName)
	}
	for _, size := range []int{0, 32, 65, 8192, -64} {
		if _, err := NewInt8Block(size); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("NewInt8Block(%d): %v", size, err)
		}
	}
}
