package node

import (
	"context"
	"errors"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/envelope"
)

// Refusal kinds a RefusalRecord carries in Action, named as the audit log
// names them.
const (
	ActionEnvelopeRefused   = "envelope.refused"
	ActionConnectionRefused = "connection.refused"
)

// OtherPeers stands for the senders a Refusals had no room left to count
// one by one.
const OtherPeers = "(other senders)"

// Defaults of RefusalsConfig.
const (
	DefaultRefusalInterval = time.Minute
	DefaultRefusalKeys     = 256
)

// maxDetail bounds the example refusal text a record carries.
const maxDetail = 200

// RefusalRecord is what Refusals hands its sink: Count refusals of one kind
// (Action), from one claimed sender (Peer, as claimed: not trusted), for one
// reason code, since the previous record of that key. First marks the
// first record of a key, written as soon as the refusal is seen; later
// ones are summaries, at most one per key per interval. Detail is the
// first refusal's text, bounded.
type RefusalRecord struct {
	Action string
	Peer   string
	Reason string
	Detail string
	Count  int
	First  bool
	Since  time.Time // when the refusals counted here began
}

// RefusalsConfig sets up Refusals; the zero value is usable.
type RefusalsConfig struct {
	// Interval is the most often a key is summarized (DefaultRefusalInterval).
	Interval time.Duration
	// MaxKeys bounds the (action, sender, reason) keys counted one by one
	// (DefaultRefusalKeys); refusals beyond that count under Peer OtherPeers.
	MaxKeys int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Refusals counts refused connections and envelopes so that they can be
// audited without a flood flooding the audit log: per (action, claimed
// sender, reason), the first refusal is recorded at once and the rest in
// one summary per interval with a count; a key quiet for an interval is
// forgotten (its next refusal is a first again). Records per interval are
// at most 2×(MaxKeys+1), whatever the flood. Note is cheap and never
// blocks on the sink: records are handed to the sink by Flush, which Run
// calls. Safe for concurrent use.
type Refusals struct {
	interval time.Duration
	maxKeys  int
	now      func() time.Time
	wake     chan struct{}

	mu      sync.Mutex
	keys    map[refusalKey]*refusalCount
	sink    func(RefusalRecord) error
	flushMu sync.Mutex // one Flush at a time, so records of a key stay in order
}

type refusalKey struct{ action, peer, reason string }

type refusalCount struct {
	detail   string
	pending  int       // refusals not yet in a record
	reported bool      // the first record was handed to the sink
	since    time.Time // start of the refusals pending
	last     time.Time // when the latest record was handed over
}

// NewRefusals makes a Refusals with no sink: refusals are counted (within
// MaxKeys) until SetSink gives one.
func NewRefusals(c RefusalsConfig) *Refusals {
	if c.Interval <= 0 {
		c.Interval = DefaultRefusalInterval
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultRefusalKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Refusals{interval: c.Interval, maxKeys: c.MaxKeys, now: c.Now, wake: make(chan struct{}, 1),
		keys: map[refusalKey]*refusalCount{}}
}

// SetSink makes sink receive the records from the next Flush on (nil:
// keep counting without handing records over).
func (r *Refusals) SetSink(sink func(RefusalRecord) error) {
	r.mu.Lock()
	r.sink = sink
	r.mu.Unlock()
	r.signal()
}

// Note counts one refusal. peer and detail are bounded here.
func (r *Refusals) Note(action, peer, reason, detail string) {
	k := refusalKey{action: action, peer: bounded(peer, 80), reason: bounded(reason, 40)}
	r.mu.Lock()
	c, ok := r.keys[k]
	if !ok && len(r.keys) >= r.maxKeys {
		k.peer = OtherPeers
		c, ok = r.keys[k]
	}
	if !ok {
		c = &refusalCount{detail: bounded(detail, maxDetail), since: r.now()}
		r.keys[k] = c
	}
	if c.pending == 0 {
		c.since = r.now()
	}
	c.pending++
	first := !c.reported
	r.mu.Unlock()
	if first {
		r.signal()
	}
}

// NoteConnection counts a connection the hub or leaf refused.
func (r *Refusals) NoteConnection(ref bus.Refusal) {
	detail := ref.Listener + " listener"
	if ref.Err != nil {
		detail += ": " + ref.Err.Error()
	}
	r.Note(ActionConnectionRefused, ref.Peer, ref.Reason(), detail)
}

// NoteEnvelope counts an envelope the bridge refused on subject.
func (r *Refusals) NoteEnvelope(subject string, err error) {
	peer := ""
	if re, ok := errors.AsType[*envelope.RefusedError](err); ok {
		peer = re.Sender
	}
	r.Note(ActionEnvelopeRefused, peer, envelope.Reason(err), "on "+subject+": "+err.Error())
}

// Flush hands the sink every record due at the clock's now: first records
// of new keys, and a summary of each key last recorded an interval ago or
// more that has refusals pending; keys quiet for an interval are forgotten.
// With all, every pending count is handed over whatever the interval (at
// shutdown). Without a sink it does nothing. Records the sink fails on are
// counted again, so none is lost while the sink recovers. It returns the
// sink's first error.
func (r *Refusals) Flush(all bool) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	sink := r.sink
	if sink == nil {
		r.mu.Unlock()
		return nil
	}
	now := r.now()
	var due []RefusalRecord
	for k, c := range r.keys {
		quiet := now.Sub(c.last) >= r.interval
		switch {
		case c.pending > 0 && (!c.reported || quiet || all):
			due = append(due, RefusalRecord{Action: k.action, Peer: k.peer, Reason: k.reason, Detail: c.detail,
				Count: c.pending, First: !c.reported, Since: c.since})
			c.pending, c.reported, c.last = 0, true, now
		case c.pending == 0 && quiet:
			delete(r.keys, k)
		}
	}
	r.mu.Unlock()
	var firstErr error
	for _, rec := range due {
		if err := sink(rec); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			r.restore(rec)
		}
	}
	return firstErr
}

// restore counts again a record the sink could not take.
func (r *Refusals) restore(rec RefusalRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := refusalKey{action: rec.Action, peer: rec.Peer, reason: rec.Reason}
	c, ok := r.keys[k]
	if !ok {
		c = &refusalCount{detail: rec.Detail}
		r.keys[k] = c
	}
	c.pending += rec.Count
	c.since = rec.Since
	if rec.First {
		c.reported = false
	}
}

// Run flushes first records as they come and summaries every interval
// until ctx ends, then hands over what is pending. Sink errors go to onErr.
func (r *Refusals) Run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := r.Flush(true); err != nil {
				onErr(err)
			}
			return
		case <-t.C:
		case <-r.wake:
		}
		if err := r.Flush(false); err != nil {
			onErr(err)
		}
	}
}

func (r *Refusals) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// bounded cuts s to at most n bytes on a rune boundary.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
