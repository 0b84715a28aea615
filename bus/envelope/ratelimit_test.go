package envelope

import (
	"fmt"
	"testing"
	"time"
)

// TestSenderLimitsAreBounded: at maxLimiters senders a new one is refused
// while every bucket is in use, and admitted once idle buckets can be
// dropped; the map never grows past the bound.
func TestSenderLimitsAreBounded(t *testing.T) {
	l := newSenderLimits(1, 1)
	now := time.Unix(1_000_000, 0)
	for i := range maxLimiters {
		if !l.allow(fmt.Sprintf("site-%d", i), now) {
			t.Fatalf("sender %d refused its first envelope", i)
		}
	}
	if l.allow("latecomer", now) {
		t.Fatal("a sender past the bound was admitted while every bucket is in use")
	}
	if !l.allow("latecomer", now.Add(time.Second)) {
		t.Fatal("a sender past the bound was refused after the others' buckets refilled")
	}
	if n := len(l.m); n > maxLimiters {
		t.Errorf("%d buckets, bound %d", n, maxLimiters)
	}
}
