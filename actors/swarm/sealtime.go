package swarm

import (
	"runtime"
	"sync/atomic"
	"time"
)

// SealTime is time spent in a stream's encryption or decryption, two ways:
// Wall, the wall time inside the calls, and CPU, the processor time they
// took (the calling thread's CPU clock where the host has one, else the
// wall time). On a loaded host the two differ: wall time also counts the
// calls' waits for a core, held by the other processes of the round.
type SealTime struct{ Wall, CPU time.Duration }

// Add is s and t together.
func (s SealTime) Add(t SealTime) SealTime { return SealTime{s.Wall + t.Wall, s.CPU + t.CPU} }

// SealTimer times one stretch of sealing work on one goroutine.
type SealTimer struct {
	wall time.Time
	cpu  time.Duration
}

// StartSeal starts timing; Stop must follow on the same goroutine. The
// goroutine keeps its thread in between, so that the thread's CPU clock is
// the work's.
func StartSeal() SealTimer {
	runtime.LockOSThread()
	return SealTimer{wall: time.Now(), cpu: threadCPU()}
}

// Stop ends the timing and releases the thread.
func (t SealTimer) Stop() SealTime {
	wall := time.Since(t.wall)
	cpu := threadCPU() - t.cpu
	runtime.UnlockOSThread()
	if t.cpu < 0 { // no thread clock here
		cpu = wall
	}
	return SealTime{Wall: wall, CPU: cpu}
}

// sealSpent adds up SealTimes from several goroutines.
type sealSpent struct{ wall, cpu atomic.Int64 }

func (s *sealSpent) add(t SealTime) { s.wall.Add(int64(t.Wall)); s.cpu.Add(int64(t.CPU)) }

func (s *sealSpent) load() SealTime {
	return SealTime{Wall: time.Duration(s.wall.Load()), CPU: time.Duration(s.cpu.Load())}
}
