package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/hearthfl/hearth/bus"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Size limits.
const (
	// MaxChunkBytes is the largest chunk: a chunk message must fit
	// bus.MaxPayload with room for its header.
	MaxChunkBytes = bus.MaxPayload - 1<<10
	// MaxChunks is the most chunks a stream has. The manifest lists 32
	// bytes a chunk and travels in one envelope (bus.MaxEnvelope): 65536
	// chunks make a manifest of about 2.2 MB.
	MaxChunks = 1 << 16
	// MaxStreamBytes is the largest stream (about 256 GiB): MaxChunks
	// chunks of MaxChunkBytes.
	MaxStreamBytes = int64(MaxChunks) * MaxChunkBytes
)

// idBytes is the length of a stream id before hex encoding.
const idBytes = 16

// layout is a validated manifest's geometry.
type layout struct {
	id         string
	total      int64
	chunkBytes int
	count      int
}

// chunkLen is the length of chunk i.
func (l layout) chunkLen(i int) int {
	if i == l.count-1 {
		return int(l.total - int64(i)*int64(l.chunkBytes))
	}
	return l.chunkBytes
}

// offset is the position of chunk i in the stream.
func (l layout) offset(i int) int64 { return int64(i) * int64(l.chunkBytes) }

// chunkCount is the number of chunks of a stream of total bytes.
func chunkCount(total int64, chunkBytes int) int64 {
	return (total + int64(chunkBytes) - 1) / int64(chunkBytes)
}

// checkManifest validates a manifest received from a peer.
func checkManifest(man *hearthv1.StreamManifest) (layout, error) {
	if man == nil {
		return layout{}, fmt.Errorf("%w: none", ErrManifest)
	}
	l := layout{id: man.GetStreamId(), total: man.GetTotalBytes(), chunkBytes: int(man.GetChunkBytes())}
	switch {
	case !validID(l.id):
		return layout{}, fmt.Errorf("%w: stream id %q is not %d hex bytes", ErrManifest, l.id, idBytes)
	case l.total < 0 || l.total > MaxStreamBytes:
		return layout{}, fmt.Errorf("%w: total bytes %d outside [0, %d]", ErrManifest, l.total, MaxStreamBytes)
	case l.chunkBytes <= 0 || l.chunkBytes > MaxChunkBytes:
		return layout{}, fmt.Errorf("%w: chunk bytes %d outside [1, %d]", ErrManifest, l.chunkBytes, MaxChunkBytes)
	}
	n := chunkCount(l.total, l.chunkBytes)
	if n > MaxChunks {
		return layout{}, fmt.Errorf("%w: %d chunks, more than %d", ErrManifest, n, MaxChunks)
	}
	l.count = int(n)
	if err := checkHash(man.GetChunkHash()); err != nil {
		return layout{}, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	hashes := man.GetChunkHashes()
	if len(hashes) != l.count {
		return layout{}, fmt.Errorf("%w: %d chunk hashes for %d bytes in chunks of %d (want %d)",
			ErrManifest, len(hashes), l.total, l.chunkBytes, l.count)
	}
	for i, h := range hashes {
		if len(h) != hashBytes {
			return layout{}, fmt.Errorf("%w: hash of chunk %d is %d bytes, want %d", ErrManifest, i, len(h), hashBytes)
		}
	}
	return l, nil
}

// planLayout chooses the geometry of an outgoing stream: chunkBytes, grown
// when the stream would otherwise need more than MaxChunks chunks.
func planLayout(id string, size int64, chunkBytes int) (layout, error) {
	if size < 0 || size > MaxStreamBytes {
		return layout{}, fmt.Errorf("%w: size %d outside [0, %d]", ErrManifest, size, MaxStreamBytes)
	}
	if chunkCount(size, chunkBytes) > MaxChunks {
		const align = 4 << 10
		need := (size + MaxChunks - 1) / MaxChunks
		need = (need + align - 1) / align * align
		chunkBytes = int(min(need, MaxChunkBytes))
	}
	return layout{id: id, total: size, chunkBytes: chunkBytes, count: int(chunkCount(size, chunkBytes))}, nil
}

// newStreamID returns a fresh random stream id.
func newStreamID() (string, error) {
	var b [idBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("stream id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validID reports whether id is a stream id as newStreamID makes them: it
// becomes a subject token, so nothing else is accepted.
func validID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validName reports whether a participant name can be written as a subject
// token (bus.Token maps '.'; '~' is not allowed in names).
func validName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || c == '*' || c == '>' || c == '~' {
			return false
		}
	}
	return true
}

// readChunk reads chunk i of src into buf, which must be chunkLen(i) long.
func readChunk(src io.ReaderAt, l layout, i int, buf []byte) error {
	n, err := src.ReadAt(buf, l.offset(i))
	if n == len(buf) {
		return nil // io.EOF at the very end is fine
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read chunk %d: %w", i, err)
}

// hashChunks reads src once and returns the hash (by h) of every chunk.
// Chunks are hashed in parallel (io.ReaderAt allows parallel reads), one
// buffer a worker; when mem is not nil it is src's data, hashed in place.
func hashChunks(ctx context.Context, src io.ReaderAt, mem []byte, l layout, h Hash) ([][]byte, error) {
	hashes := make([][]byte, l.count)
	workers := min(runtime.GOMAXPROCS(0), l.count, 8)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		stop     atomic.Bool
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stop.Store(true)
	}
	for range workers {
		wg.Go(func() {
			var buf []byte
			if mem == nil {
				buf = make([]byte, min(int64(l.chunkBytes), l.total))
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= l.count || stop.Load() {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				var b []byte
				if mem != nil {
					b = mem[l.offset(i):][:l.chunkLen(i)]
				} else {
					b = buf[:l.chunkLen(i)]
					if err := readChunk(src, l, i, b); err != nil {
						fail(err)
						return
					}
				}
				sum := sum(h, b)
				hashes[i] = sum[:]
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return hashes, nil
}
