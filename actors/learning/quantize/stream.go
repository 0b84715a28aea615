package quantize

import (
	"fmt"
	"sync"
	"unsafe"
)

// ChunkValues is how many values one chunk of a quantized stream carries:
// 262,144, a 1 MiB chunk of float32 (bus/stream's default chunk). A
// streamed model under a codec is its values cut into chunks of
// ChunkValues (the last shorter), each encoded on its own, one stream
// chunk each; so chunk i of the stream is values [i*ChunkValues,
// (i+1)*ChunkValues), whatever the codec, and decodes without the others.
const ChunkValues = 1 << 18

// Stream is the geometry of a model of Values values sent under Codec.
type Stream struct {
	Codec  Codec
	Values int
}

// chunks is the number of chunks.
func (s Stream) chunks() int { return (s.Values + ChunkValues - 1) / ChunkValues }

// ChunkBytes is the size of every chunk but the last (the stream's chunk
// size); a stream of one chunk has only its own size.
func (s Stream) ChunkBytes() int { return s.Codec.EncodedSize(min(s.Values, ChunkValues)) }

// Size is the stream's total bytes.
func (s Stream) Size() int64 {
	full := s.Values / ChunkValues
	return int64(full)*int64(s.Codec.EncodedSize(ChunkValues)) + int64(s.Codec.EncodedSize(s.Values-full*ChunkValues))
}

// Encode encodes values (len(values) must be s.Values) into one buffer,
// chunk by chunk: the stream's bytes.
func (s Stream) Encode(values []float32) ([]byte, error) {
	if len(values) != s.Values {
		return nil, fmt.Errorf("quantize: %d values for a stream of %d", len(values), s.Values)
	}
	out := make([]byte, 0, s.Size())
	for c := range s.chunks() {
		var err error
		if out, err = s.Codec.Encode(out, values[c*ChunkValues:min((c+1)*ChunkValues, s.Values)]); err != nil {
			return nil, fmt.Errorf("quantize: %s: chunk %d: %w", s.Codec.Name(), c, err)
		}
	}
	return out, nil
}

// Check says whether a received stream's manifest (its total and chunk
// size) is this stream's, before any chunk is read.
func (s Stream) Check(total int64, chunkBytes int) error {
	if total != s.Size() || (s.chunks() > 1 && chunkBytes != s.ChunkBytes()) {
		return fmt.Errorf("quantize: a %s stream of %d bytes in chunks of %d; %d values make %d bytes in chunks of %d",
			s.Codec.Name(), total, chunkBytes, s.Values, s.Size(), s.ChunkBytes())
	}
	return nil
}

// ChunkWriter takes a stream's chunks (bus/stream.Sink is one).
type ChunkWriter interface {
	WriteChunk(index int, offset int64, data []byte) error
}

// Sink decodes each chunk of the stream and hands its values to out as the
// float32 stream of the same model would have them: chunk i at byte offset
// 4*i*ChunkValues, little-endian. A chunk that does not decode to its
// values fails the stream. Chunks may come from several goroutines.
func (s Stream) Sink(out ChunkWriter) ChunkWriter {
	return &decoder{s: s, out: out, pool: sync.Pool{New: func() any { b := make([]float32, 0, ChunkValues); return &b }}}
}

type decoder struct {
	s    Stream
	out  ChunkWriter
	pool sync.Pool
}

func (d *decoder) WriteChunk(index int, _ int64, data []byte) error {
	if index < 0 || index >= d.s.chunks() {
		return fmt.Errorf("quantize: chunk %d of a %d-chunk stream", index, d.s.chunks())
	}
	want := min(ChunkValues, d.s.Values-index*ChunkValues)
	buf := d.pool.Get().(*[]float32)
	defer d.pool.Put(buf)
	values, err := d.s.Codec.Decode((*buf)[:0], data)
	if err != nil {
		return fmt.Errorf("quantize: chunk %d: %w", index, err)
	}
	if len(values) != want {
		return fmt.Errorf("quantize: chunk %d decodes to %d values, want %d", index, len(values), want)
	}
	*buf = values
	return d.out.WriteChunk(index, 4*int64(index)*ChunkValues, bytesOf(values))
}

// bytesOf is the memory of v as bytes (no copy); the float32 stream's bytes
// on a little-endian host, which is all model.Flat runs on.
func bytesOf(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
