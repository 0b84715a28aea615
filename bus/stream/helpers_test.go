package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// testLogger discards logs unless HEARTH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HEARTH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// poll calls f every `every` until it returns nil or total passes, and
// returns its last error.
func poll(total, every time.Duration, f func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// checkFor polls f until it returns nil or total passes.
func checkFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	if err := poll(total, every, f); err != nil {
		t.Fatalf("after %v: %v", total, err)
	}
}

// topology is a hub admitting "server" and some sites, as in bus's tests.
type topology struct {
	project *pkitest.Project
	sites   map[string]*pkitest.Participant
	hubCfg  bus.HubConfig
	hub     *bus.Hub
}

func newTopology(t testing.TB, sites ...string) *topology {
	t.Helper()
	p := pkitest.New(t)
	tp := &topology{project: p, sites: map[string]*pkitest.Participant{}}
	srv := p.Issue(t, "server", "hearth", pki.KindServer)
	ids := []pki.Identity{srv.Identity}
	for i, name := range sites {
		tp.sites[name] = p.Issue(t, name, fmt.Sprintf("org-%d", i%2), pki.KindSite)
		ids = append(ids, tp.sites[name].Identity)
	}
	tp.hubCfg = bus.HubConfig{
		Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: srv.TLS(), Trust: p.Trust, Participants: ids,
		StoreDir: t.TempDir(), Logger: testLogger(),
	}
	hub, err := bus.StartHub(tp.hubCfg)
	if err != nil {
		t.Fatal(err)
	}
	tp.hub = hub
	t.Cleanup(func() { tp.hub.Shutdown() })
	return tp
}

// cutLeaf closes site's leaf link at the hub and waits until the leaf
// noticed; the leaf dials again after its reconnect interval.
func (tp *topology) cutLeaf(site string, leaf *bus.Leaf) error {
	lz, err := tp.hub.Server().Leafz(&server.LeafzOptions{})
	if err != nil {
		return err
	}
	for _, l := range lz.Leafs {
		if l.Name == site {
			if err := tp.hub.Server().DisconnectClientByID(l.ID); err != nil {
				return err
			}
			return poll(5*time.Second, time.Millisecond, func() error {
				if leaf.HubConnected() {
					return fmt.Errorf("leaf %s still linked", site)
				}
				return nil
			})
		}
	}
	return fmt.Errorf("no leaf link of %s", site)
}

// joinedLeaf starts site's leaf node and returns a connection on it once
// the link to the hub is up.
func (tp *topology) joinedLeaf(t testing.TB, site string) (*bus.Leaf, *nats.Conn) {
	t.Helper()
	part := tp.sites[site]
	leaf, err := bus.StartLeaf(bus.LeafConfig{
		Name: site, HubURLs: []string{"tls://" + tp.hub.LeafAddr()}, LocalPort: -1,
		Certificate: part.TLS(), Trust: tp.project.Trust, Logger: testLogger(),
		ReconnectInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaf.WaitHub(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := leaf.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return leaf, nc
}

// hubConn is a connection for the server's own code on the hub.
func (tp *topology) hubConn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := tp.hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// newManager starts a Manager for self on nc; tweak adjusts its Config.
func newManager(t testing.TB, nc *nats.Conn, self string, tweak ...func(*Config)) *Manager {
	t.Helper()
	cfg := Config{Conn: nc, Self: self, Logger: testLogger()}
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
	probe, err := to.nc.SubscribeSync(bus.Stream(to.cfg.Self, from.cfg.Self, "ffffffffffffffffffffffffffffffff"))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Unsubscribe()
	to.nc.Flush()
	checkFor(t, 10*time.Second, 0, func() error {
		from.nc.Publish(probe.Subject, []byte{0})
		if _, err := probe.NextMsg(50 * time.Millisecond); err != nil {
			return fmt.Errorf("%s does not reach %s: %w", from.cfg.Self, to.cfg.Self, err)
		}
		return nil
	})
}

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
