package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Cast is one stream of a prepared payload to several recipients at once
// (the round's global model to every holder): each chunk is published once
// on bus.Cast(self, id), and the hub fans it out to every recipient's
// leaf, while flow control stays per recipient, on the unicast subjects.
// The slowest recipient paces the cast, until it has held the others back
// for the cast's lag (below): then it is split off onto a stream of its
// own (the same stream id, its chunks on its unicast subject), and the
// others go on without it. One that stalls, aborts or asks for too much
// resending is dropped from it, and the others go on.
type Cast struct {
	// Manifest describes the stream; it is the same for every recipient
	// (its Cast field set). Put it inside the signed message that offers
	// the stream to each; do not modify it.
	Manifest *hearthv1.StreamManifest

	m       *Manager
	subject string // chunks: bus.Cast(self, id)
	mem     []byte
	l       layout
	wake    chan struct{} // 1-buffered: control arrived or failure
	done    chan struct{} // closed once results is set
	results map[string]error

	mu         sync.Mutex
	recipients []*castRecipient
	failure    error // Cancel, or the connection closed: ends the cast for all
	sent       int   // chunks below this went out on the cast subject
	stats      CastStats
	holding    []*castRecipient // those that held the cast back at the last step
	holdShare  float64          // what they are charged of the time since (see charge)
	stepped    time.Time        // when that step was
}

// castRecipient is one recipient of a cast: what the sender knows of it.
// Its fields are guarded by the cast's mutex.
type castRecipient struct {
	c       *Cast
	name    string
	key     streamKey
	subject string // probes and aborts: bus.Stream(name, self, id)

	acked, limit int
	seq          uint32    // last rewind applied
	rewind       bool      // it asked to rewind to rewindTo
	rewindTo     int       //
	heard        time.Time // last message from it
	progress     time.Time // acked last grew, or it last held nothing back
	lastProbe    time.Time
	resent       int           // chunks sent again because it asked
	held         time.Duration // the others waited on it this long in all
	failure      error         // its abort, or Close
	ended        bool          // it confirmed every chunk, or was dropped (err)
	err          error

	// split: it held the others back for the cast's lag, and has its own
	// stream since, from what it had confirmed: chunk next goes out on its
	// unicast subject once below its limit; chunks below sentMax were
	// sent to it (on the cast subject before the split).
	split         bool
	next, sentMax int
}

