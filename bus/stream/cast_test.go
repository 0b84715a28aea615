package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
)

// castSetup is a sender (site-1) and recipients (site-2, site-3, ...), each
// a Manager on its own site's leaf, with the stream subjects between the
// sender and each recipient reachable both ways.
type castSetup struct {
	tp         *bustest.Topology
	sender     *Manager
	senderNC   *nats.Conn
	names      []string // the recipients'
	recipients []*Manager
	conns      []*nats.Conn
	leaves     []*bus.Leaf
}

// newCastSetup starts the sender and n recipients; tweak(i, cfg) adjusts
// each Manager's Config (i = -1 for the sender).
func newCastSetup(t testing.TB, n int, tweak func(i int, c *Config)) *castSetup {
	t.Helper()
	sites := []string{"site-1"}
	for i := range n {
		sites = append(sites, fmt.Sprintf("site-%d", i+2))
	}
	s := &castSetup{tp: bustest.NewTopology(t, sites...), names: sites[1:]}
	manager := func(i int, name string) (*Manager, *nats.Conn, *bus.Leaf) {
		leaf, nc := s.tp.JoinedLeaf(t, name)
		return newManager(t, nc, name, func(c *Config) {
			if tweak != nil {
				tweak(i, c)
			}
		}), nc, leaf
	}
	s.sender, s.senderNC, _ = manager(-1, "site-1")
	for i, name := range s.names {
		m, nc, leaf := manager(i, name)
		s.recipients, s.conns, s.leaves = append(s.recipients, m), append(s.conns, nc), append(s.leaves, leaf)
		reachable(t, s.sender, m)
		reachable(t, m, s.sender)
	}
	return s
}

// hearTold subscribes to what the sender tells recipient i of any stream
// (an abort, a split message) and waits until that subscription is heard
// through the hub, so that nothing the sender tells i from then on is
// lost; call it before the cast.
func (s *castSetup) hearTold(t testing.TB, i int) *nats.Subscription {
	t.Helper()
	sub, err := s.conns[i].SubscribeSync(bus.Stream(s.names[i], "site-1", "*"))
	if err != nil {
		t.Fatal(err)
	}
	bustest.DeliverUntilSeen(t, s.senderNC, bus.Stream(s.names[i], "site-1", noStream), sub)
	return sub
}

// cast offers data, prepared, in one cast to every recipient, under a
// context that ends after timeout (or with the test).
func (s *castSetup) cast(t testing.TB, data []byte, timeout time.Duration) (context.Context, *Cast) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	p, err := s.sender.Prepare(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.sender.OfferCast(ctx, s.names, p)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, c
}

