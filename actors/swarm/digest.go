package swarm

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Digest is a model's SHA-256 over each tensor's name, shape and float32
// values in order: the same at every site that holds the same model,
// whatever the wire encoding was.
func Digest(m *model.Model) []byte {
	d := newDigester(m)
	for _, t := range m.Tensors {
		if littleEndian {
			d.write(bytesOf(t.Data)) // the values' memory is their little-endian bytes
			continue
		}
		var b [4]byte
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			d.write(b[:])
		}
	}
	return d.sum()
}

// digester computes Digest from a model's values as they come, in order:
// the stream's little-endian bytes, tensor after tensor, in pieces of any
// size. Each tensor's name and shape go into the hash before its first
// value.
type digester struct {
	h       hash.Hash
	layout  *model.Model // names and shapes
	tensor  int          // the tensor the next byte belongs to
	written int64        // bytes of it hashed so far
	headed  bool         // its name and shape were hashed
}

func newDigester(layout *model.Model) *digester {
	return &digester{h: sha256.New(), layout: layout}
}

// header hashes tensor i's name and shape.
func (d *digester) header(i int) {
	t := d.layout.Tensors[i]
	var b [8]byte
	d.h.Write([]byte(t.Name))
	d.h.Write([]byte{0})
	binary.BigEndian.PutUint64(b[:], uint64(len(t.Shape)))
	d.h.Write(b[:])
	for _, n := range t.Shape {
		binary.BigEndian.PutUint64(b[:], uint64(n))
		d.h.Write(b[:])
	}
}

// write hashes the model's next bytes.
func (d *digester) write(p []byte) {
	for len(p) > 0 && d.tensor < len(d.layout.Tensors) {
		if !d.headed {
			d.header(d.tensor)
			d.headed = true
		}
		n := min(int64(len(p)), 4*int64(len(d.layout.Tensors[d.tensor].Data))-d.written)
		d.h.Write(p[:n])
		p, d.written = p[n:], d.written+n
		if d.written == 4*int64(len(d.layout.Tensors[d.tensor].Data)) {
			d.tensor, d.written, d.headed = d.tensor+1, 0, false
		}
	}
}

// sum is the digest, once every value was written (the tensors left
// without values are empty ones, whose name and shape still count).
func (d *digester) sum() []byte {
	for ; d.tensor < len(d.layout.Tensors); d.tensor, d.headed = d.tensor+1, false {
		if !d.headed {
			d.header(d.tensor)
		}
	}
	return d.h.Sum(nil)
}
