package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Sink receives a stream's verified chunks, in order, each exactly once.
type Sink interface {
	// WriteChunk takes chunk index, which starts at offset in the stream.
	// data is only valid during the call. An error fails the stream. A
	// call that blocks for longer than StallTimeout fails it at the sender.
	WriteChunk(index int, offset int64, data []byte) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(index int, offset int64, data []byte) error

// WriteChunk calls f.
func (f SinkFunc) WriteChunk(index int, offset int64, data []byte) error {
	return f(index, offset, data)
}

// Stats describes an incoming stream.
type Stats struct {
	Bytes    int64         // delivered to the Sink
	Chunks   int           // delivered to the Sink
	Resent   int           // times the recipient asked the sender to resend (rewinds)
	Corrupt  int           // chunk copies refused because their hash did not match
	Dropped  int           // chunk copies discarded: duplicates, after a gap, over the window
	Duration time.Duration // from Receive's start to its end
}

// incoming is a stream being received, as the dispatcher sees it.
type incoming struct {
	ch       chan *nats.Msg // chunks and probes
	abort    chan string    // the sender's abort reason
	overflow atomic.Int64   // chunk messages dropped because ch was full

	// Of a cast: once the sender split this recipient off (it said so, or
	// a chunk came on the unicast subject), chunks on the cast subject are
	// dropped unread, and leaving tells the receiver to unsubscribe.
	cast    bool
	left    atomic.Bool
	leaving chan struct{} // 1-buffered
}

// deliver queues a message from the sender on the unicast subject without
// blocking.
func (in *incoming) deliver(msg *nats.Msg) {
	chunk := isChunk(msg)
	if !chunk && msg.Data[0] == kindSenderAbort {
		select {
		case in.abort <- parseAbort(msg.Data):
		default:
		}
		return
	}
	if in.cast && (chunk || msg.Data[0] == kindSplit) && in.left.CompareAndSwap(false, true) {
		in.leaving <- struct{}{}
	}
	in.queue(msg)
}

// deliverCast queues a chunk from the cast subject, unless this recipient
// was split off the cast.
func (in *incoming) deliverCast(msg *nats.Msg) {
	if !in.left.Load() {
		in.queue(msg)
	}
}

func (in *incoming) queue(msg *nats.Msg) {
	select {
	case in.ch <- msg:
	default:
		in.overflow.Add(1)
	}
}

// Receive pulls the stream a manifest describes from sender and gives each
// chunk to sink, in order, after checking its hash against the manifest.
// The manifest must come from a verified message signed by sender. Receive
// returns when every chunk is delivered, or fails: ErrManifest, ErrStalled
// (no progress for StallTimeout), ErrCorrupt, ErrAborted (the sender gave
// up), ErrClosed, ctx's error, or the Sink's; on failure it tells the
// sender. An empty stream returns at once. For a cast manifest (Cast set,
// see OfferCast) the chunks come on bus.Cast(sender, id), to which Receive
// subscribes until it returns; everything else is as for one recipient.
func (m *Manager) Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink Sink) (Stats, error) {
	start := time.Now()
	if !validName(sender) {
		return Stats{}, fmt.Errorf("stream: sender name %q cannot be a subject token", sender)
	}
	l, err := checkManifest(man)
	if err != nil {
		return Stats{}, err
	}
	if sink == nil {
		return Stats{}, errors.New("stream: no sink")
	}
	if l.count == 0 {
		return Stats{Duration: time.Since(start)}, nil
	}
	key := streamKey{peer: sender, id: l.id}
	in := &incoming{ch: make(chan *nats.Msg, 2*m.cfg.Window+2), abort: make(chan string, 1),
		cast: man.GetCast(), leaving: make(chan struct{}, 1)}
	var busy bool
	err = m.register(func() {
		if busy = m.in[key] != nil; !busy {
			m.in[key] = in
		}
	})
	if err != nil {
		return Stats{}, err
	}
	defer m.wg.Done()
	if busy {
		return Stats{}, fmt.Errorf("stream: %s from %s is already being received", l.id, sender)
	}
	r := &receiver{
		m: m, in: in, l: l, hash: man.GetChunkHash(), hashes: man.GetChunkHashes(), sink: sink,
		ctl: bus.Stream(sender, m.cfg.Self, l.id), lastProgress: start,
		backoff: min(firstRetry, m.cfg.RetryInterval),
	}
	if in.cast {
		// Before the first credit, which lets the sender cast: the
		// subscription reaches the hub ahead of the credit, on the same
		// connection. The subject is literal: the hub passes the interest
		// on to the sender's leaf only where the sender's publish
		// permissions match it (see bus.StreamInbox).
		r.castSubject = bus.Cast(sender, l.id)
		sub, err := m.subscribe(r.castSubject, m.dispatchCast)
		if err != nil {
			m.mu.Lock()
			delete(m.in, key)
			m.mu.Unlock()
			return Stats{}, err
		}
		r.castSub = sub
		defer r.leaveCast()
	}
	err = r.run(ctx)
	m.mu.Lock()
	delete(m.in, key)
	m.mu.Unlock()
	r.stats.Dropped += int(in.overflow.Load())
	r.stats.Duration = time.Since(start)
	if err != nil {
		if !errors.Is(err, ErrAborted) { // the sender knows
			m.publish(r.ctl, encodeAbort(kindReceiverAbort, reasonOf(err)))
		}
		m.log.Info("incoming stream failed", "stream", l.id, "from", sender, "err", err)
		return r.stats, fmt.Errorf("stream %s from %s: %w", l.id, sender, err)
	}
	m.remember(key, l.count)
	return r.stats, nil
}

