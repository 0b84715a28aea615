package credential

import (
	"errors"
	"sync"
	"time"
)

// Once remembers one-time ids (a credential's command id, a signed site
// command's nonce) until their not-after, so that each is used once: a
// bounded set, since a participant cannot remember without end. It is safe
// for concurrent use; the zero value is not: make it with NewOnce.
type Once struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // id -> its not-after
}

// Use's refusals.
var (
	// ErrUsed is an id seen before.
	ErrUsed = errors.New("used before")
	// ErrFull is a set holding as many unexpired ids as it may.
	ErrFull = errors.New("too many in flight")
)

// NewOnce is a set of at most max ids at a time.
func NewOnce(max int) *Once { return &Once{max: max, seen: map[string]time.Time{}} }

// Use records id until notAfter, refusing one seen before (ErrUsed); at
// its bound, the expired ids are dropped first, and if none has expired
// the id is refused (ErrFull).
func (o *Once) Use(id string, notAfter, now time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[id]; ok {
		return ErrUsed
	}
	if len(o.seen) >= o.max {
		for k, t := range o.seen {
			if now.After(t) {
				delete(o.seen, k)
			}
		}
		if len(o.seen) >= o.max {
			return ErrFull
		}
	}
	o.seen[id] = notAfter
	return nil
}
