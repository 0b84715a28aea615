package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Outgoing is a stream this process offered. Its chunks go out as the
// recipient pulls them.
type Outgoing struct {
	// Manifest describes the stream. Put it inside the signed message that
	// offers the stream; do not modify it.
	Manifest *hearthv1.StreamManifest

	m       *Manager
	key     streamKey
	subject string // chunks and probes: bus.Stream(recipient, self, id)
	src     io.ReaderAt
	mem     []byte // the whole stream, when offered with OfferBytes
	l       layout
	wake    chan struct{} // 1-buffered: control arrived or failure
	done    chan struct{} // closed once err is set
	err     error

	mu       sync.Mutex
	acked    int       // chunks the recipient confirmed
	limit    int       // send chunks below this
	seq      uint32    // last rewind applied
	rewind   bool      // rewind to rewindTo before sending on
	rewindTo int       //
	heard    time.Time // last message from the recipient
	failure  error     // set by Cancel, Close or the recipient's abort
	stats    SendStats
}

// SendStats counts an outgoing stream's chunk messages.
type SendStats struct {
	Sent   int // chunk messages published, resent ones included
	Resent int // chunk messages that repeated a chunk sent before
	Acked  int // chunks the recipient confirmed
}

// Offer prepares an outgoing stream of src's first size bytes to recipient.
// It reads src once to hash every chunk (SHA-256), in parallel, and returns
// the stream with its manifest, which the caller puts inside its signed
// message to the recipient. ctx bounds the hashing only. Chunks are sent
// only as the recipient pulls them, read again from src (which must not
// change; if it does, the recipient refuses the chunks). The recipient must
// start pulling within StallTimeout. An empty stream (size 0) has no chunks
// and is complete at once.
func (m *Manager) Offer(ctx context.Context, recipient string, src io.ReaderAt, size int64) (*Outgoing, error) {
	if src == nil {
		return nil, errors.New("stream: no source")
	}
	return m.offer(ctx, recipient, src, size, nil, nil, m.cfg.Hash, m.cfg.ChunkBytes)
}

// OfferBytes is Offer of data, which stays in memory: its chunks are
// published straight from it, without a copy. data must not change until
// the stream has ended.
func (m *Manager) OfferBytes(ctx context.Context, recipient string, data []byte) (*Outgoing, error) {
	return m.offer(ctx, recipient, bytes.NewReader(data), int64(len(data)), data, nil, m.cfg.Hash, m.cfg.ChunkBytes)
}

// OfferBytesChunks is OfferBytes in chunks of chunkBytes (at most
// MaxChunkBytes) instead of the manager's (see PrepareChunks).
func (m *Manager) OfferBytesChunks(ctx context.Context, recipient string, data []byte, chunkBytes int) (*Outgoing, error) {
	if err := checkChunkBytes(chunkBytes); err != nil {
		return nil, err
	}
	return m.offer(ctx, recipient, bytes.NewReader(data), int64(len(data)), data, nil, m.cfg.Hash, chunkBytes)
}

// offer starts an outgoing stream in chunks of chunkBytes; hashes, when
// not nil, are the chunk hashes of src in that layout, made with hash
// before (Prepare); when nil, they are made here with hash.
func (m *Manager) offer(ctx context.Context, recipient string, src io.ReaderAt, size int64, mem []byte, hashes [][]byte, hash Hash, chunkBytes int) (*Outgoing, error) {
	if !validName(recipient) {
		return nil, fmt.Errorf("stream: recipient name %q cannot be a subject token", recipient)
	}
	id, err := newStreamID()
	if err != nil {
		return nil, err
	}
	l, err := planLayout(id, size, chunkBytes)
	if err != nil {
		return nil, err
	}
	if hashes == nil {
		if hashes, err = hashChunks(ctx, src, mem, l, hash); err != nil {
			return nil, fmt.Errorf("stream: offer: %w", err)
		}
	} else if len(hashes) != l.count {
		return nil, fmt.Errorf("%w: %d prepared hashes for %d chunks", ErrManifest, len(hashes), l.count)
	}
	o := &Outgoing{
		Manifest: &hearthv1.StreamManifest{StreamId: id, TotalBytes: size, ChunkBytes: int32(l.chunkBytes),
			ChunkHash: hash, ChunkHashes: hashes},
		m: m, key: streamKey{peer: recipient, id: id},
		subject: bus.Stream(recipient, m.cfg.Self, id), src: src, mem: mem, l: l,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		heard: time.Now(),
	}
	if l.count == 0 {
		close(o.done)
		return o, nil
	}
	if err := m.register(func() { m.out[o.key] = o }); err != nil {
		return nil, err
	}
	go o.run()
	return o, nil
}

// Wait blocks until the recipient confirmed the last chunk, or the stream
// failed (ErrStalled, ErrCanceled, ErrClosed, ErrAborted, a read error),
// or ctx ends; ctx ending does not stop the stream (Cancel does).
func (o *Outgoing) Wait(ctx context.Context) error {
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the stream has ended; Wait then returns at once.
func (o *Outgoing) Done() <-chan struct{} { return o.done }

// Cancel stops the stream and tells the recipient; Wait returns
// ErrCanceled unless the stream had already ended.
func (o *Outgoing) Cancel() { o.fail(ErrCanceled) }

// Stats reports what was sent so far.
func (o *Outgoing) Stats() SendStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.Acked = o.acked
	return s
}