// byHand makes recipient i's connection (its Manager left out of it) a
// recipient of cast c spoken by hand: it subscribes to the cast subject,
// grants itself a first window, and answers each chunk i that arrives with
// answer(i) as its credit.
func (s *castSetup) byHand(t testing.TB, c *Cast, i int, answer func(chunk int) credit) {
	t.Helper()
	nc, id := s.conns[i], c.Manifest.StreamId
	ctl := bus.Stream("site-1", s.names[i], id)
	if _, err := nc.Subscribe(bus.Cast("site-1", id), func(m *nats.Msg) {
		if chunk, _, ok := parseChunk(m); ok {
			nc.Publish(ctl, answer(chunk).encode())
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Publish(ctl, credit{ack: 0, limit: s.sender.cfg.Window}.encode())
}

// gotAll fails the test unless the recipient name's Receive (err) and its
// result in the cast both succeeded and its sink got data.
func gotAll(t testing.TB, name string, err error, results map[string]error, sink *checkSink, data []byte) {
	t.Helper()
	if err != nil || results[name] != nil {
		t.Fatalf("%s: Receive %v, cast result %v", name, err, results[name])
	}
	sink.check(t, data)
}

// othersComplete has every recipient but the last (site-4: spoken by
// hand, or dropped) pull the cast, waits for its end, and fails the test
// unless each of them got all of data; it returns every recipient's result
// and what the pullers' Receives counted.
func (s *castSetup) othersComplete(t testing.TB, ctx context.Context, c *Cast, data []byte) (map[string]error, []Stats) {
	t.Helper()
	want := make([]bool, len(s.recipients))
	for i := range len(want) - 1 {
		want[i] = true
	}
	sinks, stats, errs := s.receiveAll(ctx, c, want, nil)
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range s.names[:len(want)-1] {
		gotAll(t, name, errs[i], results, sinks[i], data)
	}
	return results, stats
}

// receiveAll runs Receive of the cast at each recipient whose want is
// true, each into a fresh checkSink (whose hook, if set, runs first), and
// returns what each got when all returned.
func (s *castSetup) receiveAll(ctx context.Context, c *Cast, want []bool, hook func(i, chunk int)) ([]*checkSink, []Stats, []error) {
	sinks := make([]*checkSink, len(s.recipients))
	stats := make([]Stats, len(s.recipients))
	errs := make([]error, len(s.recipients))
	var wg sync.WaitGroup
	for i, m := range s.recipients {
		sinks[i] = newCheckSink()
		if hook != nil {
			sinks[i].hook = func(chunk int) { hook(i, chunk) }
		}
		if want != nil && !want[i] {
			continue
		}
		wg.Go(func() { stats[i], errs[i] = m.Receive(ctx, "site-1", c.Manifest, sinks[i]) })
	}
	wg.Wait()
	return sinks, stats, errs
}

// TestCastDeliversTheSameBytesToEveryRecipient: one cast to three sites on
// three leaves delivers identical bytes to each; the sender publishes each
// chunk once and its leaf link carries the stream once, while the hub
// sends it out three times, once down each recipient's link.
func TestCastDeliversTheSameBytesToEveryRecipient(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) { c.ChunkBytes = 256 << 10 })
	data := randomBytes(8<<20+12345, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.sender.Prepare(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.tp.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.sender.OfferCast(ctx, s.names, p)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Manifest.Cast {
		t.Fatal("the manifest of a cast does not say so")
	}
	sinks, stats, errs := s.receiveAll(ctx, c, nil, nil)
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chunks := len(c.Manifest.ChunkHashes)
	for i, name := range s.names {
		gotAll(t, name, errs[i], results, sinks[i], data)
		if stats[i].Chunks != chunks || stats[i].Corrupt != 0 {
			t.Fatalf("%s: stats %+v, want %d chunks, none corrupt", name, stats[i], chunks)
		}
		// Receive unsubscribed from the cast: only the inbox is left.
		if n := s.conns[i].NumSubscriptions(); n != 1 {
			t.Fatalf("%s has %d subscriptions after the stream, want its inbox only", name, n)
		}
	}
	if st := c.Stats(); st.Sent != chunks || st.Resent != 0 || st.Acked != chunks {
		t.Fatalf("sender stats %+v, want %d chunks published once each, all confirmed", st, chunks)
	}
	after, err := s.tp.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	// The chunks and little else: credits, headers, protocol lines.
	carried := func(d int64) bool { return d >= size && d < size+size/20 }
	if d := after["site-1"].In - before["site-1"].In; !carried(d) {
		t.Fatalf("the sender's leaf link carried %d bytes to the hub, want the %d of the stream once", d, size)
	}
	for _, name := range s.names {
		if d := after[name].Out - before[name].Out; !carried(d) {
			t.Fatalf("the hub sent %d bytes down %s's link, want the %d of the stream once", d, name, size)
		}
	}
}

// TestCastDropsARecipientThatGrantsNothing: a recipient that never
// receives, or whose Sink stops taking chunks, is dropped from the cast
// with ErrStalled naming it about the hold time after it stopped, is told
// so, and the others complete.
func TestCastDropsARecipientThatGrantsNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		never bool // site-3 never calls Receive; else its Sink blocks at chunk 3
	}{{"never receives", true}, {"stops granting", false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCastSetup(t, 3, func(_ int, c *Config) { smallChunks(c) })
			data := randomBytes(40*64<<10+7, 2)
			ctx, c := s.cast(t, data, 20*time.Second)
			release := make(chan struct{})
			var releaseOnce sync.Once
			unblock := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(unblock) // before the managers close
			var stopped time.Time
			var stopMu sync.Mutex
			start := time.Now()
			want := []bool{true, !tc.never, true}
			var sinks []*checkSink
			var stats []Stats
			var errs []error
			done := make(chan struct{})
			go func() {
				defer close(done)
				sinks, stats, errs = s.receiveAll(ctx, c, want, func(i, chunk int) {
					if i == 1 && chunk == 3 {
						stopMu.Lock()
						stopped = time.Now()
						stopMu.Unlock()
						<-release
					}
				})
			}()
			results, err := c.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ended := time.Now()
			unblock()
			<-done
			stall := s.sender.cfg.StallTimeout
			for i, name := range s.names {
				if i == 1 {
					continue
				}
				gotAll(t, name, errs[i], results, sinks[i], data)
			}
			stuck := results["site-3"]
			if !errors.Is(stuck, ErrStalled) || !strings.Contains(stuck.Error(), "to site-3:") {
				t.Fatalf("site-3's result %v, want ErrStalled naming it", stuck)
			}
			since := start
			if !tc.never {
				since = stopped
				if !errors.Is(errs[1], ErrAborted) {
					t.Fatalf("site-3's Receive: %v, want ErrAborted: the cast told it", errs[1])
				}
				if stats[1].Chunks >= len(c.Manifest.ChunkHashes) {
					t.Fatalf("site-3 took every chunk (%+v), want it dropped", stats[1])
				}
			}
			if quiet := ended.Sub(since); quiet < castHold(s.sender.cfg)-100*time.Millisecond || quiet > stall+time.Second {
				t.Fatalf("the cast ended %v after site-3 stopped, want about %v (within the stall timeout %v)", quiet, castHold(s.sender.cfg), stall)
			}
			t.Logf("dropped %v; cast took %v; sender %+v", stuck, ended.Sub(start), c.Stats())
		})
	}
}

