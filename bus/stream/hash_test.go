package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestHashesAreTheStandardOnes pins both chunk hash functions to published
// test vectors, so a manifest made here checks out anywhere.
func TestHashesAreTheStandardOnes(t *testing.T) {
	cases := []struct {
		hash  Hash
		input string
		want  string
	}{
		// BLAKE3's official test vector for the empty input.
		{BLAKE3, "", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		// FIPS 180-2, appendix B.1.
		{SHA256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tc := range cases {
		got := sum(tc.hash, []byte(tc.input))
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("%v(%q) = %x, want %s", tc.hash, tc.input, got, tc.want)
		}
	}
	if sha := sha256.Sum256([]byte("abc")); sum(BLAKE3, []byte("abc")) == sha {
		t.Error("BLAKE3 and SHA-256 agree: sum ignores its hash argument")
	}
}

func TestUnknownHashFunctionsAreRefused(t *testing.T) {
	for _, h := range []Hash{0, 3, -1} {
		if err := checkHash(h); err == nil {
			t.Errorf("hash function %d accepted", h)
		}
	}
}

// BenchmarkChunkHash hashes one default-size chunk with each function;
// SHA-256 is the baseline BLAKE3 is held against.
func BenchmarkChunkHash(b *testing.B) {
	chunk := randomBytes(DefaultChunkBytes, 1)
	for _, h := range []Hash{SHA256, BLAKE3} {
		b.Run(h.String(), func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			for range b.N {
				sum(h, chunk)
			}
		})
	}
}
