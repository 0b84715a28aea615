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
	mem    []byte
	hash   Hash
	hashes [][]byte
}

// Prepare hashes data's chunks for offering it with OfferPayload.
func (m *Manager) Prepare(ctx context.Context, data []byte) (*Payload, error) {
	l, err := planLayout("prepared", int64(len(data)), m.cfg.ChunkBytes)
	if err != nil {
		return nil, err
	}
	hashes, err := hashChunks(ctx, bytes.NewReader(data), data, l, m.cfg.Hash)
	if err != nil {
		return nil, fmt.Errorf("stream: prepare: %w", err)
	}
	return &Payload{mem: data, hash: m.cfg.Hash, hashes: hashes}, nil
}

// OfferPayload is OfferBytes of a prepared payload: a new stream (its own
// id, so its own manifest), with the hashes computed once.
func (m *Manager) OfferPayload(ctx context.Context, recipient string, p *Payload) (*Outgoing, error) {
	return m.offer(ctx, recipient, bytes.NewReader(p.mem), int64(len(p.mem)), p.mem, p.hashes, p.hash)
}