// TestCastDropsARecipientThatRewindsForever: a recipient (spoken by hand
// on site-4's connection) that answers every chunk with a rewind to 0 is
// dropped with ErrRewinds once its rewinds would resend more than a whole
// copy of the stream, and told so; the others complete, and the sender
// published less than two copies plus a window.
func TestCastDropsARecipientThatRewindsForever(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) { smallChunks(c) })
	data := randomBytes(40*64<<10, 3)
	told := s.hearTold(t, 2)
	ctx, c := s.cast(t, data, 20*time.Second)
	id := c.Manifest.StreamId
	// site-4 is the rogue: its Manager stays out of it, its connection
	// speaks the protocol.
	rogue := s.conns[2]
	var seq uint32
	var mu sync.Mutex
	ctl := bus.Stream("site-1", "site-4", id)
	if _, err := rogue.Subscribe(bus.Cast("site-1", id), func(*nats.Msg) {
		mu.Lock()
		seq++
		rogue.Publish(ctl, credit{ack: 0, limit: 4, seq: seq}.encode())
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	rogue.Publish(ctl, credit{ack: 0, limit: 4}.encode())

	results, _ := s.othersComplete(t, ctx, c, data)
	if r := results["site-4"]; !errors.Is(r, ErrRewinds) || !strings.Contains(r.Error(), "to site-4:") {
		t.Fatalf("site-4's result %v, want ErrRewinds naming it", r)
	}
	m, err := told.NextMsg(5 * time.Second)
	if err != nil || isChunk(m) || m.Data[0] != kindSenderAbort || parseAbort(m.Data) != "too many rewinds" {
		t.Fatalf("site-4 was told %v %v, want an abort for too many rewinds", m, err)
	}
	chunks := len(c.Manifest.ChunkHashes)
	st := c.Stats()
	if st.Resent < 1 || st.Sent > 2*chunks+s.sender.cfg.Window {
		t.Fatalf("sender stats %+v for %d chunks: want some resent, at most one extra copy and a window", st, chunks)
	}
	mu.Lock() // its callback may still run
	asked := seq
	mu.Unlock()
	t.Logf("site-4 asked %d rewinds; sender %+v; %v", asked, st, results["site-4"])
}

// TestCastResendsACorruptChunkToOneRecipient: a bad copy of chunk 5 that
// reaches one recipient alone (sent on its unicast subject, as a path that
// damaged it would deliver it) is refused there and re-requested with a
// rewind, which the cast serves; every recipient completes with the right
// bytes. The victim's window of one makes the bad copy arrive before the
// genuine one: the sender casts chunk 5 only once the victim took chunk 4.
func TestCastResendsACorruptChunkToOneRecipient(t *testing.T) {
	s := newCastSetup(t, 3, func(i int, c *Config) {
		smallChunks(c)
		if i == 0 {
			c.Window = 1
		}
	})
	data := randomBytes(20*64<<10+100, 4)
	ctx, c := s.cast(t, data, 20*time.Second)
	victim := s.recipients[0]
	key := streamKey{peer: "site-1", id: c.Manifest.StreamId}
	var injected error
	sinks, stats, errs := s.receiveAll(ctx, c, nil, func(i, chunk int) {
		if i != 0 || chunk != 4 {
			return
		}
		bad := append([]byte(nil), data[5*64<<10:6*64<<10]...)
		bad[0] ^= 0xff
		s.senderNC.PublishMsg(chunkMsg(bus.Stream("site-2", "site-1", c.Manifest.StreamId), 5, bad))
		injected = bustest.Poll(5*time.Second, time.Millisecond, func() error {
			victim.mu.Lock()
			in := victim.in[key]
			victim.mu.Unlock()
			if in == nil || len(in.ch) == 0 {
				return errors.New("the bad copy of chunk 5 has not reached site-2's stream")
			}
			return nil
		})
	})
	if injected != nil {
		t.Fatal(injected)
	}
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range s.names {
		gotAll(t, name, errs[i], results, sinks[i], data)
	}
	if stats[0].Corrupt != 1 || stats[0].Resent < 1 {
		t.Fatalf("site-2's stats %+v, want the bad copy refused and re-requested", stats[0])
	}
	for i := 1; i < len(stats); i++ {
		if stats[i].Corrupt != 0 {
			t.Fatalf("%s's stats %+v: a bad copy reached it", s.names[i], stats[i])
		}
	}
	t.Logf("site-2 %+v; sender %+v", stats[0], c.Stats())
}

// TestCastCannotBeForgedOrOverheard: during a cast from site-1, site-5 (a
// site, but not the sender) publishes bad chunks on site-1's cast subject
// and credit under the cast's id: its leaf forwards nothing (permissions),
// so the recipients complete untouched. An admin console subscribing to
// the cast is refused (a permissions violation) and hears nothing.
func TestCastCannotBeForgedOrOverheard(t *testing.T) {
	s := newCastSetup(t, 4, func(_ int, c *Config) { smallChunks(c) })
	forger := s.conns[3] // site-5, not a recipient
	s.names, s.recipients, s.conns = s.names[:3], s.recipients[:3], s.conns[:3]
	violations := make(chan error, 8)
	admin, err := nats.Connect("tls://"+s.tp.Hub.ClientAddr(),
		nats.Secure(&tls.Config{Certificates: []tls.Certificate{s.tp.Admin.TLS()}, RootCAs: s.tp.Project.Trust.Pool(), MinVersion: tls.VersionTLS13}),
		nats.NoReconnect(), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	data := randomBytes(40*64<<10, 5)
	ctx, c := s.cast(t, data, 20*time.Second)
	id := c.Manifest.StreamId
	spy, err := admin.SubscribeSync(bus.Cast("site-1", id))
	if err != nil {
		t.Fatal(err)
	}
	admin.Flush()
	stop := make(chan struct{})
	forged := make(chan int, 1)
	go func() {
		bad := make([]byte, 64<<10)
		n := 0
		defer func() { forged <- n }()
		for range 10 {
			select {
			case <-stop:
				return
			default:
			}
			for i := range 40 {
				forger.PublishMsg(chunkMsg(bus.Cast("site-1", id), i, bad))
				forger.Publish(bus.Stream("site-1", "site-5", id), credit{ack: 40, limit: 40}.encode())
				n++
			}
			forger.Flush()
		}
	}()
	sinks, stats, errs := s.receiveAll(ctx, c, nil, nil)
	results, err := c.Wait(ctx)
	close(stop)
	n := <-forged
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range s.names {
		gotAll(t, name, errs[i], results, sinks[i], data)
		if stats[i].Corrupt != 0 {
			t.Fatalf("%s's stats %+v: forged chunks reached it", name, stats[i])
		}
	}
	if n == 0 {
		t.Fatal("the forger published nothing: the test proves nothing")
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), bus.Cast("site-1", id)) {
			t.Fatalf("console told %v, want a subscription permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hub did not refuse the admin's subscription to the cast")
	}
	if m, err := spy.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("the admin heard the cast: %q", m.Subject)
	}
	t.Logf("%d forged chunks refused", n)
}

