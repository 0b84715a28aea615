// Package gclimit keeps a process's soft memory limit a fixed headroom
// above the memory its live data needs, so that the limit bounds garbage
// and never live data.
//
// A Hearth daemon runs the collector at GOGC 400: model streams allocate a
// buffer per chunk while the live heap of a server (whose models live off
// the heap) is small, and a lower GOGC collects every few chunks. A fixed
// soft limit bounded the growth GOGC 400 allows, until a process's live
// heap grew past it: a swarm site holds its models on the heap (the global
// model it trained from, its update, the sealed copy in flight), over a
// gigabyte for a 256 MiB model. Above the limit the collector runs back to
// back and the scavenger hands every freed page back to the kernel, to be
// faulted in anew: the swarm round took 13.1 s, against 8.4 s with the
// limit at 1.5 GiB (hearth bench, 256 MiB x 4, 2026-12-03). Follow moves
// the limit with the live heap instead.
package gclimit

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Limit is the soft memory limit for a process whose live heap is live
// bytes and whose runtime needs other bytes besides (stacks, metadata):
// headroom above both.
func Limit(live, other, headroom int64) int64 { return live + other + headroom }

// Follow sets the soft memory limit now and then every interval to Limit
// of the live heap the last collection found, until stop is called.
func Follow(headroom int64, interval time.Duration) (stop func()) {
	set := func() {
		live, other := read()
		debug.SetMemoryLimit(Limit(live, other, headroom))
	}
	set()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				set()
			}
		}
	}()
	return func() { close(done) }
}

// The runtime's figures read; the soft limit counts total less released.
var names = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

// read returns the live heap (as of the last collection) and the memory the
// runtime holds besides the heap.
func read() (live, other int64) {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	v := make([]int64, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = int64(s[i].Value.Uint64())
		}
	}
	return v[0], max(0, v[1]-v[2]-v[3]-v[4]-v[5])
}
