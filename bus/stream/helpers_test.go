package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
)

// newManager starts a Manager for self on nc; tweak adjusts its Config.
func newManager(t testing.TB, nc *nats.Conn, self string, tweak ...func(*Config)) *Manager {
	t.Helper()
	cfg := Config{Conn: nc, Self: self, Logger: bustest.Logger()}
	for _, f := range tweak {
		f(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// reachable waits until a stream message from one manager reaches the
// other's inbox (subscription interest crossed the leaf links).
func reachable(t testing.TB, from *Manager, to *Manager) {
	t.Helper()
	probe, err := to.nc.SubscribeSync(bus.Stream(to.cfg.Self, from.cfg.Self, noStream))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Unsubscribe()
	bustest.DeliverUntilSeen(t, from.nc, probe.Subject, probe)
}

// noStream is a stream id no test's stream has.
const noStream = "ffffffffffffffffffffffffffffffff"

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int64, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rng := rand.NewChaCha8(s)
	rng.Read(b)
	return b
}

// checkSink verifies that chunks arrive in order at the right offsets and
// hashes what it gets; hook, if set, runs for each chunk first.
type checkSink struct {
	mu     sync.Mutex
	h      hash.Hash
	next   int
	offset int64
	seen   map[int]bool
	err    error
	last   time.Time
	hook   func(index int)
	// misaligned counts chunks whose data did not start 4-byte aligned:
	// model sinks read chunks as float32s in place only when they do.
	misaligned int
}

func newCheckSink() *checkSink { return &checkSink{h: sha256.New(), seen: map[int]bool{}} }

func (s *checkSink) WriteChunk(index int, offset int64, data []byte) error {
	if s.hook != nil {
		s.hook(index)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && (index != s.next || offset != s.offset) {
		s.err = fmt.Errorf("got chunk %d at %d, want chunk %d at %d", index, offset, s.next, s.offset)
	}
	if len(data) > 0 && uintptr(unsafe.Pointer(&data[0]))%4 != 0 {
		s.misaligned++
	}
	s.seen[index] = true
	s.next++
	s.offset += int64(len(data))
	s.h.Write(data)
	s.last = time.Now()
	return nil
}

// check fails t unless the sink got exactly want, in order.
func (s *checkSink) check(t testing.TB, want []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatal(s.err)
	}
	sum := sha256.Sum256(want)
	if s.offset != int64(len(want)) || !bytes.Equal(s.h.Sum(nil), sum[:]) {
		t.Fatalf("sink got %d bytes that differ from the %d sent", s.offset, len(want))
	}
	if s.misaligned > 0 {
		t.Fatalf("%d chunks arrived at addresses that are not 4-byte aligned", s.misaligned)
	}
}

// transfer offers data from one manager to another (with OfferBytes when
// fromMemory, else Offer) and receives it.
func transfer(t testing.TB, from, to *Manager, data []byte, fromMemory bool, sink Sink) (*Outgoing, Stats, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out *Outgoing
	var err error
	if fromMemory {
		out, err = from.OfferBytes(ctx, to.cfg.Self, data)
	} else {
		out, err = from.Offer(ctx, to.cfg.Self, bytes.NewReader(data), int64(len(data)))
	}
	if err != nil {
		t.Fatal(err)
	}
	st, rerr := to.Receive(ctx, from.cfg.Self, out.Manifest, sink)
	if werr := out.Wait(ctx); rerr == nil && werr != nil {
		t.Fatalf("receiver done but sender: %v", werr)
	}
	return out, st, rerr
}