func TestOfferCastRefuses(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1")
	_, nc := tp.JoinedLeaf(t, "site-1")
	m := newManager(t, nc, "site-1")
	ctx := context.Background()
	p, err := m.Prepare(ctx, []byte("model"))
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name       string
		ctx        context.Context
		recipients []string
		p          *Payload
		want       string
	}{
		{"no payload", ctx, []string{"site-2"}, nil, "no payload"},
		{"no recipient", ctx, nil, p, "no recipient"},
		{"a name that is no subject token", ctx, []string{"site-2", "site-*"}, p, `"site-*" cannot be a subject token`},
		{"itself", ctx, []string{"site-2", "site-1"}, p, `"site-1", which is this participant`},
		{"a recipient twice", ctx, []string{"site-2", "site-3", "site-2"}, p, `"site-2" named twice`},
		{"an ended context", done, []string{"site-2"}, p, "context canceled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.OfferCast(tc.ctx, tc.recipients, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OfferCast: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	t.Run("an empty payload is complete at once", func(t *testing.T) {
		empty, err := m.Prepare(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.OfferCast(ctx, []string{"site-2", "site-3"}, empty)
		if err != nil {
			t.Fatal(err)
		}
		results, err := c.Wait(ctx)
		if err != nil || len(results) != 2 || results["site-2"] != nil || results["site-3"] != nil {
			t.Fatalf("results %v, %v: want both complete", results, err)
		}
	})
}

