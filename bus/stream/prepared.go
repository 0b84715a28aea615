package stream

import (
	"bytes"
	"context"
	"fmt"
)

// Payload is data hashed once, to be offered to several recipients (the
// global model to every site) without hashing it again for each. The data
// must not change while any stream of it is open.
type Payload struct {
	mem        []byte
	hash       Hash
	hashes     [][]byte
	chunkBytes int
}

// Prepare hashes data's chunks for offering it with OfferPayload.
func (m *Manager) Prepare(ctx context.Context, data []byte) (*Payload, error) {
	return m.PrepareChunks(ctx, data, m.cfg.ChunkBytes)
}

// PrepareChunks is Prepare in chunks of chunkBytes (at most MaxChunkBytes)
// instead of the manager's: for data whose chunks mean something on their
// own (a quantized model's, each decoding by itself).
func (m *Manager) PrepareChunks(ctx context.Context, data []byte, chunkBytes int) (*Payload, error) {
	if err := checkChunkBytes(chunkBytes); err != nil {
		return nil, err
	}
	l, err := planLayout("prepared", int64(len(data)), chunkBytes)
	if err != nil {
		return nil, err
	}
	hashes, err := hashChunks(ctx, bytes.NewReader(data), data, l, m.cfg.Hash)
	if err != nil {
		return nil, fmt.Errorf("stream: prepare: %w", err)
	}
	return &Payload{mem: data, hash: m.cfg.Hash, hashes: hashes, chunkBytes: l.chunkBytes}, nil
}

// checkChunkBytes refuses a chunk size no stream can have.
func checkChunkBytes(n int) error {
	if n < 1 || n > MaxChunkBytes {
		return fmt.Errorf("%w: chunks of %d bytes, want 1..%d", ErrManifest, n, MaxChunkBytes)
	}
	return nil
}

// OfferPayload is OfferBytes of a prepared payload: a new stream (its own
// id, so its own manifest), with the hashes computed once.
func (m *Manager) OfferPayload(ctx context.Context, recipient string, p *Payload) (*Outgoing, error) {
	return m.offer(ctx, recipient, bytes.NewReader(p.mem), int64(len(p.mem)), p.mem, p.hashes, p.hash, p.chunkBytes)
}
