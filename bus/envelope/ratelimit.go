package envelope

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// senderLimits is a token bucket per sender, keyed by the sender token of
// the subject an envelope arrived on. NATS permissions let a participant
// publish only under its own name, so the key is sound before any signature
// is checked, and a flood costs the receiver one map lookup per envelope.
//
// At most maxLimiters senders have a bucket. When a new sender arrives at
// that bound, buckets that are full again (their sender idle long enough to
// have earned its whole burst back) are dropped, which forgets nothing a
// fresh bucket would not give back; if none is, the new sender is refused
// until one is. Memory is bounded by maxLimiters buckets.
type senderLimits struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// maxLimiters bounds the buckets: far more than a project's participants
// (only they can publish at all).
const maxLimiters = 4096

func newSenderLimits(perSecond float64, burst int) *senderLimits {
	return &senderLimits{limit: rate.Limit(perSecond), burst: burst, m: map[string]*rate.Limiter{}}
}

// allow takes one token from sender's bucket at now, and reports whether
// there was one.
func (l *senderLimits) allow(sender string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m[sender]
	if lim == nil {
		if len(l.m) >= maxLimiters {
			for name, b := range l.m {
				if b.TokensAt(now) >= float64(l.burst) {
					delete(l.m, name)
				}
			}
			if len(l.m) >= maxLimiters {
				return false
			}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[sender] = lim
	}
	return lim.AllowN(now, 1)
}