// TestCastCancelAndCloseTellEveryRecipient: Cancel (or the sender's
// Manager closing) mid-cast ends every recipient's Receive with ErrAborted
// at once, and every result says why.
func TestCastCancelAndCloseTellEveryRecipient(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(s *castSetup, c *Cast)
		want error
	}{
		{"cancel", func(_ *castSetup, c *Cast) { c.Cancel() }, ErrCanceled},
		{"close", func(s *castSetup, _ *Cast) { go s.sender.Close() }, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCastSetup(t, 2, func(_ int, c *Config) { smallChunks(c); c.StallTimeout = 20 * time.Second })
			ctx, c := s.cast(t, randomBytes(40*64<<10, 6), 10*time.Second)
			start := time.Now()
			var once sync.Once
			_, _, errs := s.receiveAll(ctx, c, nil, func(i, chunk int) {
				if chunk == 3 {
					once.Do(func() { tc.stop(s, c) })
				}
			})
			results, err := c.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range s.names {
				if !errors.Is(errs[i], ErrAborted) || !errors.Is(results[name], tc.want) {
					t.Fatalf("%s: Receive %v, result %v; want ErrAborted and %v", name, errs[i], results[name], tc.want)
				}
				// A failed Receive unsubscribed from the cast too.
				if n := s.conns[i].NumSubscriptions(); n != 1 {
					t.Fatalf("%s has %d subscriptions after the failed stream, want its inbox only", name, n)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v: the recipients were not told", d)
			}
		})
	}
}

// TestCastResumesAfterARecipientsLinkIsCut: site-3's leaf link is cut as
// it takes chunk 64 of 256, and the cast goes on meanwhile (site-2's
// window of 4 paces it, within site-3's credit of 32, which the sender's
// Window of 32 lets it honour), so chunks cast while the link is down
// never reach site-3. Its subscription to the cast
// comes back with the link, it asks for the chunks it lost, and every
// recipient completes without the cast starting over.
func TestCastResumesAfterARecipientsLinkIsCut(t *testing.T) {
	s := newCastSetup(t, 3, func(i int, c *Config) {
		resumeConfig(c)
		switch i {
		case 0:
			c.Window = 4
		case -1, 1:
			c.Window = 32
		}
	})
	data := randomBytes(64<<20, 9)
	ctx, c := s.cast(t, data, 60*time.Second)
	var cut error
	sinks, stats, errs := s.receiveAll(ctx, c, nil, func(i, chunk int) {
		if i != 1 || chunk != 64 {
			return
		}
		if cut = s.tp.CutLeaf("site-3", s.leaves[1]); cut != nil {
			return
		}
		sent := c.Stats().Sent
		cut = bustest.Poll(10*time.Second, time.Millisecond, func() error {
			if now := c.Stats().Sent; now < sent+8 {
				return fmt.Errorf("the cast sent %d chunks since site-3's link was cut, want 8", now-sent)
			}
			return nil
		})
	})
	if cut != nil {
		t.Fatalf("cut: %v", cut)
	}
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range s.names {
		gotAll(t, name, errs[i], results, sinks[i], data)
	}
	chunks, st := len(c.Manifest.ChunkHashes), c.Stats()
	t.Logf("%d chunks: sent %d (%d again); site-3 %+v", chunks, st.Sent, st.Resent, stats[1])
	if stats[1].Resent < 1 || st.Resent < 1 {
		t.Fatalf("site-3 %+v, sender %+v: nothing was lost, the cut did not happen", stats[1], st)
	}
	if st.Sent > chunks+chunks/2 {
		t.Fatalf("sent %d chunk messages for %d chunks: the cast started over", st.Sent, chunks)
	}
}

