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
type limiter struct {
	allowed int // failures before a key is locked
	mu      sync.Mutex
	keys    map[string]*failures
}

type failures struct {
	n           int
	last        time.Time
	lockedUntil time.Time
}

func newLimiter(allowed int) *limiter {
	return &limiter{allowed: allowed, keys: map[string]*failures{}}
}

// wait is how long until any of keys may try again (0: now).
func (l *limiter) wait(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for _, k := range keys {
		if f, ok := l.keys[k]; ok && f.lockedUntil.After(now) {
			d = max(d, f.lockedUntil.Sub(now))
		}
	}
	return d
}

// fail records a failed sign-in for each of keys.
func (l *limiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) > maxLimiterKeys {
		for k, f := range l.keys {
			if now.Sub(f.last) > forgetAfter && !f.lockedUntil.After(now) {
				delete(l.keys, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := l.keys[k]
		if !ok || now.Sub(f.last) > forgetAfter {
			f = &failures{}
			l.keys[k] = f
		}
		f.n++
		f.last = now
		if f.n >= l.allowed {
			lock := lockoutBase << min(f.n-l.allowed, 10)
			f.lockedUntil = now.Add(min(lock, lockoutMax))
		}
	}
}

// succeed forgets key's failures.
func (l *limiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, key)
}
