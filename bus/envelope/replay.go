package envelope

import (
	"math"
	"sync"
)

// replayCache remembers the ids of accepted envelopes for as long as an
// envelope carrying that id could still pass the time check, and no longer.
//
// An envelope sent at s passes the time check only while now <= s+window
// (its expiry). Ids are kept in generations keyed by their expiry's period,
// floor(expiry/window). Accepted envelopes have s in now±window, so their
// expiry lies in [now, now+2*window] and falls into one of the three periods
// base, base+1, base+2 where base = floor(now/window); a generation whose
// period is below base holds only expired ids and is dropped whole. So every
// id is remembered until its envelope expires (and at most one period
// longer), memory is bounded by max, and each operation is O(1): at most
// three map lookups and one insert.
//
// When max ids are remembered, new ids are refused (ErrReplayCacheFull)
// rather than any live id forgotten: the cache fails closed.
type replayCache struct {
	window int64 // nanoseconds, > 0
	max    int

	mu   sync.Mutex
	base int64 // highest floor(now/window) seen; generations below it are dead
	n    int   // ids held in live generations
	gens [3]generation
}

type generation struct {
	period int64 // floor(expiry/window) of every id in ids
	ids    map[[16]byte]struct{}
}

func newReplayCache(window int64, max int) *replayCache {
	return &replayCache{window: window, max: max, base: math.MinInt64}
}

// add remembers id of an envelope sent at sent (Unix nanoseconds) and
// received at now, or returns ErrReplay if it is already remembered,
// ErrReplayCacheFull if the cache is full, or ErrOutsideWindow if the
// envelope expired relative to a later clock reading seen by a concurrent
// call. The caller has already checked |now-sent| <= window.
func (c *replayCache) add(id [16]byte, sent, now int64) error {
	expiry := floorDiv(sent, c.window) + 1 // period of sent+window
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := floorDiv(now, c.window); b > c.base {
		c.base = b
		for i := range c.gens {
			if g := &c.gens[i]; g.ids != nil && g.period < b {
				c.n -= len(g.ids)
				g.ids = nil
			}
		}
	}
	if expiry < c.base || expiry > c.base+2 {
		return ErrOutsideWindow
	}
	for i := range c.gens {
		if _, seen := c.gens[i].ids[id]; seen {
			return ErrReplay
		}
	}
	if c.n >= c.max {
		return ErrReplayCacheFull
	}
	g := &c.gens[((expiry%3)+3)%3]
	if g.ids == nil || g.period != expiry {
		// Live periods base..base+2 have distinct slots, so a slot holding
		// another period holds a dead one.
		c.n -= len(g.ids)
		g.period, g.ids = expiry, make(map[[16]byte]struct{})
	}
	g.ids[id] = struct{}{}
	c.n++
	return nil
}

// len is the number of ids remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// floorDiv is a/b rounded toward minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