// TestCastRewindResendsAtMostAWindowToTheOthers: a recipient (spoken by
// hand on site-4's connection) that confirms nothing but grants itself
// credit for the whole stream, and asks for a rewind to chunk 0 once the
// others are past chunk 40, must not make the cast resend everything the
// others already took: those duplicates go down every honest recipient's
// link too, unpaced by their credit. The cast holds each recipient's
// credit to a window past what it confirmed, so the rogue paces it like a
// slow recipient (and is split off for holding it, then dropped), and no
// honest recipient gets more than two windows of duplicates.
func TestCastRewindResendsAtMostAWindowToTheOthers(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) { smallChunks(c); c.StallTimeout = 4 * time.Second })
	const chunks = 64
	data := randomBytes(chunks*64<<10, 10)
	ctx, c := s.cast(t, data, 20*time.Second)
	id := c.Manifest.StreamId
	rogue := s.conns[2] // site-4: its Manager stays out of it
	ctl := bus.Stream("site-1", "site-4", id)
	var once sync.Once
	rewound := make(chan struct{})
	if _, err := rogue.Subscribe(bus.Cast("site-1", id), func(m *nats.Msg) {
		if i, _, ok := parseChunk(m); ok && i >= 40 {
			once.Do(func() {
				rogue.Publish(ctl, credit{ack: 0, limit: chunks, seq: 1}.encode())
				close(rewound)
			})
		}
	}); err != nil {
		t.Fatal(err)
	}
	rogue.Publish(ctl, credit{ack: 0, limit: chunks}.encode())

	results, stats := s.othersComplete(t, ctx, c, data)
	if results["site-4"] == nil {
		t.Fatal("site-4 confirmed nothing and was not dropped")
	}
	w := s.sender.cfg.Window
	st := c.Stats()
	select {
	case <-rewound:
		t.Logf("site-4 asked for its rewind; sender %+v", st)
	default:
		t.Logf("site-4 was held before chunk 40 and asked for no rewind; sender %+v", st)
	}
	for i, name := range s.names[:2] {
		if stats[i].Dropped > 2*w {
			t.Errorf("%s dropped %d chunk copies (%+v), want at most two windows (%d): the rogue's rewind reached it", name, stats[i].Dropped, stats[i], 2*w)
		}
	}
	if st.Resent > 2*w {
		t.Errorf("sender %+v: %d chunks resent for one rogue rewind, want at most two windows (%d)", st, st.Resent, 2*w)
	}
}

// TestCastDropLetsTheOthersGoOn: a recipient that will never pull (it
// refused the offer) holds the cast back for the hold time; dropped by
// name as soon as that is known, it is told, its result is the error
// given, and the others complete long before the hold time. A recipient
// that completed keeps its nil result; an unknown name changes nothing.
func TestCastDropLetsTheOthersGoOn(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) { smallChunks(c); c.StallTimeout = 20 * time.Second })
	data := randomBytes(40*64<<10, 11)
	told := s.hearTold(t, 2)
	ctx, c := s.cast(t, data, 20*time.Second)
	start := time.Now()
	refused := errors.New("site-4 refused the model")
	c.Drop("site-4", refused)
	c.Drop("site-9", refused)
	results, _ := s.othersComplete(t, ctx, c, data)
	if d, hold := time.Since(start), castHold(s.sender.cfg); d > hold/2 {
		t.Fatalf("the cast took %v, want far less than the hold time %v: it waited on the dropped recipient", d, hold)
	}
	if r := results["site-4"]; !errors.Is(r, refused) || !strings.Contains(r.Error(), "to site-4:") {
		t.Fatalf("site-4's result %v, want the error it was dropped with, naming it", r)
	}
	if _, ok := results["site-9"]; ok || len(results) != 3 {
		t.Fatalf("results %v: want the three recipients' only", results)
	}
	if m, err := told.NextMsg(5 * time.Second); err != nil || isChunk(m) || m.Data[0] != kindSenderAbort {
		t.Fatalf("site-4 was told %v %v, want an abort", m, err)
	}
	c.Drop("site-2", refused) // after the end: nothing changes
	if again, _ := c.Wait(ctx); again["site-2"] != nil {
		t.Fatalf("site-2's result became %v after the cast ended", again["site-2"])
	}
}

// TestCastReceiveEndedByItsContextUnsubscribes: a Receive of a cast whose
// context ends while it waits (the other recipient holds the cast back)
// returns the context's error, leaves no subscription to the cast and no
// stream behind, and the sender drops it as aborted.
func TestCastReceiveEndedByItsContextUnsubscribes(t *testing.T) {
	s := newCastSetup(t, 2, func(_ int, c *Config) { smallChunks(c); c.StallTimeout = 20 * time.Second })
	ctx, c := s.cast(t, randomBytes(40*64<<10, 12), 10*time.Second)
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if _, err := s.recipients[0].Receive(short, "site-1", c.Manifest, newCheckSink()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive: %v, want the context's deadline", err)
	}
	if n := s.conns[0].NumSubscriptions(); n != 1 {
		t.Fatalf("site-2 has %d subscriptions after its Receive ended, want its inbox only", n)
	}
	s.recipients[0].mu.Lock()
	left := len(s.recipients[0].in)
	s.recipients[0].mu.Unlock()
	if left != 0 {
		t.Fatalf("site-2 still has %d incoming streams", left)
	}
	c.Drop("site-3", errors.New("never pulls"))
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results["site-2"], ErrAborted) {
		t.Fatalf("site-2's result %v, want ErrAborted (it said it gave up)", results["site-2"])
	}
}

