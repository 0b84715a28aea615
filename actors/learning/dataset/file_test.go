package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func small() *Set {
	return &Set{
		X:        []float32{0.5, -1, 2.25, 0, float32(math.SmallestNonzeroFloat32), -0},
		Y:        []int{2, 0, 1},
		Classes:  3,
		Features: 2,
		Name:     "small",
	}
}

func encode(t *testing.T, s *Set) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestWriteReadRoundTrip(t *testing.T) {
	train, _, err := Load("wdbc")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Set{small(), train} {
		b := encode(t, s)
		got, err := Read(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: Read: %v", s.Name, err)
		}
		if got.Name != s.Name || got.Classes != s.Classes || got.Features != s.Features ||
			!slices.Equal(got.Y, s.Y) || !slices.Equal(got.X, s.X) {
			t.Fatalf("%s: round trip changed the set", s.Name)
		}
	}
}

// reseal recomputes the checksum of a file whose body was edited, so that
// a test reaches the checks behind the checksum.
func reseal(b []byte) []byte {
	body := b[:len(b)-sha256.Size]
	sum := sha256.Sum256(body)
	return append(slices.Clone(body), sum[:]...)
}

func TestReadRefusals(t *testing.T) {
	good := encode(t, small())
	nameEnd := len(fileMagic) + 4 + len("small")
	labels := nameEnd + 12
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated in the header"},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), "bad magic"},
		{"bad version", edit(func(b []byte) []byte { b[8] = 9; return reseal(b) }), "version 9"},
		{"truncated labels", good[:labels+3], "truncated in the labels"},
		{"truncated features", good[:len(good)-sha256.Size-1], "truncated in the features"},
		{"truncated checksum", good[:len(good)-1], "truncated in the checksum"},
		{"trailing byte", append(slices.Clone(good), 0), "data after the checksum"},
		{"flipped feature bit", edit(func(b []byte) []byte { b[len(b)-sha256.Size-2] ^= 1; return b }), "checksum mismatch"},
		{"flipped checksum bit", edit(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), "checksum mismatch"},
		{"more rows claimed", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[nameEnd+8:], 4)
			return b
		}), "truncated"},
		{"fewer rows claimed", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[nameEnd+8:], 2)
			return b
		}), "checksum mismatch"},
		{"label out of range", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[labels:], 3)
			return reseal(b)
		}), "label 3"},
		{"nan feature", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[labels+12:], math.Float32bits(float32(math.NaN())))
			return reseal(b)
		}), "NaN"},
		{"one class", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[nameEnd:], 1)
			return reseal(b)
		}), "1 classes"},
		{"huge header", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[nameEnd+4:], 1<<20)
			binary.LittleEndian.PutUint32(b[nameEnd+8:], 1<<8)
			return b
		}), "truncated in the labels"},
		{"too many values", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[nameEnd+4:], 1<<20)
			binary.LittleEndian.PutUint32(b[nameEnd+8:], 1<<20)
			return b
		}), "rows of"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Read(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read = %v, %v; want an error containing %q", s, err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

// Every proper prefix and every single-bit corruption of a file is refused.
func TestReadRefusesEveryPrefixAndBitFlip(t *testing.T) {
	good := encode(t, small())
	for n := range len(good) {
		if _, err := Read(bytes.NewReader(good[:n])); err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
	for i := range len(good) {
		for bit := range 8 {
			b := slices.Clone(good)
			b[i] ^= 1 << bit
			if _, err := Read(bytes.NewReader(b)); err == nil {
				t.Fatalf("flip of byte %d bit %d accepted", i, bit)
			}
		}
	}
}

func TestWriteRefusesInvalid(t *testing.T) {
	s := small()
	s.Y[0] = 7
	if err := s.Write(&bytes.Buffer{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Write of invalid set = %v, want ErrInvalid", err)
	}
	s = small()
	s.Name = strings.Repeat("n", 256)
	if err := s.Write(&bytes.Buffer{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Write with a long name = %v, want ErrInvalid", err)
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	if err := small().Write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(fileMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Read(bytes.NewReader(b))
		if err == nil {
			if err := s.Validate(); err != nil {
				t.Fatalf("Read accepted an invalid set: %v", err)
			}
		}
	})
}
