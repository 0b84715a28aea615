package envelope

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestReplayCache(t *testing.T) {
	const w = int64(time.Minute)
	now := int64(1_000_000) * w // a period boundary
	id := func(b byte) [16]byte { return [16]byte{b} }
	type step struct {
		name      string
		id        byte
		sent, now int64
		want      error
		wantLen   int
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{
			name: "an id is refused until its envelope expires, then forgotten",
			max:  10,
			steps: []step{
				{"first", 1, now, now, nil, 1},
				{"again", 1, now, now, ErrReplay, 1},
				{"again, at the last valid instant", 1, now, now + w, ErrReplay, 1},
				{"another id, one period later", 2, now + w, now + w, nil, 2},
				{"after two periods the first is gone", 3, now + 2*w, now + 2*w, nil, 2},
			},
		},
		{
			name: "an id sent one window ahead is kept for two windows",
			max:  10,
			steps: []step{
				{"first", 1, now + w, now, nil, 1},
				{"replay as late as it could still pass", 1, now + w, now + 2*w, ErrReplay, 1},
			},
		},
		{
			name: "an id sent one window back is kept until then",
			max:  10,
			steps: []step{
				{"first", 1, now - w, now, nil, 1},
				{"replay at once", 1, now - w, now, ErrReplay, 1},
				{"replay just before the period ends", 1, now - w, now + w - 1, ErrReplay, 1},
			},
		},
		{
			name: "full cache refuses new ids, keeps old ones, recovers when they expire",
			max:  2,
			steps: []step{
				{"a", 1, now, now, nil, 1},
				{"b", 2, now, now, nil, 2},
				{"c refused", 3, now, now, ErrReplayCacheFull, 2},
				{"a still a replay", 1, now, now, ErrReplay, 2},
				{"c after a and b expired", 3, now + 2*w, now + 2*w, nil, 1},
			},
		},
		{
			name: "a clock reading behind a concurrent one cannot store an expired id",
			max:  10,
			steps: []step{
				{"new clock", 1, now + 5*w, now + 5*w, nil, 1},
				{"old clock", 2, now, now, ErrOutsideWindow, 1},
			},
		},
		{
			name: "times before 1970",
			max:  10,
			steps: []step{
				{"first", 1, -now - 1, -now, nil, 1},
				{"again", 1, -now - 1, -now, ErrReplay, 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplayCache(w, tt.max, 4)
			for _, s := range tt.steps {
				if err := c.add("site-2", id(s.id), s.sent, s.now); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
					t.Fatalf("%s: add = %v, want %v", s.name, err, s.want)
				}
				if got := c.len(); got != s.wantLen {
					t.Fatalf("%s: len = %d, want %d", s.name, got, s.wantLen)
				}
			}
		})
	}
}

func TestFloorDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{
		{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {math.MinInt64, 1, math.MinInt64}, {math.MinInt64, 3, math.MinInt64/3 - 1},
	}
	for _, tt := range tests {
		if got := floorDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestReplayCacheAgainstModel drives the cache with random traffic and
// checks it against the plain definition: an id accepted with sent time s
// must be refused as a replay while now <= s+window, and an id never
// accepted must never be called a replay.
func TestReplayCacheAgainstModel(t *testing.T) {
	const w = int64(time.Minute)
	rng := rand.New(rand.NewPCG(1, 2))
	c := newReplayCache(w, 1<<20, 4)
	expiry := map[byte]int64{} // id -> latest sent+w accepted
	now := int64(1_000_000)*w + 12345
	for i := range 200_000 {
		now += rng.Int64N(w / 50)
		sent := now - w + rng.Int64N(2*w+1)
		b := byte(rng.IntN(256))
		err := c.add("site-2", [16]byte{b}, sent, now)
		exp, known := expiry[b]
		switch {
		case known && now <= exp && !errors.Is(err, ErrReplay):
			t.Fatalf("step %d: id %d, live until %d (now %d), accepted again: %v", i, b, exp, now, err)
		case !known && err != nil:
			t.Fatalf("step %d: id %d never seen, refused: %v", i, b, err)
		case err == nil:
			expiry[b] = sent + w
		case !errors.Is(err, ErrReplay):
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if c.len() > 256 {
		t.Errorf("cache holds %d ids for 256 distinct ones", c.len())
	}
}