// TestCastSplitsOffARecipientThatHoldsTheOthersBack: a recipient whose
// Sink takes one chunk per delay (a slow site, or a compromised one that
// confirms a chunk just inside each hold time to pace the cast) holds the
// others back for the cast's lag at most: then it is split off onto its
// own stream, the others complete while it has taken a few chunks, and it
// still gets every chunk, on its own subject, from where it stood. The
// pacing one is dropped once the others are done.
func TestCastSplitsOffARecipientThatHoldsTheOthersBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		delay    time.Duration // per chunk, at site-3
		complete bool          // wait for site-3 to complete; else drop it
	}{{"slow", 40 * time.Millisecond, true}, {"pacing", 1500 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCastSetup(t, 3, func(_ int, c *Config) {
				smallChunks(c)
				c.StallTimeout, c.RetryInterval = 4*time.Second, 100*time.Millisecond
			})
			const chunks = 48
			data := randomBytes(chunks*64<<10, 13)
			ctx, c := s.cast(t, data, 30*time.Second)
			var slowChunks atomic.Int64
			sinks := []*checkSink{newCheckSink(), newCheckSink(), newCheckSink()}
			sinks[1].hook = func(int) { time.Sleep(tc.delay); slowChunks.Add(1) }
			errs := make([]error, 3)
			var wg, others sync.WaitGroup
			start := time.Now()
			for i, m := range s.recipients {
				wg.Add(1)
				if i != 1 {
					others.Add(1)
				}
				go func() {
					defer wg.Done()
					_, errs[i] = m.Receive(ctx, "site-1", c.Manifest, sinks[i])
					if i != 1 {
						others.Done()
					}
				}()
			}
			others.Wait()
			took, slowHad := time.Since(start), slowChunks.Load()
			gaveUp := errors.New("gave up on site-3")
			if !tc.complete {
				c.Drop("site-3", gaveUp)
			}
			wg.Wait()
			results, err := c.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st := c.Stats()
			t.Logf("the others took %v, site-3 had %d of %d chunks then; sender %+v", took, slowHad, chunks, st)
			for _, i := range []int{0, 2} {
				gotAll(t, s.names[i], errs[i], results, sinks[i], data)
			}
			if slowHad > chunks/3 {
				t.Fatalf("the others completed once site-3 had %d of %d chunks: it paced the cast", slowHad, chunks)
			}
			if len(st.Split) != 1 || st.Split[0] != "site-3" || st.SplitSent == 0 {
				t.Fatalf("sender %+v: want site-3 split off, and chunks sent to it on its own", st)
			}
			// While site-3 held them (the lag: two RetryIntervals), each of
			// the others may have asked once or twice for its window again.
			if st.Sent > chunks+4*s.sender.cfg.Window {
				t.Fatalf("the cast subject carried %d chunk messages for %d chunks", st.Sent, chunks)
			}
			if !tc.complete {
				if !errors.Is(results["site-3"], gaveUp) || !errors.Is(errs[1], ErrAborted) {
					t.Fatalf("site-3: result %v, Receive %v; want it dropped and told", results["site-3"], errs[1])
				}
				return
			}
			gotAll(t, "site-3", errs[1], results, sinks[1], data)
			if st.SplitSent > chunks+s.sender.cfg.Window {
				t.Fatalf("site-3's own stream carried %d chunk messages for %d chunks: it started over", st.SplitSent, chunks)
			}
		})
	}
}

// TestCastOneRecipientRacingAheadSplitsNoOne: a recipient that races ahead
// of the rest (spoken by hand on site-4's connection: it confirms every
// chunk the moment it arrives, unread, as a compromised site could, or a
// very fast one) is one of the others, not most of them: the two honest
// recipients, which take 20 ms a chunk and wait on each other's jitter
// only, are not split off although the racer waits on them all along (it
// charges the one that sets the pace a quarter of the time it does: under
// a lag in a cast of under four lags), and the cast subject carries the
// stream about once.
func TestCastOneRecipientRacingAheadSplitsNoOne(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) {
		smallChunks(c)
		c.StallTimeout, c.RetryInterval = 4*time.Second, 500*time.Millisecond
	})
	const chunks = 128
	data := randomBytes(chunks*64<<10, 14)
	ctx, c := s.cast(t, data, 30*time.Second)
	w := s.sender.cfg.Window
	s.byHand(t, c, 2, func(i int) credit { return credit{ack: i + 1, limit: min(i+1+w, chunks)} })
	start := time.Now()
	sinks, _, errs := s.receiveAll(ctx, c, []bool{true, true, false}, func(int, int) { time.Sleep(20 * time.Millisecond) })
	took := time.Since(start)
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	t.Logf("the honest recipients took %v (the lag %v); sender %+v; site-4: %v", took, castLag(s.sender.cfg), st, results["site-4"])
	for i, name := range s.names[:2] {
		gotAll(t, name, errs[i], results, sinks[i], data)
	}
	if took < 2*castLag(s.sender.cfg) {
		t.Fatalf("the cast took %v, under twice the lag %v: it proves nothing about being charged for it", took, castLag(s.sender.cfg))
	}
	if len(st.Split) != 0 || st.SplitSent != 0 {
		t.Fatalf("sender %+v: honest recipients split off because one raced ahead", st)
	}
	if st.Sent > chunks+4*w {
		t.Fatalf("the cast subject carried %d chunk messages for %d chunks", st.Sent, chunks)
	}
}

