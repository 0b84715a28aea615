//go:build !linux

package swarm

import "time"

// threadCPU is the calling thread's CPU time, or -1 without it: this host
// has no thread clock Hearth reads, so SealTimer reports wall time.
func threadCPU() time.Duration { return -1 }
