package swarm

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/crypto/chacha20"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Models too large for one envelope travel site to site as streams
// (bus/stream): chunks under a manifest of their SHA-256, the manifest in
// the sealed envelope that offers the stream. The chunks are encrypted
// with ChaCha20 under a fresh key that travels in the same sealed body, so
// the hub relays ciphertext only; their integrity is the signed manifest's
// hashes, checked before a chunk is decrypted.

// StreamKeySize is the size of a stream's key.
const StreamKeySize = chacha20.KeySize

// EncryptModel returns m's float32 values (little-endian, tensor after
// tensor) encrypted under a fresh key, and the key.
func EncryptModel(m *model.Model) (data, key []byte, err error) {
	key = make([]byte, StreamKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	data = make([]byte, m.Bytes())
	off := 0
	for _, t := range m.Tensors {
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(data[off:], math.Float32bits(v))
			off += 4
		}
	}
	c, err := chacha20.NewUnauthenticatedCipher(key, make([]byte, chacha20.NonceSize))
	if err != nil {
		return nil, nil, err
	}
	c.XORKeyStream(data, data)
	return data, key, nil
}

// ModelSink decrypts an encrypted model's chunks into a model of a known
// layout (a stream.Sink): each chunk is decrypted at its offset, so chunks
// may come in any order, each once.
type ModelSink struct {
	key   []byte
	model *model.Model
	// starts[i] is tensor i's first byte in the stream.
	starts []int64
	total  int64
}

// NewModelSink makes a sink for a model shaped like layout (whose values
// it does not read), encrypted under key.
func NewModelSink(layout *model.Model, key []byte) (*ModelSink, error) {
	if len(key) != StreamKeySize {
		return nil, fmt.Errorf("stream key of %d bytes, want %d", len(key), StreamKeySize)
	}
	s := &ModelSink{key: key, model: &model.Model{Tensors: make([]model.Tensor, len(layout.Tensors))}}
	for i, t := range layout.Tensors {
		s.starts = append(s.starts, s.total)
		s.model.Tensors[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: make([]float32, len(t.Data))}
		s.total += int64(4 * len(t.Data))
	}
	return s, nil
}

// Size is the stream's size in bytes.
func (s *ModelSink) Size() int64 { return s.total }

// Model is the decrypted model, complete once every chunk was written.
func (s *ModelSink) Model() *model.Model { return s.model }

// WriteChunk decrypts one chunk into the model. Offsets must be multiples
// of 64 bytes (ChaCha20's block), as bus/stream's chunk sizes are.
func (s *ModelSink) WriteChunk(_ int, offset int64, data []byte) error {
	switch {
	case offset < 0 || offset+int64(len(data)) > s.total:
		return fmt.Errorf("chunk of %d bytes at %d does not fit a %d-byte model", len(data), offset, s.total)
	case offset%64 != 0 || len(data)%4 != 0:
		return errors.New("chunk not aligned to the cipher's blocks")
	}
	c, err := chacha20.NewUnauthenticatedCipher(s.key, make([]byte, chacha20.NonceSize))
	if err != nil {
		return err
	}
	c.SetCounter(uint32(offset / 64))
	plain := make([]byte, len(data))
	c.XORKeyStream(plain, data)
	// Walk the tensors the chunk spans.
	for i, start := range s.starts {
		t := s.model.Tensors[i].Data
		end := start + int64(4*len(t))
		lo, hi := max(offset, start), min(offset+int64(len(data)), end)
		for b := lo; b < hi; b += 4 {
			t[(b-start)/4] = math.Float32frombits(binary.LittleEndian.Uint32(plain[b-offset:]))
		}
	}
	return nil
}