// TestCastDropsARecipientThatConfirmsUnsentChunks: a recipient (spoken by
// hand on site-4's connection) that confirms chunks the cast has not sent
// yet is dropped at once with ErrUnsent naming it, told with an abort, and
// the others complete without waiting on it.
func TestCastDropsARecipientThatConfirmsUnsentChunks(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) { smallChunks(c); c.StallTimeout = 20 * time.Second })
	const chunks = 40
	data := randomBytes(chunks*64<<10, 15)
	told := s.hearTold(t, 2)
	ctx, c := s.cast(t, data, 20*time.Second)
	id := c.Manifest.StreamId
	faker := s.conns[2]
	start := time.Now()
	faker.Publish(bus.Stream("site-1", "site-4", id), credit{ack: chunks - 1, limit: chunks}.encode())
	results, _ := s.othersComplete(t, ctx, c, data)
	if r := results["site-4"]; !errors.Is(r, ErrUnsent) || !strings.Contains(r.Error(), "site-4 confirmed 39 chunks") {
		t.Fatalf("site-4's result %v, want ErrUnsent naming it and what it confirmed", r)
	}
	if d, hold := time.Since(start), castHold(s.sender.cfg); d > hold/2 {
		t.Fatalf("the cast took %v, want far less than the hold time %v: it waited on the faker", d, hold)
	}
	m, err := told.NextMsg(5 * time.Second)
	if err != nil || isChunk(m) || m.Data[0] != kindSenderAbort || !strings.Contains(string(m.Data[1:]), "never sent") {
		t.Fatalf("site-4 was told %v %v, want an abort saying why", m, err)
	}
}

// TestCastSlowRecipientIsSplitOffThoughAnotherNeverWaits: a recipient
// (spoken by hand on site-4's connection) that confirms each chunk as it
// arrives but one, so that it never waits on the slow one (site-3, 40 ms a
// chunk) and the fast one (site-2) is the only one that does, cannot
// shield the slow one: charged a quarter of the time while one of its two
// others waits, site-3 is split off after four lags at most, and site-2
// completes long before site-3 would have let it.
func TestCastSlowRecipientIsSplitOffThoughAnotherNeverWaits(t *testing.T) {
	s := newCastSetup(t, 3, func(_ int, c *Config) {
		smallChunks(c)
		c.StallTimeout, c.RetryInterval = 4*time.Second, 100*time.Millisecond
	})
	const chunks, delay = 96, 40 * time.Millisecond
	data := randomBytes(chunks*64<<10, 17)
	ctx, c := s.cast(t, data, 30*time.Second)
	w := s.sender.cfg.Window
	s.byHand(t, c, 2, func(i int) credit { return credit{ack: i, limit: min(i+w, chunks)} })
	var slowChunks atomic.Int64
	sinks := []*checkSink{newCheckSink(), newCheckSink()}
	sinks[1].hook = func(int) { time.Sleep(delay); slowChunks.Add(1) }
	errs := make([]error, 2)
	var fastTook time.Duration
	var fastHad int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 2 {
		wg.Go(func() {
			_, errs[i] = s.recipients[i].Receive(ctx, "site-1", c.Manifest, sinks[i])
			if i == 0 {
				fastTook, fastHad = time.Since(start), slowChunks.Load()
			}
		})
	}
	wg.Wait()
	c.Drop("site-4", errors.New("never confirms the last chunk"))
	results, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	lag := castLag(s.sender.cfg)
	t.Logf("site-2 took %v, site-3 had %d of %d chunks then (the lag %v); sender %+v", fastTook, fastHad, chunks, lag, st)
	for i, name := range s.names[:2] {
		gotAll(t, name, errs[i], results, sinks[i], data)
	}
	if !slices.Equal(st.Split, []string{"site-3"}) || st.SplitSent == 0 {
		t.Fatalf("sender %+v: want site-3, and only it, split off and sent its chunks on its own", st)
	}
	// Four lags of site-3's pace, plus its window, and then some.
	if most := int64(4*lag/delay) + int64(w) + 8; fastHad > most {
		t.Fatalf("site-2 completed once site-3 had %d of %d chunks, want at most %d: site-3 paced the cast", fastHad, chunks, most)
	}
}