// receiver is the state of one Receive.
type receiver struct {
	m      *Manager
	in     *incoming
	l      layout
	hash   Hash // what hashes were made with
	hashes [][]byte
	sink   Sink
	ctl    string // credit and abort: bus.Stream(sender, self, id)

	castSubject string             // of a cast: bus.Cast(sender, id)
	castSub     *nats.Subscription // to castSubject, until it leaves the cast

	next    int           // first chunk not delivered
	granted int           // next as of the last credit sent
	seq     uint32        // rewinds asked for
	pending bool          // a rewind to next is outstanding: drop later chunks quietly
	corrupt int           // bad copies of chunk next
	arrived int           // chunk messages handled
	backoff time.Duration // between first credits, until a chunk arrives
	stats   Stats

	lastProgress time.Time // a chunk delivered (or the start)
	lastArrival  time.Time // a chunk message handled, delivered or not
	lastRewind   time.Time
	idleRewinds  int // rewinds asked for since the last chunk delivered, for want of one
	lastCredit   time.Time
}

func (r *receiver) run(ctx context.Context) error {
	r.sendCredit()
	timer := time.NewTimer(r.backoff)
	defer timer.Stop()
	for {
		select {
		case msg := <-r.in.ch:
			if !isChunk(msg) { // a probe
				r.sendCredit()
				continue
			}
			if err := r.chunk(msg); err != nil || r.next == r.l.count {
				return err
			}
			// A cast recipient also confirms when it has nothing queued
			// (after a delivery or a dropped duplicate alike): its sender
			// charges a recipient that holds back others that wait, and
			// learns that they wait from this.
			if r.in.cast && len(r.in.ch) == 0 && r.next > r.granted {
				r.sendCredit()
			}
		case <-timer.C:
			wait, err := r.tick(time.Now())
			if err != nil {
				return err
			}
			timer.Reset(wait)
		case <-r.in.leaving:
			r.leaveCast()
		case reason := <-r.in.abort:
			return fmt.Errorf("%w: %q", ErrAborted, reason)
		case <-ctx.Done():
			return ctx.Err()
		case <-r.m.closed:
			return ErrClosed
		}
	}
}

// leaveCast unsubscribes from the cast subject, once: when Receive
// returns, or when the sender split this recipient off the cast.
func (r *receiver) leaveCast() {
	if r.castSub == nil {
		return
	}
	if err := r.castSub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.m.log.Debug("unsubscribe", "stream", r.l.id, "err", err)
	}
	r.castSub = nil
}

