package swarm

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/stream"
)

// Models too large for one envelope travel site to site as streams
// (bus/stream): chunks under a manifest of their SHA-256, the manifest in
// the sealed envelope that offers the stream. The chunks are encrypted
// with AES-256 in counter mode (hardware-accelerated where Go has it:
// several GB/s, where the pure-Go ChaCha20 of x/crypto took half a swarm
// round's time) under a fresh key that travels in the same sealed body, so
// the hub relays ciphertext only; their integrity is the signed manifest's
// hashes, checked before a chunk is decrypted. The key is used for one
// stream only, so the counter starts at zero.

// StreamKeySize is the size of a stream's key (AES-256).
const StreamKeySize = 32

// CheckStreamKey refuses a stream key of the wrong size, and (but in the
// sealfree build) one of zeros: no sender that drew its key has one, and
// the sealfree build sends it to mark its models, which are not encrypted,
// so that a site of that build is refused by the real ones.
func CheckStreamKey(key []byte) error {
	if len(key) != StreamKeySize {
		return fmt.Errorf("stream key of %d bytes, want %d", len(key), StreamKeySize)
	}
	if !Sealfree && !slices.ContainsFunc(key, func(b byte) bool { return b != 0 }) {
		return errors.New("stream key of zeros: the sender drew no key (a sealfree build's, which does not encrypt)")
	}
	return nil
}

// EncryptModel returns m's float32 values (little-endian, tensor after
// tensor) encrypted under a fresh key, and the key. data is the buffer
// Recycle was last handed, when that has m's size: hand data to Recycle
// once nothing reads it any more.
func EncryptModel(m *model.Model) (data, key []byte, err error) {
	key = make([]byte, StreamKeySize)
	if !Sealfree { // the sealfree build's key stays zeros: see CheckStreamKey
		if _, err := rand.Read(key); err != nil {
			return nil, nil, err
		}
	}
	if data := passThrough(m); data != nil { // the sealfree build only
		return data, key, nil
	}
	data = ciphertexts.take(m.Bytes())
	c, err := ctrAt(key, 0)
	if err != nil {
		return nil, nil, err
	}
	off := 0
	for _, t := range m.Tensors {
		if littleEndian { // encrypted straight from the tensor's memory: one pass
			n := 4 * len(t.Data)
			c.XORKeyStream(data[off:off+n], bytesOf(t.Data))
			off += n
			continue
		}
		start := off
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(data[off:], math.Float32bits(v))
			off += 4
		}
		c.XORKeyStream(data[start:off], data[start:off])
	}
	return data, key, nil
}

// ciphertexts keeps the buffer of one encrypted model whose stream has
// ended, for the next EncryptModel of the same size: a site encrypts a
// model of the same size every round (its update, or the round's model
// when it aggregates), and a fresh buffer of a large model costs far more
// than the encryption into a warm one (the kernel faults and zeroes every
// page on first touch, and on a virtual machine that hands freed memory
// back to its host, the host faults it in again too: see model.Spare).
// EncryptModel writes every byte of it, so it is not cleared.
var ciphertexts recycler

// Recycle hands back data that EncryptModel returned once nothing reads
// it any more (the stream or cast that sent it has ended), for the next
// EncryptModel of its size; data must not be used after. It keeps one
// buffer, the last handed back.
func Recycle(data []byte) {
	if !Sealfree { // whose data may be the model's own memory
		ciphertexts.put(data)
	}
}

// recycler keeps one byte buffer.
type recycler struct {
	mu   sync.Mutex
	kept []byte
}

// take returns the kept buffer if it has n bytes, else a new one.
func (r *recycler) take(n int) []byte {
	r.mu.Lock()
	b := r.kept
	if len(b) == n {
		r.kept = nil
	}
	r.mu.Unlock()
	if len(b) == n {
		return b
	}
	return make([]byte, n)
}

func (r *recycler) put(b []byte) {
	if len(b) == 0 {
		return
	}
	r.mu.Lock()
	r.kept = b
	r.mu.Unlock()
}

// ModelSink decrypts an encrypted model's chunks into a model of a known
// layout (a stream.Sink): each chunk is decrypted at its offset, so chunks
// may come in any order, each once.
//
// Chunks that come in order (as bus/stream delivers them) are also checked
// and hashed as they are decrypted, while they are in the cache: Checked
// then has the model's digest and finiteness without another pass over it
// once the stream ends.
type ModelSink struct {
	key   []byte
	model *model.Model
	// starts[i] is tensor i's first byte in the stream.
	starts []int64
	total  int64
	spent  sealSpent // decrypting

	digest    *digester // nil once a chunk came out of order
	inOrder   int64     // bytes decrypted in order from the start
	nonFinite string    // the first tensor found holding a NaN or an infinity
}

// Spent is the time WriteChunk spent decrypting, for the round's figures.
func (s *ModelSink) Spent() SealTime { return s.spent.load() }