// OfferCast offers a prepared payload to every recipient in one cast: one
// stream id, one manifest (Cast set) for all, each chunk published once on
// bus.Cast(self, id) for the hub to fan out. Each recipient pulls with
// Receive as from OfferPayload, within the cast's hold time (below) of the
// offer, and grants credit and asks for rewinds on its own unicast
// subject. Chunk i goes out once it is below every live recipient's
// credit limit, so the slowest paces the cast, a window ahead of its
// confirmed chunks (credit beyond this Manager's Window past a
// recipient's confirmed chunks is not honoured). A rewind one recipient
// asks for resends from there on the cast subject (the others drop the
// duplicates).
//
// A recipient whose credit held the others back for the cast's lag in all
// (two RetryIntervals, at most half the hold time) is split off: told so
// (a split message, repeated in place of its probes), it leaves the cast
// subject, and its chunks go on its unicast subject from what it had
// confirmed, at its own pace, while the others go on without it. It is
// charged the time the cast may not send for want of its credit while most
// of the others wait on it (they confirmed every chunk before the next
// one, and have credit for it), and a quarter of that time while only some
// do. So one slow recipient, or one that paces its confirmations on
// purpose, costs the others one lag per cast at most (four, while another
// recipient that never waits tries to shield it); and one racing ahead of
// the rest (a fast site, or one that confirms whatever it is sent unread)
// gets no other split off unless that one set the pace for four lags, or
// is the only other (see charge).
//
// A recipient is dropped, told with an abort on its unicast subject, and
// its result is an error naming it: when it aborts (ErrAborted); when
// nothing is heard from it for StallTimeout, or it confirmed nothing new
// for the hold time while the cast (or its own stream, once split) waited
// on it (ErrStalled; the hold time is StallTimeout less two
// RetryIntervals, at least half of StallTimeout, so that the recipients
// waiting behind it do not stall first); when its rewinds would resend
// more chunks than the stream has (at least Window; ErrRewinds); when it
// confirms a chunk that was never sent to it (ErrUnsent). The cast
// ends when no recipient is left in it, split ones included. ctx is
// checked at once only: the payload is hashed already. recipients must be
// distinct, and not this participant.
func (m *Manager) OfferCast(ctx context.Context, recipients []string, p *Payload) (*Cast, error) {
	if p == nil {
		return nil, errors.New("stream: cast of no payload")
	}
	if len(recipients) == 0 {
		return nil, errors.New("stream: cast to no recipient")
	}
	seen := make(map[string]bool, len(recipients))
	for _, r := range recipients {
		switch {
		case !validName(r):
			return nil, fmt.Errorf("stream: recipient name %q cannot be a subject token", r)
		case r == m.cfg.Self:
			return nil, fmt.Errorf("stream: cast to %q, which is this participant", r)
		case seen[r]:
			return nil, fmt.Errorf("stream: recipient %q named twice in one cast", r)
		}
		seen[r] = true
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, err := newStreamID()
	if err != nil {
		return nil, err
	}
	l, err := planLayout(id, int64(len(p.mem)), p.chunkBytes)
	if err != nil {
		return nil, err
	}
	if len(p.hashes) != l.count {
		return nil, fmt.Errorf("%w: %d prepared hashes for %d chunks", ErrManifest, len(p.hashes), l.count)
	}
	c := &Cast{
		Manifest: &hearthv1.StreamManifest{StreamId: id, TotalBytes: l.total, ChunkBytes: int32(l.chunkBytes),
			ChunkHash: p.hash, ChunkHashes: p.hashes, Cast: true},
		m: m, subject: bus.Cast(m.cfg.Self, id), mem: p.mem, l: l,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	now := time.Now()
	for _, r := range recipients {
		c.recipients = append(c.recipients, &castRecipient{c: c, name: r, key: streamKey{peer: r, id: id},
			subject: bus.Stream(r, m.cfg.Self, id), heard: now, progress: now})
	}
	if l.count == 0 {
		c.results = make(map[string]error, len(recipients))
		for _, r := range recipients {
			c.results[r] = nil
		}
		close(c.done)
		return c, nil
	}
	err = m.register(func() {
		for _, r := range c.recipients {
			m.out[r.key] = r
		}
	})
	if err != nil {
		return nil, err
	}
	go c.run()
	return c, nil
}

// Wait blocks until every recipient confirmed the last chunk or was
// dropped, and returns each recipient's result: nil when it confirmed
// every chunk, else why it was dropped (ErrStalled, ErrAborted,
// ErrRewinds, ErrCanceled, ErrClosed, a closed connection), naming it.
// When ctx ends first it returns ctx's error and no results; that does not
// stop the cast (Cancel does).
func (c *Cast) Wait(ctx context.Context) (map[string]error, error) {
	select {
	case <-c.done:
		return maps.Clone(c.results), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Done is closed when the cast has ended; Wait then returns at once.
func (c *Cast) Done() <-chan struct{} { return c.done }

// Cancel stops the cast and tells every recipient still in it; their
// results are ErrCanceled.
func (c *Cast) Cancel() {
	c.mu.Lock()
	if c.failure == nil {
		c.failure = ErrCanceled
	}
	c.mu.Unlock()
	c.signal()
}

// Drop drops recipient from the cast with err as its result, and tells
// it, unless it confirmed every chunk or was dropped already; a name not
// among the cast's recipients is ignored. Call it when a recipient is
// known not to pull (it refused the message that offered the cast), so
// that the others need not wait the hold time on it.
func (c *Cast) Drop(recipient string, err error) {
	if err == nil {
		err = errors.New("dropped")
	}
	for _, r := range c.recipients {
		if r.name == recipient {
			r.fail(err)
		}
	}
}

// CastStats counts a cast's chunk messages.
type CastStats struct {
	// SendStats counts those published on the cast subject (each once,
	// however many recipients it reaches); Acked is the fewest chunks any
	// recipient not dropped has confirmed.
	SendStats
	// SplitSent and SplitResent count those sent to split recipients, each
	// on its own subject.
	SplitSent, SplitResent int
	Split                  []string // the recipients split off, in turn
}

// Stats reports what the cast published so far.
func (c *Cast) Stats() CastStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, in := c.stats, false
	s.Split = slices.Clone(s.Split)
	for _, r := range c.recipients {
		if r.err == nil {
			s.Acked = min(s.Acked, r.acked)
			if !in {
				s.Acked, in = r.acked, true
			}
		}
	}
	return s
}

func (c *Cast) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// control applies the recipient's credit; a confirmation of chunks not
// yet sent to it drops it: no honest recipient has them.
func (r *castRecipient) control(cr credit) {
	c := r.c
	c.mu.Lock()
	r.heard = time.Now()
	ack := min(max(cr.ack, 0), c.l.count)
	// A split recipient may have taken cast chunks sent after its split
	// before it left the cast subject: those count as sent to it too.
	if sent := max(c.sent, r.sentMax); ack > sent {
		if r.failure == nil {
			r.failure = fmt.Errorf("%w: %s confirmed %d chunks, of which %d were sent", ErrUnsent, r.name, ack, sent)
		}
		c.mu.Unlock()
		c.signal()
		return
	}
	if ack > r.acked {
		r.acked, r.progress = ack, r.heard
	}
	// Its credit is held to a window (this sender's) past what it
	// confirmed: a rewind resends from the fewest chunks any recipient
	// confirmed, on the subject every recipient hears, so a recipient that
	// granted itself credit far ahead of its confirmations could otherwise
	// have the others sent, unpaced, everything they already took.
	r.limit = max(r.limit, min(max(cr.limit, 0), c.l.count, r.acked+c.m.cfg.Window))
	if cr.seq > r.seq {
		r.seq, r.rewind, r.rewindTo = cr.seq, true, ack
	}
	c.mu.Unlock()
	c.signal()
}

// fail drops the recipient from the cast with err, unless it was already.
func (r *castRecipient) fail(err error) {
	r.c.mu.Lock()
	if r.failure == nil {
		r.failure = err
	}
	r.c.mu.Unlock()
	r.c.signal()
}

// castHold is how long a cast waits on a recipient that holds it back
// without confirming anything new: less than StallTimeout, so that the
// recipients waiting behind it (which stall after StallTimeout without a
// chunk) are still there when it is dropped.
func castHold(cfg Config) time.Duration {
	return max(cfg.StallTimeout-2*cfg.RetryInterval, cfg.StallTimeout/2)
}

// castLag is how long, in all, one recipient may hold the others of a cast
// back (its credit the lowest, theirs higher) before it is split off onto
// its own stream: two RetryIntervals, at most half the hold time. It
// bounds what a slow recipient, or one that paces its confirmations on
// purpose, costs the others: one lag per cast.
func castLag(cfg Config) time.Duration {
	return min(2*cfg.RetryInterval, castHold(cfg)/2)
}

// CastLag is how long one recipient may hold the others of a cast back
// before it is split off, under this configuration (zero fields at their
// defaults): what a slow recipient may delay the others' delivery by.
func (c Config) CastLag() time.Duration { return castLag(c.withDefaults()) }

// run sends the cast until no recipient is left in it.
func (c *Cast) run() {
	m := c.m
	defer m.wg.Done()
	c.loop()
	m.mu.Lock()
	for _, r := range c.recipients {
		if m.out[r.key] == r {
			delete(m.out, r.key)
		}
	}
	m.mu.Unlock()
	results := make(map[string]error, len(c.recipients))
	c.mu.Lock()
	for _, r := range c.recipients {
		results[r.name] = r.err
	}
	c.mu.Unlock()
	c.results = results
	close(c.done)
}

// castStep is what one pass over the recipients decided.
type castStep struct {
	send    bool        // chunk *next, on the cast subject
	unicast []castChunk // to split recipients, on their own subjects
	split   []*castRecipient
	dropped []*castRecipient
	probes  []castProbe
	wakeAt  time.Time
	live    int
}

// castChunk is chunk i for one split recipient.
type castChunk struct {
	subject string
	i       int
}

// castProbe is a probe to one recipient: a split one is probed with the
// split message, which tells it again (it may have missed the first).
type castProbe struct {
	subject string
	kind    byte
}

func (c *Cast) loop() {
	m := c.m
	next := 0 // the next chunk to send on the cast subject
	timer := time.NewTimer(m.cfg.RetryInterval)
	defer timer.Stop()
	for {
		step := c.step(time.Now(), &next)
		for _, r := range step.dropped {
			if !errors.Is(r.err, ErrAborted) { // the recipient knows
				m.publish(r.subject, encodeAbort(kindSenderAbort, reasonOf(r.err)))
			}
			m.log.Info("cast recipient dropped", "stream", c.l.id, "to", r.name, "err", r.err)
		}
		for _, r := range step.split {
			m.publish(r.subject, []byte{kindSplit})
			m.log.Info("cast recipient split off: it held the others back", "stream", c.l.id, "to", r.name,
				"held", r.held.Round(time.Millisecond), "confirmed", r.acked, "chunks", c.l.count)
		}
		if step.live == 0 {
			return
		}
		var err error
		for _, u := range step.unicast {
			if err == nil {
				err = c.send(u.subject, u.i)
			}
		}
		if step.send && err == nil {
			if err = c.send(c.subject, next); err == nil {
				next++
			}
		}
		if err != nil {
			c.mu.Lock()
			if c.failure == nil {
				c.failure = err
			}
			c.mu.Unlock()
			continue
		}
		if step.send || len(step.unicast) > 0 || len(step.split) > 0 {
			continue
		}
		for _, p := range step.probes {
			m.publish(p.subject, []byte{p.kind})
		}
		timer.Reset(max(time.Until(step.wakeAt), time.Millisecond))
		select {
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// step settles every recipient (confirmed all, aborted, stalled, rewinds),
// charges the time since the last step to those that held the cast back
// then, and splits off those that held it for the lag; it applies the
// rewinds to *next (or to a split recipient's own next), and says whether
// chunk *next may go out, which chunks go to split recipients, whom to
// probe, and when to look again.
func (c *Cast) step(now time.Time, next *int) castStep {
	cfg := c.m.cfg
	hold, lag := castHold(cfg), castLag(cfg)
	maxResent := max(c.l.count, cfg.Window)
	var st castStep
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.holding {
		r.held += time.Duration(float64(now.Sub(c.stepped)) * c.holdShare)
	}
	c.holding, c.stepped = c.holding[:0], now
	drop := func(r *castRecipient, err error) {
		r.ended = true
		r.err = fmt.Errorf("stream %s to %s: %w", c.l.id, r.name, err)
		st.dropped = append(st.dropped, r)
	}
	for _, r := range c.recipients {
		switch {
		case r.ended:
		case c.failure != nil:
			drop(r, c.failure)
		case r.failure != nil:
			drop(r, r.failure)
		case r.acked >= c.l.count:
			r.ended = true
		case r.rewind:
			r.rewind = false
			from := next
			if r.split {
				from = &r.next
			}
			cost := max(*from-r.rewindTo, 0)
			if r.resent+cost > maxResent {
				drop(r, fmt.Errorf("%w: it asked for %d chunks again, and %d more, for a stream of %d",
					ErrRewinds, r.resent, cost, c.l.count))
				continue
			}
			r.resent += cost
			*from = min(*from, r.rewindTo)
		}
	}
	limit, acked, casting := c.l.count, c.l.count, 0
	st.wakeAt = now.Add(cfg.StallTimeout)
	for _, r := range c.recipients {
		if r.ended {
			continue
		}
		at, sent := *next, c.sent
		if r.split {
			r.next = max(r.next, r.acked)
			at, sent = r.next, r.sentMax
		}
		behind := r.acked < sent || (at < c.l.count && r.limit <= at)
		if !behind {
			r.progress = now
		}
		if quiet := now.Sub(r.heard); quiet >= cfg.StallTimeout {
			drop(r, fmt.Errorf("%w: nothing from %s for %v (%d of %d chunks confirmed)",
				ErrStalled, r.name, quiet.Round(time.Millisecond), r.acked, c.l.count))
			continue
		}
		if still := now.Sub(r.progress); behind && still >= hold {
			drop(r, fmt.Errorf("%w: %s confirmed nothing for %v while the cast waited on it (%d of %d chunks confirmed)",
				ErrStalled, r.name, still.Round(time.Millisecond), r.acked, c.l.count))
			continue
		}
		st.live++
		st.wakeAt = earliest(st.wakeAt, r.heard.Add(cfg.StallTimeout), later(r.heard, r.lastProbe).Add(cfg.RetryInterval))
		if behind {
			st.wakeAt = earliest(st.wakeAt, r.progress.Add(hold))
		}
		if r.split {
			if r.next < r.limit {
				st.unicast = append(st.unicast, castChunk{subject: r.subject, i: r.next})
				c.stats.SplitSent++
				if r.next < r.sentMax {
					c.stats.SplitResent++
				}
				r.next++
				r.sentMax = max(r.sentMax, r.next)
			}
			continue
		}
		casting++
		limit, acked = min(limit, r.limit), min(acked, r.acked)
	}
	if st.live == 0 {
		return st
	}
	if casting > 0 {
		*next = max(*next, acked)
		if st.send = *next < limit; st.send {
			// Counted as sent before it goes out, so that no confirmation
			// of it can arrive first (see control).
			c.stats.Sent++
			if *next < c.sent {
				c.stats.Resent++
			}
			c.sent = max(c.sent, *next+1)
			return st
		}
		c.charge(&st, now, *next, lag)
	}
	if len(st.unicast) > 0 || len(st.split) > 0 {
		return st
	}
	for _, r := range c.recipients {
		if !r.ended && now.Sub(r.heard) >= cfg.RetryInterval && now.Sub(r.lastProbe) >= cfg.RetryInterval {
			p := castProbe{subject: r.subject, kind: kindProbe}
			if r.split {
				p.kind = kindSplit
			}
			st.probes = append(st.probes, p)
			r.lastProbe = now
		}
	}
	return st
}

// charge notes, for a cast that may not send chunk next, the recipients
// that hold it back (their credit ends at next or before), to be charged
// the time until the next step: in full while most of the others wait on
// them meanwhile (they confirmed every chunk before next and have credit
// for it), a quarter of it while only some do; and splits off each whose
// charge reached lag, from what it confirmed. From the sender, a recipient
// racing ahead of two that set the pace together looks just like a fast
// one beside a slow one and one that confirms each chunk a moment late
// (never waiting, so as to shield the slow one): the quarter bounds both.
//
//   - A slow recipient (or one that paces its confirmations) holding back
//     others that all wait is split off after lag.
//   - One racing ahead of the rest (a fast one, or one that confirms
//     whatever it is sent unread) is one waiting recipient among the
//     others: with one other it splits that one off after lag; with more,
//     only one that set the pace for four lags.
//   - One that never waits delays the split of a slow one to four lags at
//     most, and cannot prevent it.
//   - Honest recipients of one pace wait on each other only for a moment's
//     jitter, and with every recipient's credit spent nobody waits: that
//     is flow control, not one recipient's pace.
func (c *Cast) charge(st *castStep, now time.Time, next int, lag time.Duration) {
	casting, waiting := 0, 0
	for _, r := range c.recipients {
		if r.ended || r.split {
			continue
		}
		casting++
		switch {
		case r.limit <= next:
			c.holding = append(c.holding, r)
		case r.acked >= next:
			waiting++
		}
	}
	if waiting == 0 { // no one waits on the holders (nor on a recipient casting alone)
		c.holding = c.holding[:0]
		return
	}
	// Every holder's others are the casting less itself, and none of the
	// waiting ones is a holder.
	c.holdShare = 1
	if 2*waiting <= casting-1 {
		c.holdShare = 0.25
	}
	kept := c.holding[:0]
	for _, r := range c.holding {
		if r.held < lag {
			kept = append(kept, r)
			st.wakeAt = earliest(st.wakeAt, now.Add(time.Duration(float64(lag-r.held)/c.holdShare)))
			continue
		}
		r.split, r.next, r.sentMax, r.progress = true, r.acked, c.sent, now
		st.split = append(st.split, r)
		c.stats.Split = append(c.stats.Split, r.name)
	}
	c.holding = kept
}

// send publishes chunk i on subject (the cast's, or a split recipient's),
// straight from memory. Only a closed connection fails the cast: a chunk
// lost on the way is re-requested by the recipients that miss it.
func (c *Cast) send(subject string, i int) error {
	off := c.l.offset(i)
	err := c.m.nc.PublishMsg(chunkMsg(subject, i, c.mem[off:off+int64(c.l.chunkLen(i))]))
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("stream: send chunk %d: %w", i, err)
	}
	if err != nil {
		c.m.log.Debug("publish chunk", "stream", c.l.id, "chunk", i, "err", err)
	}
	return nil
}

// earliest returns the earliest of some times.
func earliest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.Before(t) {
			t = u
		}
	}
	return t
}
