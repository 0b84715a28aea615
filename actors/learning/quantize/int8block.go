package quantize

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// Int8Block is the blockwise 8-bit codec int8-blockB: per block of B values
// one float32 scale and one int8 code a value (layout, scale rule and error
// bound in the package doc). The zero value is int8-block64; NewInt8Block
// makes the others.
type Int8Block struct {
	block int // 0 means DefaultBlock
}

var _ Codec = Int8Block{}

// MaxInt8Block is the largest magnitude the int8 codecs encode:
// 127 * (2^17-1) * 2^104, about 3.376e38, so that 127 times the largest
// scale is still a finite float32.
const MaxInt8Block float32 = 127 * maxScale

// maxScale is the largest scale an int8 block carries: (2^17-1) * 2^104,
// the largest float32 of 17 significant bits whose product with 127 is
// finite.
const maxScale = (1<<17 - 1) * 0x1p104

// NewInt8Block returns the blockwise 8-bit codec with blocks of size
// values, a power of two from MinBlock to MaxBlock.
func NewInt8Block(size int) (Int8Block, error) {
	if size < MinBlock || size > MaxBlock || size&(size-1) != 0 {
		return Int8Block{}, fmt.Errorf("%w: block size %d is not a power of two from %d to %d", ErrUnknownCodec, size, MinBlock, MaxBlock)
	}
	if size == DefaultBlock {
		return Int8Block{}, nil // one value per codec, so that == compares codecs
	}
	return Int8Block{block: size}, nil
}

// BlockSize returns B, the number of values that share a scale.
func (c Int8Block) BlockSize() int {
	if c.block == 0 {
		return DefaultBlock
	}
	return c.block
}

// Name returns "int8-blockB", e.g. "int8-block64".
func (c Int8Block) Name() string { return int8BlockPrefix + strconv.Itoa(c.BlockSize()) }

// EncodedSize returns n + 4*ceil(n/B).
func (c Int8Block) EncodedSize(n int) int {
	b := c.BlockSize()
	return n + 4*((n+b-1)/b)
}

// DecodedLen returns the number of values in an encoded chunk of size
// bytes: whole blocks of 4+B bytes, then at most one shorter block of 4+r
// bytes (0 < r < B). Any other size is malformed.
func (c Int8Block) DecodedLen(size int) (int, error) {
	b := c.BlockSize()
	if size < 0 {
		return 0, fmt.Errorf("%w: %s: negative size %d", ErrMalformed, c.Name(), size)
	}
	full, rem := size/(4+b), size%(4+b)
	switch {
	case rem == 0:
		return full * b, nil
	case rem > 4:
		return full*b + rem - 4, nil
	default:
		return 0, fmt.Errorf("%w: %s: %d bytes end in a block of %d bytes, which holds no value after its 4-byte scale",
			ErrMalformed, c.Name(), size, rem)
	}
}

// roundMagic is 1.5 * 2^52: adding it to a float64 t with |t| < 2^51 rounds
// t to an integer (to nearest, ties to even), which then sits in the low
// bits of the sum's encoding as two's complement.
const roundMagic = 0x1.8p52

// Encode appends the blocks of src. A NaN or an infinity is refused with
// ErrNonFinite, a magnitude above MaxInt8Block with ErrRange; either error
// names the value's index in src and returns dst unchanged.
func (c Int8Block) Encode(dst []byte, src []float32) ([]byte, error) {
	b := c.BlockSize()
	start := len(dst)
	dst = grow(dst, c.EncodedSize(len(src)))
	out := dst[start:]
	for k := 0; k < len(src); k += b {
		blk := src[k:min(k+b, len(src))]
		// Magnitudes compare as the integers of their bits, NaNs and
		// infinities above every finite value.
		top := uint32(0)
		for _, x := range blk {
			top = max(top, math.Float32bits(x)&^0x80000000)
		}
		if top > math.Float32bits(MaxInt8Block) {
			return dst[:start], c.refuse(src, k)
		}
		scale := scaleFor(math.Float32frombits(top))
		binary.LittleEndian.PutUint32(out, math.Float32bits(scale))
		codes := out[4 : 4+len(blk)]
		if scale == 0 {
			clear(codes)
		} else {
			inv := 1 / float64(scale)
			blk := blk[:len(codes)] // lets the compiler drop the bounds checks
			// Fused into one FMA or not, the sum rounds x*inv to the
			// nearest integer once.
			for i := range codes {
				codes[i] = byte(math.Float64bits(float64(blk[i])*inv + roundMagic))
			}
		}
		out = out[4+len(blk):]
	}
	return dst, nil
}