// NewModelSink makes a sink for a model shaped like layout (whose values
// it does not read), encrypted under key.
func NewModelSink(layout *model.Model, key []byte) (*ModelSink, error) {
	if err := CheckStreamKey(key); err != nil {
		return nil, err
	}
	s := &ModelSink{key: key, model: &model.Model{Tensors: make([]model.Tensor, len(layout.Tensors))}}
	all := make([]float32, layout.NumParams()) // one array: the aggregator takes it without a copy
	off := 0
	for i, t := range layout.Tensors {
		s.starts = append(s.starts, s.total)
		n := len(t.Data)
		// Capacity to the array's end: that is how the aggregator knows
		// the tensors share it.
		s.model.Tensors[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: all[off : off+n]}
		off += n
		s.total += int64(4 * n)
	}
	s.digest = newDigester(s.model)
	return s, nil
}

// Size is the stream's size in bytes.
func (s *ModelSink) Size() int64 { return s.total }

// Model is the decrypted model, complete once every chunk was written.
func (s *ModelSink) Model() *model.Model { return s.model }

// WriteChunk decrypts one chunk into the model. Offsets must be multiples
// of 64 bytes, as bus/stream's chunk sizes are.
func (s *ModelSink) WriteChunk(_ int, offset int64, data []byte) error {
	switch {
	case offset < 0 || int64(len(data)) > s.total-offset: // no overflow
		return fmt.Errorf("chunk of %d bytes at %d does not fit a %d-byte model", len(data), offset, s.total)
	case offset%64 != 0 || len(data)%4 != 0:
		return errors.New("chunk not aligned to the cipher's blocks")
	}
	timer := StartSeal()
	c, err := ctrAt(s.key, offset)
	if err != nil {
		timer.Stop()
		return err
	}
	// Walk the tensors the chunk spans, decrypting into each in turn (the
	// keystream goes on across them).
	for i, start := range s.starts {
		t := s.model.Tensors[i].Data
		end := start + int64(4*len(t))
		lo, hi := max(offset, start), min(offset+int64(len(data)), end)
		if lo >= hi {
			continue
		}
		src := data[lo-offset : hi-offset]
		values := t[(lo-start)/4 : (hi-start)/4]
		plain := bytesOf(values)
		if !littleEndian {
			plain = make([]byte, len(src))
		}
		c.XORKeyStream(plain, src)
		if !littleEndian {
			for b := 0; b < len(plain); b += 4 {
				values[b/4] = math.Float32frombits(binary.LittleEndian.Uint32(plain[b:]))
			}
		}
		// Spent counts the decryption only, not the checks that follow.
		s.spent.add(timer.Stop())
		if s.digest != nil && lo == s.inOrder {
			s.digest.write(plain)
			s.inOrder = hi
			if s.nonFinite == "" && model.FirstNonFinite(values) >= 0 {
				s.nonFinite = s.model.Tensors[i].Name
			}
		} else {
			s.digest = nil
		}
		timer = StartSeal()
	}
	timer.Stop()
	return nil
}

// Checked is the model's digest (Digest) and, when a value of it is NaN or
// infinite, the first tensor that holds one; complete once every chunk was
// written. When the chunks came in order this is what WriteChunk found as
// it went; otherwise it is computed now.
func (s *ModelSink) Checked() (digest []byte, nonFinite string) {
	if s.digest == nil || s.inOrder != s.total {
		for _, t := range s.model.Tensors {
			if model.FirstNonFinite(t.Data) >= 0 {
				return Digest(s.model), t.Name
			}
		}
		return Digest(s.model), ""
	}
	return s.digest.sum(), s.nonFinite
}

// littleEndian: float32 values in memory are the stream's bytes.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// bytesOf is the memory of v as bytes (no copy).
func bytesOf(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// DecryptingSink decrypts an encrypted model stream's chunks and hands
// each, decrypted, to the next sink (an aggregator's sum, say), so that the
// model is never held whole: one chunk buffer is its memory. The stream
// package delivers a stream's chunks in order, one call at a time, which
// the one buffer relies on.
type DecryptingSink struct {
	key   []byte
	next  stream.Sink
	buf   []byte
	spent sealSpent // decrypting
}

// NewDecryptingSink makes a sink that decrypts chunks under key into next.
func NewDecryptingSink(key []byte, next stream.Sink) (*DecryptingSink, error) {
	if err := CheckStreamKey(key); err != nil {
		return nil, err
	}
	if next == nil {
		return nil, errors.New("no sink to decrypt into")
	}
	return &DecryptingSink{key: key, next: next}, nil
}

// WriteChunk decrypts chunk index (at offset, a multiple of 64 bytes, as
// bus/stream's chunk sizes are) and writes it to the next sink.
func (s *DecryptingSink) WriteChunk(index int, offset int64, data []byte) error {
	if offset < 0 || offset%64 != 0 {
		return errors.New("chunk not aligned to the cipher's blocks")
	}
	if Sealfree { // nothing to decrypt, so nothing to copy
		return s.next.WriteChunk(index, offset, data)
	}
	if cap(s.buf) < len(data) {
		s.buf = make([]byte, len(data))
	}
	plain := s.buf[:len(data)]
	timer := StartSeal()
	c, err := ctrAt(s.key, offset)
	if err == nil {
		c.XORKeyStream(plain, data)
	}
	s.spent.add(timer.Stop())
	if err != nil {
		return err
	}
	return s.next.WriteChunk(index, offset, plain)
}

// Spent is the time WriteChunk spent decrypting, for the round's figures.
func (s *DecryptingSink) Spent() SealTime { return s.spent.load() }
