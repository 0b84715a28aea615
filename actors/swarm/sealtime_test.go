package swarm_test

import (
	"crypto/sha256"
	"runtime"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/swarm"
)

// TestSealTimeTellsWorkFromWaiting: a stretch of work counts as CPU time
// about as long as its wall time; a wait counts as wall time only.
func TestSealTimeTellsWorkFromWaiting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the thread CPU clock is read on Linux only; elsewhere CPU is the wall time")
	}
	timer := swarm.StartSeal()
	buf := make([]byte, 1<<20)
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		sha256.Sum256(buf)
	}
	work := timer.Stop()
	timer = swarm.StartSeal()
	time.Sleep(50 * time.Millisecond)
	wait := timer.Stop()
	if work.Wall < 50*time.Millisecond || work.CPU < work.Wall/10 || work.CPU > work.Wall+5*time.Millisecond {
		t.Errorf("50 ms of hashing: %+v", work)
	}
	if wait.Wall < 50*time.Millisecond || wait.CPU > 5*time.Millisecond {
		t.Errorf("50 ms of sleep: %+v", wait)
	}
	if sum := work.Add(wait); sum.Wall != work.Wall+wait.Wall || sum.CPU != work.CPU+wait.CPU {
		t.Errorf("Add: %+v + %+v = %+v", work, wait, sum)
	}
}
