package linkrelay

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)} }

func TestBucketBurst(t *testing.T) {
	clock := newFakeClock()
	for _, tt := range []struct {
		rate Rate
		want int
	}{
		{125e6, 250_000},     // 1 Gbit/s: 2 ms of it
		{12.5e6, copyBuffer}, // 100 Mbit/s: 25 KB, raised to one read
		{MaxRate, maxBurst},  // capped
	} {
		if got := NewBucket(tt.rate, clock.now).Burst(); got != tt.want {
			t.Errorf("rate %s: burst %d, want %d", tt.rate, got, tt.want)
		}
	}
}

func TestBucketReserve(t *testing.T) {
	clock := newFakeClock()
	const rate = 1e6 // 1 MB/s: a byte is a microsecond
	b := NewBucket(rate, clock.now)
	burst := b.Burst() // 32 KiB at this rate
	if burst != copyBuffer {
		t.Fatalf("burst %d, want %d", burst, copyBuffer)
	}
	steps := []struct {
		name    string
		advance time.Duration
		take    int
		wait    time.Duration
	}{
		{"a full bucket lets its burst pass", 0, burst, 0},
		{"an empty one makes the next bytes wait their time", 0, 1000, 1000 * time.Microsecond},
		{"debt adds up", 0, 500, 1500 * time.Microsecond},
		{"waiting as told pays the debt exactly", 1500 * time.Microsecond, 0, 0},
		{"and the next bytes wait again", 0, 200, 200 * time.Microsecond},
		{"waiting longer than told is credited", 700 * time.Microsecond, 500, 0},
		{"up to what was credited", 0, 1, time.Microsecond},
		{"an idle bucket fills to its burst and no more", time.Hour, burst + 250, 250 * time.Microsecond},
		{"a clock that goes back gives nothing", -time.Second, 100, 350 * time.Microsecond},
	}
	for _, s := range steps {
		clock.advance(s.advance)
		if got := b.Reserve(s.take); got != s.wait {
			t.Fatalf("%s: Reserve(%d) after %v = %v, want %v", s.name, s.take, s.advance, got, s.wait)
		}
	}
}

// TestBucketPacesATransfer plays a copy loop on the fake clock: 64 MiB in
// reads of up to 32 KiB, each followed by the wait the bucket asks for
// plus a late wake-up of up to 1.5 ms (less than the burst's 2 ms). The
// transfer takes its bytes over the rate, less the burst that a full
// bucket lets through at the start, and no 1 MiB stretch of it runs
// faster than the rate allows.
func TestBucketPacesATransfer(t *testing.T) {
	clock := newFakeClock()
	const rate = 125e6 // 1 Gbit/s
	b := NewBucket(rate, clock.now)
	rng := rand.New(rand.NewPCG(1, 2))
	start := clock.now()
	const total = 64 << 20
	var sent int
	var mib []time.Time // when each MiB boundary was crossed
	for sent < total {
		n := min(1+rng.IntN(copyBuffer), total-sent)
		wait := b.Reserve(n)
		clock.advance(wait)
		if wait > 0 {
			clock.advance(time.Duration(rng.IntN(1500)) * time.Microsecond)
		}
		for next := (len(mib) + 1) << 20; sent < next && sent+n >= next; next += 1 << 20 {
			mib = append(mib, clock.now())
		}
		sent += n
	}
	elapsed := clock.now().Sub(start).Seconds()
	ideal := float64(total-b.Burst()) / rate
	// The last read's late wake-up is not credited to anything: at most
	// 1.5 ms over.
	if elapsed < ideal || elapsed > ideal+0.0015 {
		t.Fatalf("64 MiB at %s took %.6f s, want %.6f s (+1.5 ms at most)", Rate(rate), elapsed, ideal)
	}
	// Smooth at 1 MiB: each MiB after the first takes its time at the
	// rate, less at most one burst.
	least := float64(1<<20-b.Burst()) / rate
	for i := 1; i < len(mib); i++ {
		if d := mib[i].Sub(mib[i-1]).Seconds(); d < least-1e-9 {
			t.Fatalf("MiB %d passed in %.6f s, faster than the rate allows (%.6f s)", i+1, d, least)
		}
	}
	if got := float64(total) / elapsed / rate; math.Abs(got-1) > 0.01 {
		t.Fatalf("average rate %.4f of the link's", got)
	}
}