// fail ends the stream with err unless it already failed.
func (o *Outgoing) fail(err error) {
	o.mu.Lock()
	if o.failure == nil {
		o.failure = err
	}
	o.mu.Unlock()
	o.signal()
}

func (o *Outgoing) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// control applies the recipient's credit.
func (o *Outgoing) control(c credit) {
	o.mu.Lock()
	o.heard = time.Now()
	ack := min(max(c.ack, 0), o.l.count)
	o.acked = max(o.acked, ack)
	o.limit = max(o.limit, min(max(c.limit, 0), o.l.count))
	if c.seq > o.seq {
		o.seq, o.rewind, o.rewindTo = c.seq, true, ack
	}
	o.mu.Unlock()
	o.signal()
}

// run sends chunks as credit allows until the recipient confirmed them all
// or the stream fails.
func (o *Outgoing) run() {
	m := o.m
	defer m.wg.Done()
	err := o.loop()
	m.mu.Lock()
	delete(m.out, o.key)
	m.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrAborted) { // the recipient knows
			m.publish(o.subject, encodeAbort(kindSenderAbort, reasonOf(err)))
		}
		m.log.Info("outgoing stream failed", "stream", o.l.id, "to", o.key.peer, "err", err)
		err = fmt.Errorf("stream %s to %s: %w", o.l.id, o.key.peer, err)
	}
	o.err = err
	close(o.done)
}

func (o *Outgoing) loop() error {
	m := o.m
	var buf []byte
	next, sentMax := 0, 0 // next chunk to send; chunks below sentMax were sent
	lastProbe := time.Time{}
	timer := time.NewTimer(m.cfg.RetryInterval)
	defer timer.Stop()
	for {
		o.mu.Lock()
		if o.failure != nil {
			err := o.failure
			o.mu.Unlock()
			return err
		}
		if o.acked >= o.l.count {
			o.mu.Unlock()
			return nil
		}
		if o.rewind {
			next, o.rewind = o.rewindTo, false
		}
		next = max(next, o.acked)
		limit, heard := o.limit, o.heard
		if next < limit {
			o.stats.Sent++
			if next < sentMax {
				o.stats.Resent++
			}
		}
		o.mu.Unlock()

		if next < limit {
			if buf == nil && o.mem == nil {
				buf = make([]byte, min(int64(o.l.chunkBytes), o.l.total))
			}
			if err := o.send(buf, next); err != nil {
				return err
			}
			next++
			sentMax = max(sentMax, next)
			continue
		}

		now := time.Now()
		quiet := now.Sub(heard)
		if quiet >= m.cfg.StallTimeout {
			return fmt.Errorf("%w: nothing from %s for %v (%d of %d chunks confirmed)",
				ErrStalled, o.key.peer, quiet.Round(time.Millisecond), o.Stats().Acked, o.l.count)
		}
		if quiet >= m.cfg.RetryInterval && now.Sub(lastProbe) >= m.cfg.RetryInterval {
			m.publish(o.subject, []byte{kindProbe})
			lastProbe = now
		}
		wakeAt := heard.Add(m.cfg.StallTimeout)
		if probeAt := later(heard, lastProbe).Add(m.cfg.RetryInterval); probeAt.Before(wakeAt) {
			wakeAt = probeAt
		}
		timer.Reset(time.Until(wakeAt))
		select {
		case <-o.wake:
		case <-timer.C:
		}
	}
}

// send publishes chunk i, from memory or read from src into buf. Only a
// read error or a closed connection fails the stream: a chunk lost on the
// way is re-requested by the recipient.
func (o *Outgoing) send(buf []byte, i int) error {
	n := o.l.chunkLen(i)
	var data []byte
	if o.mem != nil {
		off := o.l.offset(i)
		data = o.mem[off : off+int64(n)]
	} else {
		data = buf[:n]
		if err := readChunk(o.src, o.l, i, data); err != nil {
			return err
		}
	}
	err := o.m.nc.PublishMsg(chunkMsg(o.subject, i, data))
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("stream: send chunk %d: %w", i, err)
	}
	if err != nil {
		o.m.log.Debug("publish chunk", "stream", o.l.id, "chunk", i, "err", err)
	}
	return nil
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// reasonOf is the reason an abort message gives for err.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrCanceled):
		return "cancelled"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrStalled):
		return "stalled"
	case errors.Is(err, ErrRewinds):
		return "too many rewinds"
	case errors.Is(err, ErrUnsent):
		return "confirmed chunks never sent"
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrChunkSize):
		return err.Error() // names the chunk
	case errors.Is(err, context.Canceled):
		return "context cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "context deadline exceeded"
	}
	return "local error" // the details (paths, ...) stay in the local log
}
