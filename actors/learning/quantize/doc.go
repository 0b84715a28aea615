// Package quantize holds the codecs that shrink a model update's float32
// values for the wire and restore them at the other end: float32 (the
// identity), float16, bfloat16 and blockwise 8-bit (int8-blockB). The
// aggregator sums decoded values in full precision; a codec only decides
// what crosses the wire.
//
// # Use
//
// A streamed model travels in chunks (bus/stream's default chunk is 1 MiB of
// float32, 262,144 values), and every codec works chunk by chunk: Encode
// turns one chunk of values into bytes that carry everything needed to
// decode them (an int8 chunk carries its own block scales), and Decode turns
// exactly those bytes back, with no state shared between chunks or calls.
// Which codec a stream uses is named out of band, in the signed message that
// offers it: the encoded bytes carry no codec tag, so float32 stays the
// plain little-endian layout that models already travel in. The number of
// values follows from the encoded length alone (DecodedLen), so a recipient
// can check it against the manifest before it decodes.
//
// Encode and Decode append to dst and return the extended slice, like
// strconv.AppendInt: a caller that reuses a buffer with capacity for
// EncodedSize(n) bytes (or n values) allocates nothing per chunk. Codecs are
// immutable values, safe for concurrent use.
//
// # Byte layouts
//
// All multi-byte fields are little-endian. n is the number of values in the
// chunk; value i of the chunk is x[i].
//
//	float32       4n bytes: x[i] as IEEE 754 binary32 at bytes [4i, 4i+4).
//	              Encoding and decoding copy bits: exact, NaN payloads kept.
//
//	float16       2n bytes: x[i] as IEEE 754 binary16 at bytes [2i, 2i+2).
//	              Encoding rounds to nearest, ties to even, with gradual
//	              underflow into binary16's subnormals (down to 2^-24);
//	              magnitudes from 65520 (the midpoint above 65504, the
//	              largest finite binary16) round to an infinity of the same
//	              sign; infinities stay infinities; a NaN stays a NaN of the
//	              same sign, quiet, with the top 9 bits of its payload.
//	              Decoding is exact: every binary16 value is a float32 value
//	              (a NaN keeps its payload bits).
//
//	bfloat16      2n bytes: the upper 16 bits of x[i]'s binary32 encoding at
//	              bytes [2i, 2i+2). Encoding rounds the lower 16 bits away to
//	              nearest, ties to even (finite values too large round to an
//	              infinity); a NaN stays a NaN of the same sign, quiet, with
//	              the top 6 bits of its payload. Decoding appends 16 zero
//	              bits: exact.
//
//	int8-blockB   blocks of B values (B = 64 by default: "int8-block64"),
//	              the last block holding the remaining 1..B values; block k
//	              covers x[kB] .. x[min(n, kB+B)-1] and is
//	                scale  4 bytes, float32
//	                codes  one byte per value, two's-complement int8 in
//	                       -127..127 (-128 is never written)
//	              so a chunk is 4*ceil(n/B) + n bytes (68 bytes per 64
//	              values, 1.0625 bytes a value) and decodes to code*scale.
//	              The scale is max|x| over the block divided by 127,
//	              rounded up to the next float32 of at most 17 significant
//	              bits (so at most 2^-16 of it above max|x|/127, or 2^-149
//	              for the tiniest blocks, where float32 has fewer bits);
//	              each code is round(x/scale), to nearest; a block of zeros
//	              has scale 0 and codes 0. This is symmetric absmax
//	              quantization, a scale per block as in bitsandbytes'
//	              blockwise 8-bit (which FLARE's quantization filter uses),
//	              but with evenly spaced codes where bitsandbytes maps codes
//	              through its non-linear "dynamic" table.
//
// # Error bounds
//
// float32 is exact. float16 and bfloat16 round to nearest: a finite value
// within range is off by at most half a unit in the last place of the
// format, that is |x|*2^-11 for float16's normal range (2^-14 <= |x| <
// 65520), 2^-25 absolute in its subnormal range, and |x|*2^-8 for bfloat16.
//
// int8-blockB: every decoded value y of a block with scale s satisfies
//
//	|x - y| <= s/2,  s = max|x|/127 rounded up as above,
//
// exactly, with no float32 rounding on top: a scale of at most 17
// significant bits times a code of at most 7 bits is a float32, so code*scale
// is computed without error, and x/scale goes to the nearest code (the
// float64 quotient is too close to the exact one to cross a midpoint that
// the exact one does not sit on). Per value the bound is therefore at most
// max|x|/254 * (1 + 2^-16), or max|x|/254 + 2^-150 for a block whose
// max|x| is below 127*2^-132 (about 2.3e-38).
//
// # Refusals
//
// A quantizer must not turn a NaN or an infinity into a number: the int8
// codecs refuse non-finite values (ErrNonFinite) and magnitudes above
// MaxInt8Block (about 3.376e38, just below float32's largest finite value,
// so that 127*scale stays finite; ErrRange), naming the value's index.
// float16 and bfloat16 carry non-finite values as such.
//
// Decode refuses malformed input with an error wrapping ErrMalformed, never
// a panic: a length that no chunk of the codec has, an int8 block whose
// scale is negative, not finite, above the largest the encoder writes, or
// not of 17 significant bits, a zero scale with a nonzero code, or the code
// -128. A refused decode returns dst unchanged.
package quantize