// refuse returns the error for the first value from src[from] on that the
// int8 codec cannot encode.
func (c Int8Block) refuse(src []float32, from int) error {
	for i := from; i < len(src); i++ {
		switch x := src[i]; {
		case math.IsNaN(float64(x)) || math.IsInf(float64(x), 0):
			return fmt.Errorf("%w: %s: value %d is %v", ErrNonFinite, c.Name(), i, x)
		case x > MaxInt8Block || x < -MaxInt8Block:
			return fmt.Errorf("%w: %s: value %d is %v, above %v", ErrRange, c.Name(), i, x, MaxInt8Block)
		}
	}
	return fmt.Errorf("%w: %s: block from value %d", ErrRange, c.Name(), from) // not reached: Encode found one
}

// scaleFor returns the scale of a block whose largest magnitude is top
// (finite, at most MaxInt8Block): the smallest float32 of the form M*2^e,
// 0 <= M < 2^17, e >= -149, that is at least top/127.
//
// The float64 quotient d is within 2^-53 of top/127 and so on the same side
// of every such float32 (they lie further apart than that from any top/127
// that is not one of them), and rounding d up to 17 significant bits gives
// it; below 2^-132 the step is float32's smallest subnormal instead.
func scaleFor(top float32) float32 {
	d := float64(top) / 127
	if d < 0x1p-132 {
		return float32(math.Ceil(d*0x1p149) * 0x1p-149)
	}
	const drop = 1<<(52-16) - 1 // float64 mantissa bits below the 17th significant one
	return float32(math.Float64frombits((math.Float64bits(d) + drop) &^ drop))
}

// Decode appends the values of the blocks in src. A size that DecodedLen
// refuses, a scale that the encoder never writes (negative, -0, not finite,
// above the largest, more than 17 significant bits), a zero scale with a
// nonzero code, or a code of -128 is malformed.
func (c Int8Block) Decode(dst []float32, src []byte) ([]float32, error) {
	n, err := c.DecodedLen(len(src))
	if err != nil {
		return dst, err
	}
	b := c.BlockSize()
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	for k := 0; len(src) > 0; k++ {
		m := min(b, len(src)-4)
		bitsScale := binary.LittleEndian.Uint32(src)
		codes := src[4 : 4+m]
		if err := checkScale(bitsScale); err != nil {
			return dst[:start], fmt.Errorf("%w: %s: block %d: %w", ErrMalformed, c.Name(), k, err)
		}
		scale := math.Float32frombits(bitsScale)
		switch has128, set := scanCodes(codes); {
		case has128:
			return dst[:start], fmt.Errorf("%w: %s: block %d: code -128 (codes are -127..127)", ErrMalformed, c.Name(), k)
		case scale == 0 && set:
			return dst[:start], fmt.Errorf("%w: %s: block %d: nonzero code under a zero scale", ErrMalformed, c.Name(), k)
		}
		o := out[:len(codes)]
		for i := range o {
			o[i] = float32(int8(codes[i])) * scale
		}
		src, out = src[4+m:], out[m:]
	}
	return dst, nil
}

// scanCodes reports whether codes holds the byte 0x80 (-128) and whether it
// holds any nonzero byte, eight bytes at a time.
func scanCodes(codes []byte) (has128, set bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	var or, found uint64
	for len(codes) >= 8 {
		w := binary.LittleEndian.Uint64(codes)
		or |= w
		v := w ^ highs                   // a byte of 0x80 becomes 0 ...
		found |= (v - ones) &^ v & highs // ... and a zero byte sets its high bit here
		codes = codes[8:]
	}
	for _, b := range codes {
		or |= uint64(b)
		if b == 0x80 {
			found = 1
		}
	}
	return found != 0, or != 0
}

// checkScale says why the bits of a block's scale are not a scale that
// Encode writes, or returns nil.
func checkScale(s uint32) error {
	switch {
	case s == 0:
		return nil
	case s&0x80000000 != 0:
		return fmt.Errorf("negative scale %#08x", s)
	case s >= f32Inf:
		return fmt.Errorf("scale %#08x is not finite", s)
	case s > math.Float32bits(maxScale):
		return fmt.Errorf("scale %v above the largest, %v", math.Float32frombits(s), float32(maxScale))
	}
	mant, exp := s&0x7fffff, s>>23
	sig := 24 // significant bits of a normal float32
	if exp == 0 {
		sig = bits.Len32(mant)
	}
	if drop := sig - 17; drop > 0 && s&(1<<drop-1) != 0 {
		return fmt.Errorf("scale %#08x has more than 17 significant bits", s)
	}
	return nil
}
