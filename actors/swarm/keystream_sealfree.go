//go:build sealfree

package swarm

import "crypto/cipher"

// Sealfree is true in this build, `go build -tags sealfree ./cmd/hearth`,
// which measures what sealing costs a swarm round: every stream of a model
// is copied where it would be encrypted or decrypted, and nothing else
// changes, so a round of this build next to one of the real build, in one
// sitting, is sealing's cost by wall time. Its models travel in the clear:
// the hearth binary built so runs nothing but bench (see cmd/hearth).
const Sealfree = true

// copyStream stands in for the keystream: it copies.
type copyStream struct{}

func (copyStream) XORKeyStream(dst, src []byte) { copy(dst, src) }

// ctrAt returns the copying stand-in for the key's keystream.
func ctrAt([]byte, int64) (cipher.Stream, error) { return copyStream{}, nil }