// chunk handles one chunk message from the sender.
func (r *receiver) chunk(msg *nats.Msg) error {
	i, payload, ok := parseChunk(msg)
	r.arrived++
	r.lastArrival = time.Now()
	switch {
	case r.in.left.Load() && msg.Subject == r.castSubject:
		// Queued before the split: the cast has gone on ahead of this
		// recipient, whose chunks come on its own subject now; not a gap.
		r.stats.Dropped++
		return nil
	case !ok || i >= r.l.count || i < r.next:
		r.stats.Dropped++
		return nil
	case i > r.next: // a gap: go back to next
		r.stats.Dropped++
		if !r.pending {
			r.rewind()
		}
		return nil
	}
	if want := r.l.chunkLen(i); len(payload) != want {
		// Chunk messages arrive whole or not at all, so a chunk of the
		// wrong size was sent so (every chunk but the last is exactly the
		// chunk size), even if the manifest hashed it: refused at once,
		// before the sink sees it.
		r.stats.Corrupt++
		return fmt.Errorf("%w: chunk %d of %d is %d bytes, the manifest makes it %d", ErrChunkSize, i, r.l.count, len(payload), want)
	}
	if sum := sum(r.hash, payload); !bytes.Equal(sum[:], r.hashes[i]) {
		r.stats.Corrupt++
		r.corrupt++
		if r.corrupt >= maxCorrupt {
			return fmt.Errorf("%w: chunk %d failed its check %d times", ErrCorrupt, i, r.corrupt)
		}
		r.m.log.Debug("chunk refused", "stream", r.l.id, "chunk", i, "bytes", len(payload))
		r.rewind()
		return nil
	}
	if err := r.sink.WriteChunk(i, r.l.offset(i), payload); err != nil {
		return fmt.Errorf("sink: chunk %d: %w", i, err)
	}
	r.next++
	r.corrupt, r.pending, r.idleRewinds = 0, false, 0
	r.stats.Chunks++
	r.stats.Bytes += int64(len(payload))
	r.lastProgress = time.Now()
	if r.next == r.l.count || r.next-r.granted >= max(r.m.window(r.l.chunkBytes)/4, 1) {
		r.sendCredit()
	}
	return nil
}

// tick runs when the timer fires: it fails a stalled stream, asks for a
// resend after RetryInterval without progress, re-sends the first credit
// (in case it was lost) until the sender's first chunk arrives, and says
// when to look again.
func (r *receiver) tick(now time.Time) (time.Duration, error) {
	stallAt := r.lastProgress.Add(r.m.cfg.StallTimeout)
	if !now.Before(stallAt) {
		return 0, fmt.Errorf("%w: no chunk for %v (%d of %d delivered, %d chunk messages arrived)",
			ErrStalled, now.Sub(r.lastProgress).Round(time.Millisecond), r.next, r.l.count, r.arrived)
	}
	if r.m.nc.IsClosed() {
		return 0, nats.ErrConnectionClosed
	}
	// A rewind is asked for when no chunk message at all arrived for
	// RetryInterval: while chunks still arrive the path is alive, if slow,
	// and a gap shows itself (see chunk); asking for them again would only
	// queue a second copy behind the first. Each rewind asked for in vain
	// lengthens the wait for the next (retryWait).
	retry := r.retryWait()
	quiet := later(later(r.lastProgress, r.lastArrival), r.lastRewind)
	if now.Sub(quiet) >= retry {
		r.rewind()
		r.lastRewind = now
		r.idleRewinds++
	} else if r.arrived == 0 && now.Sub(r.lastCredit) >= r.backoff {
		r.sendCredit()
		r.backoff = min(2*r.backoff, r.m.cfg.RetryInterval)
	}
	retry = r.retryWait()
	quiet = later(later(r.lastProgress, r.lastArrival), r.lastRewind)
	wait := min(time.Until(stallAt), time.Until(quiet.Add(retry)))
	if r.arrived == 0 {
		wait = min(wait, time.Until(r.lastCredit.Add(r.backoff)))
	}
	return max(wait, time.Millisecond), nil
}

// retryWait is how long nothing may arrive before a rewind is asked for:
// RetryInterval, doubled by each rewind asked for in vain, up to eight of
// them or an eighth of StallTimeout, whichever is less, and never less than
// one RetryInterval: a link that comes back well before the stall is
// asked again in time.
func (r *receiver) retryWait() time.Duration {
	cfg := r.m.cfg
	return min(cfg.RetryInterval<<min(r.idleRewinds, 3), max(cfg.RetryInterval, cfg.StallTimeout/8))
}

// rewind asks the sender to resend from next.
func (r *receiver) rewind() {
	r.seq++
	r.pending = true
	r.stats.Resent++
	r.sendCredit()
}

// sendCredit tells the sender what was delivered and grants a window.
func (r *receiver) sendCredit() {
	limit := min(r.next+r.m.window(r.l.chunkBytes), r.l.count)
	r.granted = r.next
	r.lastCredit = time.Now()
	r.m.publish(r.ctl, credit{ack: r.next, limit: limit, seq: r.seq}.encode())
}
