package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// flakySource is a "flaky disk": once armed (after Offer hashed it), reads
// of chunk bad return a flipped byte, for the first `left` reads (-1:
// always).
type flakySource struct {
	data       []byte
	chunkBytes int
	bad        int
	armed      atomic.Bool
	mu         sync.Mutex
	left       int
	reads      map[int]int // reads of each chunk after arming
}

func (f *flakySource) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(f.data).ReadAt(p, off)
	if !f.armed.Load() {
		return n, err
	}
	chunk := int(off / int64(f.chunkBytes))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[chunk]++
	if chunk == f.bad && f.left != 0 && n > 0 {
		p[0] ^= 0xff
		f.left--
	}
	return n, err
}

// pair is a sender and a recipient on a fresh topology: site-1's leaf and
// the hub, each Manager on a connection of its own.
type pair struct {
	tp         *bustest.Topology
	sender     *Manager
	senderNC   *nats.Conn
	receiver   *Manager
	receiverNC *nats.Conn
}

func newPair(t *testing.T, tweak func(*Config)) *pair {
	t.Helper()
	tp := bustest.NewTopology(t, "site-1")
	leaf, _ := tp.JoinedLeaf(t, "site-1")
	nc, err := leaf.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	hc := tp.HubConn(t)
	p := &pair{tp: tp, senderNC: nc, receiverNC: hc,
		sender: newManager(t, nc, "site-1", tweak), receiver: newManager(t, hc, "server", tweak)}
	reachable(t, p.sender, p.receiver)
	reachable(t, p.receiver, p.sender)
	return p
}

func smallChunks(c *Config) {
	c.ChunkBytes = 64 << 10
	c.Window = 4
	c.StallTimeout = time.Second
}

// TestCorruptChunkIsRefusedAndResent: a chunk that changes after it was
// hashed fails its check at the recipient, under either hash function, is
// never delivered, and is sent again.
func TestCorruptChunkIsRefusedAndResent(t *testing.T) {
	for _, h := range []Hash{BLAKE3, SHA256} {
		t.Run(h.String(), func(t *testing.T) {
			p := newPair(t, func(c *Config) { smallChunks(c); c.Hash = h })
			src := &flakySource{data: randomBytes(20*64<<10+100, 1), chunkBytes: 64 << 10, bad: 5, left: 1, reads: map[int]int{}}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := p.sender.Offer(ctx, "server", src, int64(len(src.data)))
			if err != nil {
				t.Fatal(err)
			}
			if out.Manifest.ChunkHash != h {
				t.Fatalf("manifest names %v, want %v", out.Manifest.ChunkHash, h)
			}
			src.armed.Store(true)
			sink := newCheckSink()
			st, err := p.receiver.Receive(ctx, "site-1", out.Manifest, sink)
			if err != nil {
				t.Fatal(err)
			}
			sink.check(t, src.data)
			if st.Corrupt != 1 || st.Resent < 1 {
				t.Fatalf("stats %+v, want Corrupt 1 and Resent >= 1", st)
			}
			if err := out.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if s := out.Stats(); s.Resent < 1 || src.reads[5] < 2 {
				t.Fatalf("sender stats %+v, chunk 5 read %d times: want it resent", s, src.reads[5])
			}
		})
	}
}

func TestChunkCorruptEveryTimeFailsTheStream(t *testing.T) {
	p := newPair(t, smallChunks)
	src := &flakySource{data: randomBytes(20*64<<10, 2), chunkBytes: 64 << 10, bad: 5, left: -1, reads: map[int]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := p.sender.Offer(ctx, "server", src, int64(len(src.data)))
	if err != nil {
		t.Fatal(err)
	}
	src.armed.Store(true)
	sink := newCheckSink()
	st, err := p.receiver.Receive(ctx, "site-1", out.Manifest, sink)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 5 ") {
		t.Fatalf("Receive: %v, want ErrCorrupt naming chunk 5", err)
	}
	if sink.seen[5] || sink.next != 5 || st.Corrupt != maxCorrupt {
		t.Fatalf("sink got chunks %v, stats %+v: want 0-4 only and %d corrupt copies", sink.seen, st, maxCorrupt)
	}
	if err := out.Wait(ctx); !errors.Is(err, ErrAborted) {
		t.Fatalf("sender: %v, want ErrAborted", err)
	}
}

