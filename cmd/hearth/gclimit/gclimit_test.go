package gclimit

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimitKeepsHeadroomAboveLiveData(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ live, other, want int64 }{
		{10 * mib, 5 * mib, 527 * mib},     // a server's small heap
		{1024 * mib, 20 * mib, 1556 * mib}, // a swarm site's
	} {
		if got := Limit(c.live, c.other, 512*mib); got != c.want {
			t.Errorf("Limit(%d MiB live, %d MiB other) = %d MiB, want %d MiB", c.live/mib, c.other/mib, got/mib, c.want/mib)
		}
	}
}

// TestFollowRaisesTheLimitWithTheLiveHeap holds a large buffer live and
// sees the process's soft limit rise above it, then fall once it is gone.
func TestFollowRaisesTheLimitWithTheLiveHeap(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	const mib = 1 << 20
	stop := Follow(64*mib, 5*time.Millisecond)
	defer stop()

	waitFor := func(what string, ok func(limit int64) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			runtime.GC()
			limit := debug.SetMemoryLimit(-1)
			if ok(limit) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the limit stayed at %d MiB", what, limit/mib)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	live := make([]byte, 256*mib)
	for i := range live {
		live[i] = byte(i)
	}
	waitFor("with 256 MiB live", func(limit int64) bool { return limit >= (256+64)*mib })
	runtime.KeepAlive(live)
	live = nil
	waitFor("after it was freed", func(limit int64) bool { return limit < 256*mib })
}
