package dashboard

import (
	"sync"
	"time"
)

// Sign-in throttling: after failuresAllowed failed sign-ins for one account
// name as typed (failuresPerAddress from one client address, which many
// people behind one NAT share), that key is locked for lockoutBase,
// doubling with each further failure up to lockoutMax. A key's failures
// are forgotten forgetAfter its last one, or (accounts) on a successful
// sign-in.
const (
	failuresAllowed    = 5
	failuresPerAddress = 20
	lockoutBase        = 30 * time.Second
	lockoutMax         = 15 * time.Minute
	forgetAfter        = time.Hour
	maxLimiterKeys     = 100000 // beyond this, expired entries are swept on insert
)

// limiter counts failed sign-ins per key. It lives in memory: a restart
// forgets it, which an attacker cannot cause from the web.
//
// An attempt reserves its place before the (slow) password check and
// settles after it: attempts in flight count against the allowance like
// failures, so a burst of parallel sign-ins gets no more checks than a
// sequence would.
type limiter struct {
	allowed int // failures before a key is locked
	mu      sync.Mutex
	keys    map[string]*failures
}

type failures struct {
	n           int
	inFlight    int // reserved, not yet settled
	last        time.Time
	lockedUntil time.Time
	auditedTill time.Time // a refusal before this was already audited
}

func newLimiter(allowed int) *limiter {
	return &limiter{allowed: allowed, keys: map[string]*failures{}}
}

// reserve takes one attempt for key at now, or says how long until one
// may try again (wait > 0) and whether this refusal is the first of its
// lock window (audit: the caller records only that one).
func (l *limiter) reserve(now time.Time, key string) (wait time.Duration, audit bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.entry(now, key)
	switch {
	case f.lockedUntil.After(now):
		wait = f.lockedUntil.Sub(now)
	case f.inFlight >= max(l.allowed-f.n, 1):
		// The attempts in flight would use up the allowance (after a
		// lock, one at a time): the lock they lead to is at least
		// lockoutBase.
		wait = lockoutBase
	default:
		f.inFlight++
		return 0, false
	}
	if !f.auditedTill.After(now) {
		f.auditedTill = now.Add(wait)
		audit = true
	}
	return wait, audit
}

// release gives back a reservation without a verdict (the check could not
// run).
func (l *limiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.keys[key]; ok && f.inFlight > 0 {
		f.inFlight--
	}
}

// settle ends a reservation of key: a failure counts (and may lock the
// key), a success forgets the key's failures when forget.
func (l *limiter) settle(now time.Time, key string, failed, forget bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.entry(now, key)
	if f.inFlight > 0 {
		f.inFlight--
	}
	switch {
	case failed:
		f.n++
		f.last = now
		if f.n >= l.allowed {
			lock := lockoutBase << min(f.n-l.allowed, 10)
			f.lockedUntil = now.Add(min(lock, lockoutMax))
		}
	case forget:
		f.n, f.lockedUntil, f.auditedTill = 0, time.Time{}, time.Time{}
	}
}

// entry is key's record, new where it has none or its failures are
// forgotten; l.mu is held.
func (l *limiter) entry(now time.Time, key string) *failures {
	if len(l.keys) > maxLimiterKeys {
		for k, f := range l.keys {
			if f.inFlight == 0 && now.Sub(f.last) > forgetAfter && !f.lockedUntil.After(now) {
				delete(l.keys, k)
			}
		}
	}
	f, ok := l.keys[key]
	switch {
	case !ok:
		f = &failures{last: now}
		l.keys[key] = f
	case now.Sub(f.last) > forgetAfter && !f.lockedUntil.After(now):
		f.n, f.last = 0, now
	}
	return f
}
