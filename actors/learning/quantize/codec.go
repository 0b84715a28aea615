package quantize

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Codec turns chunks of float32 values into bytes and back. Every method is
// safe for concurrent use; a Codec holds no state between calls.
type Codec interface {
	// Name is the codec's canonical name, the one ByName takes.
	Name() string
	// EncodedSize is the length in bytes of the encoding of n values
	// (n >= 0).
	EncodedSize(n int) int
	// DecodedLen is the number of values that an encoded chunk of size
	// bytes holds, or an error wrapping ErrMalformed when no chunk has
	// that size.
	DecodedLen(size int) (int, error)
	// Encode appends the encoding of src to dst and returns the extended
	// slice; it allocates only when dst lacks capacity for
	// EncodedSize(len(src)) more bytes. On error it returns dst unchanged.
	Encode(dst []byte, src []float32) ([]byte, error)
	// Decode appends the values of one encoded chunk src to dst and returns
	// the extended slice; it allocates only when dst lacks capacity for
	// them. Malformed input returns dst unchanged and an error wrapping
	// ErrMalformed.
	Decode(dst []float32, src []byte) ([]float32, error)
}

// Reasons a codec refuses. The list only grows.
var (
	// ErrUnknownCodec: ByName was given a name that is no codec's.
	ErrUnknownCodec = errors.New("unknown codec")
	// ErrNonFinite: an int8 codec was asked to encode a NaN or an infinity.
	ErrNonFinite = errors.New("value not finite")
	// ErrRange: an int8 codec was asked to encode a magnitude above
	// MaxInt8Block.
	ErrRange = errors.New("value out of the codec's range")
	// ErrMalformed: bytes given to Decode are not an encoded chunk.
	ErrMalformed = errors.New("malformed encoded chunk")
)

// Canonical codec names.
const (
	NameFloat32     = "float32"
	NameFloat16     = "float16"
	NameBFloat16    = "bfloat16"
	NameInt8Block64 = "int8-block64"
)

// int8BlockPrefix starts the name of every blockwise 8-bit codec; the block
// size follows in decimal.
const int8BlockPrefix = "int8-block"

// Block sizes of the blockwise 8-bit codecs: the powers of two from
// MinBlock to MaxBlock (bitsandbytes' blockwise sizes). DefaultBlock is the
// one NameInt8Block64 names.
const (
	MinBlock     = 64
	MaxBlock     = 4096
	DefaultBlock = 64
)

// Names lists the canonical name of every codec ByName knows, the identity
// first.
func Names() []string {
	names := []string{NameFloat32, NameFloat16, NameBFloat16}
	for b := MinBlock; b <= MaxBlock; b *= 2 {
		names = append(names, int8BlockPrefix+strconv.Itoa(b))
	}
	return names
}

// ByName returns the codec of a canonical name: "float32", "float16",
// "bfloat16" or "int8-blockB" for B a power of two from MinBlock to
// MaxBlock, written in decimal without leading zeros. Any other name,
// including a non-canonical spelling of a valid one, is refused with
// ErrUnknownCodec.
func ByName(name string) (Codec, error) {
	switch name {
	case NameFloat32:
		return Float32{}, nil
	case NameFloat16:
		return Float16{}, nil
	case NameBFloat16:
		return BFloat16{}, nil
	}
	if digits, ok := strings.CutPrefix(name, int8BlockPrefix); ok {
		if b, err := strconv.Atoi(digits); err == nil && strconv.Itoa(b) == digits {
			if c, err := NewInt8Block(b); err == nil {
				return c, nil
			}
		}
	}
	return nil, fmt.Errorf("%w %s (known: %s)", ErrUnknownCodec, boundedQuote(name), strings.Join(Names(), ", "))
}

// boundedQuote quotes an attacker-chosen string for an error message,
// truncated so that a long one cannot flood a log.
func boundedQuote(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// grow returns dst extended by n elements, reallocating only when its
// capacity is short; the new elements' contents are unspecified.
func grow[E any](dst []E, n int) []E {
	return slices.Grow(dst, n)[:len(dst)+n]
}
