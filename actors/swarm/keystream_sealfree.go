//go:build sealfree

package swarm

import (
	"crypto/cipher"
	"unsafe"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Sealfree is true in this build, `go build -tags sealfree ./cmd/hearth`,
// which measures what sealing costs a swarm round: a model is streamed
// straight from its memory where it would be encrypted into a buffer
// (passThrough; a model whose tensors are not one array is copied), an
// update's chunks go straight to the aggregator's sum where they would be
// decrypted into a buffer, and a holder copies the model's chunks where it
// would decrypt them. Nothing else changes, so a round of this build next
// to one of the real build, in one sitting, is sealing's cost by wall
// time. Its models travel in the clear: the hearth binary built so runs
// nothing but bench (see cmd/hearth).
const Sealfree = true

// copyStream stands in for the keystream: it copies.
type copyStream struct{}

func (copyStream) XORKeyStream(dst, src []byte) { copy(dst, src) }

// ctrAt returns the copying stand-in for the key's keystream.
func ctrAt([]byte, int64) (cipher.Stream, error) { return copyStream{}, nil }

// passThrough is m's values as bytes, in place, when its tensors lie one
// after another in one array on a little-endian host; else nil.
func passThrough(m *model.Model) []byte {
	if !littleEndian {
		return nil
	}
	var base unsafe.Pointer
	n := 0
	for _, t := range m.Tensors {
		if len(t.Data) == 0 {
			continue
		}
		p := unsafe.Pointer(&t.Data[0])
		if base == nil {
			base = p
		} else if uintptr(p) != uintptr(base)+uintptr(4*n) {
			return nil
		}
		n += len(t.Data)
	}
	if base == nil {
		return nil
	}
	return unsafe.Slice((*byte)(base), 4*n)
}
