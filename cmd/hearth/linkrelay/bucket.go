package linkrelay

import "time"

// Bucket is a token bucket that paces one direction of one link: tokens
// are bytes, filled at the link's rate up to a burst. Reserve takes tokens
// for bytes about to pass, going into debt if there are too few, and
// answers how long the caller must wait for the debt to be paid; time
// comes from an injected clock, so the arithmetic is deterministic under
// test. A Bucket is not safe for concurrent use: each direction of each
// tunnel has its own.
type Bucket struct {
	rate   float64 // bytes per second
	burst  float64 // the most tokens it holds
	tokens float64 // may be negative: a debt
	last   time.Time
	now    func() time.Time
}

// burstTime is how much of the link's rate a bucket holds at most: a
// pause of up to this long (a late timer, a busy core) is made up, and no
// more than this much passes at once, far less than a 1 MiB chunk at the
// rates the bench plays (250 KB at 1 Gbit/s, 25 KB at 100 Mbit/s).
const burstTime = 2 * time.Millisecond

// minBurst and maxBurst bound the burst for slow and fast links; minBurst
// lets one read of the relay's copy buffer pass at a time.
const (
	minBurst = copyBuffer
	maxBurst = 1 << 20
)

// NewBucket is a full bucket for rate, read from the clock now.
func NewBucket(rate Rate, now func() time.Time) *Bucket {
	burst := min(max(float64(rate)*burstTime.Seconds(), minBurst), maxBurst)
	return &Bucket{rate: float64(rate), burst: burst, tokens: burst, last: now(), now: now}
}

// Burst is the most bytes the bucket lets pass at once.
func (b *Bucket) Burst() int { return int(b.burst) }

// Reserve takes n tokens and returns how long to wait before the n bytes
// may pass: zero while the bucket holds them, else the time the rate needs
// to pay the debt. The wait is the caller's to take; time spent waiting
// refills the bucket, so a caller that waits longer than told loses
// nothing up to the burst.
func (b *Bucket) Reserve(n int) time.Duration {
	t := b.now()
	if elapsed := t.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+b.rate*elapsed.Seconds())
		b.last = t
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