// TestRecipientStallsWhenSenderVanishes: the sender's connection closes
// mid-stream (its process died); the recipient fails with ErrStalled about
// StallTimeout after the last chunk, not before.
func TestRecipientStallsWhenSenderVanishes(t *testing.T) {
	p := newPair(t, smallChunks)
	data := randomBytes(40*64<<10, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := p.sender.Offer(ctx, "server", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	sink := newCheckSink()
	sink.hook = func(i int) {
		if i == 3 {
			p.senderNC.Close()
		}
	}
	_, err = p.receiver.Receive(ctx, "site-1", out.Manifest, sink)
	quiet := time.Since(sink.last)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Receive: %v, want ErrStalled", err)
	}
	if stall := p.receiver.cfg.StallTimeout; quiet < stall-50*time.Millisecond || quiet > stall+time.Second {
		t.Fatalf("stalled %v after the last chunk, want about %v", quiet, stall)
	}
}

// TestSenderStallsWhenRecipientVanishes: the recipient's connection closes
// mid-stream; the sender fails with ErrStalled about StallTimeout later.
func TestSenderStallsWhenRecipientVanishes(t *testing.T) {
	p := newPair(t, smallChunks)
	data := randomBytes(40*64<<10, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := p.receiver.Offer(ctx, "site-1", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var gone time.Time
	sink := newCheckSink()
	sink.hook = func(i int) {
		if i == 3 {
			gone = time.Now()
			p.senderNC.Close() // the recipient here is site-1
		}
	}
	if _, err := p.sender.Receive(ctx, "server", out.Manifest, sink); err == nil {
		t.Fatal("Receive on a closed connection succeeded")
	}
	err = out.Wait(ctx)
	quiet := time.Since(gone)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("sender: %v, want ErrStalled", err)
	}
	if stall := p.sender.cfg.StallTimeout; quiet < stall-100*time.Millisecond || quiet > stall+time.Second {
		t.Fatalf("sender stalled %v after the recipient left, want about %v", quiet, stall)
	}
}

// slowSource takes delay for every read after it is armed: a slow disk.
type slowSource struct {
	data  []byte
	delay time.Duration
	armed atomic.Bool
}

func (s *slowSource) ReadAt(p []byte, off int64) (int, error) {
	if s.armed.Load() {
		time.Sleep(s.delay) // simulates the disk, waits for nothing
	}
	return bytes.NewReader(s.data).ReadAt(p, off)
}

// TestSlowSenderIsNotAStall: a transfer that takes longer than StallTimeout
// but keeps making progress completes.
func TestSlowSenderIsNotAStall(t *testing.T) {
	p := newPair(t, smallChunks)
	src := &slowSource{data: randomBytes(12*64<<10, 5), delay: 150 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := p.sender.Offer(ctx, "server", src, int64(len(src.data)))
	if err != nil {
		t.Fatal(err)
	}
	src.armed.Store(true)
	sink := newCheckSink()
	st, err := p.receiver.Receive(ctx, "site-1", out.Manifest, sink)
	if err != nil {
		t.Fatal(err)
	}
	sink.check(t, src.data)
	if st.Duration < p.receiver.cfg.StallTimeout {
		t.Fatalf("took %v, not longer than the stall timeout: the test proves nothing", st.Duration)
	}
	if err := out.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v for %d chunks; stats %+v", st.Duration, len(out.Manifest.ChunkHashes), st)
}

func TestCancelAndCloseTellThePeer(t *testing.T) {
	cases := []struct {
		name       string
		stop       func(p *pair, out *Outgoing, cancelRecv context.CancelFunc)
		sendErr    error
		receiveErr error
	}{
		{"sender cancels", func(p *pair, out *Outgoing, _ context.CancelFunc) { out.Cancel() }, ErrCanceled, ErrAborted},
		{"sender closes its manager", func(p *pair, _ *Outgoing, _ context.CancelFunc) { go p.sender.Close() }, ErrClosed, ErrAborted},
		{"recipient's context ends", func(_ *pair, _ *Outgoing, c context.CancelFunc) { c() }, ErrAborted, context.Canceled},
		{"recipient closes its manager", func(p *pair, _ *Outgoing, _ context.CancelFunc) { go p.receiver.Close() }, ErrAborted, ErrClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(c *Config) { smallChunks(c); c.StallTimeout = 20 * time.Second })
			data := randomBytes(40*64<<10, 6)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := p.sender.Offer(ctx, "server", bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			sink := newCheckSink()
			sink.hook = func(i int) {
				if i == 3 {
					tc.stop(p, out, rcancel)
				}
			}
			start := time.Now()
			_, rerr := p.receiver.Receive(rctx, "site-1", out.Manifest, sink)
			serr := out.Wait(ctx)
			if !errors.Is(rerr, tc.receiveErr) || !errors.Is(serr, tc.sendErr) {
				t.Fatalf("recipient: %v, sender: %v; want %v and %v", rerr, serr, tc.receiveErr, tc.sendErr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v: the peer was not told", d)
			}
		})
	}
}

// cutSource is data that calls cut the first time chunk `at` is read after
// it is armed: the link goes down just as the sender publishes that chunk,
// with more in flight behind it.
type cutSource struct {
	data  []byte
	at    int64 // offset of the chunk
	cut   func() error
	armed atomic.Bool
	once  sync.Once
	err   error
}

func (s *cutSource) ReadAt(p []byte, off int64) (int, error) {
	if s.armed.Load() && off == s.at {
		s.once.Do(func() { s.err = s.cut() })
	}
	return bytes.NewReader(s.data).ReadAt(p, off)
}

// resume runs a 64 MiB transfer (256 chunks) whose link is cut as chunk 64
// goes out; it must finish without starting over.
func resume(t *testing.T, from, to *Manager, cut func() error) {
	t.Helper()
	src := &cutSource{data: randomBytes(64<<20, 8), at: 64 * int64(from.cfg.ChunkBytes), cut: cut}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := from.Offer(ctx, to.cfg.Self, src, int64(len(src.data)))
	if err != nil {
		t.Fatal(err)
	}
	src.armed.Store(true)
	sink := newCheckSink()
	st, err := to.Receive(ctx, from.cfg.Self, out.Manifest, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if src.err != nil {
		t.Fatalf("cut: %v", src.err)
	}
	sink.check(t, src.data)
	chunks := len(out.Manifest.ChunkHashes)
	sent := out.Stats()
	t.Logf("%d chunks in %v: sent %d (%d again); recipient asked %d times, dropped %d",
		chunks, st.Duration.Round(time.Millisecond), sent.Sent, sent.Resent, st.Resent, st.Dropped)
	if st.Resent < 1 || sent.Resent < 1 {
		t.Fatalf("stats %+v, sender %+v: nothing was lost, the cut did not happen", st, sent)
	}
	if sent.Sent > chunks+chunks/2 {
		t.Fatalf("sent %d chunk messages for %d chunks: the transfer started over", sent.Sent, chunks)
	}
}

func resumeConfig(c *Config) {
	c.ChunkBytes = 256 << 10
	c.StallTimeout = 10 * time.Second
	c.RetryInterval = 200 * time.Millisecond
}

func TestResumeAfterLeafLinkCut(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1")
	leaf, nc := tp.JoinedLeaf(t, "site-1")
	site := newManager(t, nc, "site-1", resumeConfig)
	srv := newManager(t, tp.HubConn(t), "server", resumeConfig)
	reachable(t, site, srv)
	reachable(t, srv, site)
	resume(t, site, srv, func() error { return tp.CutLeaf("site-1", leaf) })
}

func TestManyStreamsAtOnce(t *testing.T) {
	const sites, size = 8, 32 << 20
	names := make([]string, sites)
	for i := range names {
		names[i] = fmt.Sprintf("site-%d", i+1)
	}
	tp := bustest.NewTopology(t, names...)
	srv := newManager(t, tp.HubConn(t), "server")
	senders := make([]*Manager, sites)
	for i, name := range names {
		_, nc := tp.JoinedLeaf(t, name)
		senders[i] = newManager(t, nc, name)
		reachable(t, senders[i], srv)
		reachable(t, srv, senders[i])
	}
	var wg sync.WaitGroup
	errs := make([]error, sites)
	start := time.Now()
	for i := range senders {
		wg.Go(func() {
			data := randomBytes(size, uint64(10+i))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := senders[i].Offer(ctx, "server", bytes.NewReader(data), size)
			if err != nil {
				errs[i] = err
				return
			}
			sink := newCheckSink()
			if _, err := srv.Receive(ctx, names[i], out.Manifest, sink); err != nil {
				errs[i] = err
				return
			}
			if err := out.Wait(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: sender: %w", names[i], err)
			}
			sum := sha256.Sum256(data)
			if sink.err != nil || sink.offset != size || !bytes.Equal(sink.h.Sum(nil), sum[:]) {
				errs[i] = fmt.Errorf("%s: sink got %d different bytes: %v", names[i], sink.offset, sink.err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d streams of %d MiB in %v", sites, size>>20, time.Since(start).Round(time.Millisecond))
}

// TestShortChunkIsRefusedAtOnce: a sender (site-1, over its real leaf
// link) whose manifest hashes a chunk other than the last that is shorter
// than the chunk size, and which sends exactly that chunk, has the stream
// refused at that chunk with ErrChunkSize: the sink never sees it, and
// nothing is asked for again.
func TestShortChunkIsRefusedAtOnce(t *testing.T) {
	const cb = 64 << 10
	p := newPair(t, smallChunks)
	chunks := [][]byte{randomBytes(cb, 1), randomBytes(cb-100, 2), randomBytes(cb, 3)}
	man := &hearthv1.StreamManifest{StreamId: "0123456789abcdef0123456789abcdef", TotalBytes: 3 * cb, ChunkBytes: cb,
		ChunkHash: BLAKE3}
	for _, c := range chunks {
		h := sum(BLAKE3, c)
		man.ChunkHashes = append(man.ChunkHashes, h[:])
	}
	credits, err := p.senderNC.SubscribeSync(bus.Stream("site-1", "server", man.StreamId))
	if err != nil {
		t.Fatal(err)
	}
	p.senderNC.Flush()
	reachable(t, p.receiver, p.sender)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sink := newCheckSink()
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := p.receiver.Receive(ctx, "site-1", man, sink)
		done <- result{st, err}
	}()
	if _, err := credits.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no credit from the recipient: %v", err)
	}
	for i, c := range chunks {
		if err := p.senderNC.PublishMsg(chunkMsg(bus.Stream("server", "site-1", man.StreamId), i, c)); err != nil {
			t.Fatal(err)
		}
	}
	r := <-done
	if !errors.Is(r.err, ErrChunkSize) || !strings.Contains(r.err.Error(), "chunk 1 of 3 is 65436 bytes, the manifest makes it 65536") {
		t.Fatalf("Receive: %v, want ErrChunkSize naming chunk 1 and its sizes", r.err)
	}
	if sink.seen[1] || sink.seen[2] || !sink.seen[0] {
		t.Fatalf("sink got chunks %v, want chunk 0 only", sink.seen)
	}
	if r.st.Corrupt != 1 {
		t.Fatalf("stats %+v, want the one bad chunk counted", r.st)
	}
}

// TestRecipientAsksAgainBeforeItStalls: a sender (spoken by hand on
// site-1's connection) that goes silent after chunk 8, as if its link were
// cut, and hears nothing for 1.9 s of the recipient's 3 s stall timeout,
// then answers again: the recipient, whose requests to resend back off no
// further than an eighth of the stall timeout (it asks at 250 ms, then
// every 375 ms), still asks once the sender can hear it, before the stall,
// and completes. Backing off to the full eight RetryIntervals (250, 500,
// 1000, 2000 ms), its next request after 1.75 s would come at 3.75 s,
// after the stall.
func TestRecipientAsksAgainBeforeItStalls(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1")
	_, nc := tp.JoinedLeaf(t, "site-1")
	cfg := func(c *Config) {
		smallChunks(c)
		c.StallTimeout, c.RetryInterval = 3*time.Second, 250*time.Millisecond
	}
	srv := newManager(t, tp.HubConn(t), "server", cfg)
	const chunks, cutAt, cutFor = 16, 8, 1900 * time.Millisecond
	data := randomBytes(chunks*64<<10, 16)
	id, err := newStreamID()
	if err != nil {
		t.Fatal(err)
	}
	man := &hearthv1.StreamManifest{StreamId: id, TotalBytes: int64(len(data)), ChunkBytes: 64 << 10, ChunkHash: BLAKE3}
	for i := range chunks {
		h := sum(BLAKE3, data[i*64<<10:(i+1)*64<<10])
		man.ChunkHashes = append(man.ChunkHashes, h[:])
	}
	credits := make(chan credit, 256)
	if _, err := nc.Subscribe(bus.Stream("site-1", "server", id), func(m *nats.Msg) {
		if cr, ok := parseCredit(m.Data); ok {
			credits <- cr
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cutAtTime time.Time
	var asked []time.Duration // the recipient's requests while the sender was silent, since the cut
	served := make(chan struct{})
	go func() { // the sender: serves every credit from its ack to its limit, but the cut
		defer close(served)
		for {
			var cr credit
			select {
			case cr = <-credits:
			case <-ctx.Done():
				return
			}
			if !cutAtTime.IsZero() && time.Since(cutAtTime) < cutFor {
				asked = append(asked, time.Since(cutAtTime).Round(time.Millisecond))
				continue
			}
			for i := cr.ack; i < cr.limit; i++ {
				if i >= cutAt && cutAtTime.IsZero() {
					cutAtTime = time.Now()
					break
				}
				nc.PublishMsg(chunkMsg(bus.Stream("server", "site-1", id), i, data[i*64<<10:(i+1)*64<<10]))
			}
			if cr.ack == chunks {
				return
			}
		}
	}()
	sink := newCheckSink()
	st, err := srv.Receive(ctx, "site-1", man, sink)
	cancel()
	<-served
	t.Logf("Receive %v, %+v; while silent it heard the recipient at %v", err, st, asked)
	if err != nil {
		t.Fatalf("Receive: %v, want it to resume: the link came back %v before the stall", err, srv.cfg.StallTimeout-cutFor)
	}
	sink.check(t, data)
	if st.Resent < 3 {
		t.Fatalf("stats %+v: the recipient asked to resend %d times, want it asking through the silence", st, st.Resent)
	}
}
