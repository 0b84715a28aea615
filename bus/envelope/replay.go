package envelope

import (
	"errors"
	"math"
	"sync"
)

// errTooManySenders is ErrReplayCacheFull for a sender that has no ids
// remembered while maxSenders others have.
var errTooManySenders = errors.New("too many senders with ids remembered")

// replayCache remembers the ids of accepted envelopes, per verified sender,
// for as long as an envelope carrying that id could still pass the time
// check, and no longer.
//
// An envelope sent at s passes the time check only while now <= s+window
// (its expiry). Each sender's ids are kept in generations keyed by their
// expiry's period, floor(expiry/window). Accepted envelopes have s in
// [now-window, now+skew] with skew <= window, so their expiry lies in
// [now, now+2*window] and falls into one of the three periods base, base+1,
// base+2 where base = floor(now/window); a generation whose period is below
// base holds only expired ids and is dropped whole. So every id is
// remembered until its envelope expires (and at most one period longer) and
// each operation is O(1): at most three map lookups and one insert (plus,
// once a period, one pass over the senders to drop dead generations).
//
// Accounting is per sender: each sender may have at most perSender ids
// remembered, and at most maxSenders senders may have any, so memory is
// bounded by perSender*maxSenders ids. A sender at its quota is refused new
// ids (ErrReplayCacheFull) rather than any live id forgotten: the cache
// fails closed, for that sender only; a sender with no ids remembered while
// maxSenders others have some is refused likewise (errTooManySenders).
type replayCache struct {
	window     int64 // nanoseconds, > 0
	perSender  int
	maxSenders int

	mu      sync.Mutex
	base    int64 // highest floor(now/window) seen; generations below it are dead
	senders map[string]*senderIDs
}

// senderIDs are one sender's remembered ids.
type senderIDs struct {
	n    int // ids held in live generations
	gens [3]generation
}

type generation struct {
	period int64 // floor(expiry/window) of every id in ids
	ids    map[[16]byte]struct{}
}

func newReplayCache(window int64, perSender, maxSenders int) *replayCache {
	return &replayCache{window: window, perSender: perSender, maxSenders: maxSenders,
		base: math.MinInt64, senders: map[string]*senderIDs{}}
}

// add remembers id of an envelope from sender sent at sent (Unix
// nanoseconds) and received at now, or returns ErrReplay if sender's id is
// already remembered, ErrReplayCacheFull if sender is at its quota (wrapping
// errTooManySenders if too many other senders have ids remembered), or
// ErrOutsideWindow if the envelope expired relative to a later clock reading
// seen by a concurrent call. The caller has already checked that sent lies
// in [now-window, now+window].
func (c *replayCache) add(sender string, id [16]byte, sent, now int64) error {
	expiry := floorDiv(sent, c.window) + 1 // period of sent+window
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := floorDiv(now, c.window); b > c.base {
		c.base = b
		for name, s := range c.senders {
			if s.drop(b); s.n == 0 {
				delete(c.senders, name)
			}
		}
	}
	if expiry < c.base || expiry > c.base+2 {
		return ErrOutsideWindow
	}
	s := c.senders[sender]
	if s == nil {
		if len(c.senders) >= c.maxSenders {
			return errors.Join(ErrReplayCacheFull, errTooManySenders)
		}
		s = &senderIDs{}
		c.senders[sender] = s
	}
	for i := range s.gens {
		if _, seen := s.gens[i].ids[id]; seen {
			return ErrReplay
		}
	}
	if s.n >= c.perSender {
		return ErrReplayCacheFull
	}
	g := &s.gens[((expiry%3)+3)%3]
	if g.ids == nil || g.period != expiry {
		// Live periods base..base+2 have distinct slots, so a slot holding
		// another period holds a dead one.
		s.n -= len(g.ids)
		g.period, g.ids = expiry, make(map[[16]byte]struct{})
	}
	g.ids[id] = struct{}{}
	s.n++
	return nil
}

// drop forgets the generations whose period is below base.
func (s *senderIDs) drop(base int64) {
	for i := range s.gens {
		if g := &s.gens[i]; g.ids != nil && g.period < base {
			s.n -= len(g.ids)
			g.ids = nil
		}
	}
}

// len is the number of ids remembered, over all senders.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.senders {
		n += s.n
	}
	return n
}

// floorDiv is a/b rounded toward minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
