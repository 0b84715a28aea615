package stream

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"lukechampine.com/blake3"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestRoundTrip(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	srv := newManager(t, tp.HubConn(t), "server")
	s1 := newManager(t, nc1, "site-1")
	// Sites stream to the server only (pki.MayAddress), never leaf to leaf.
	paths := []struct {
		name     string
		from, to *Manager
	}{
		{"leaf to hub", s1, srv},
		{"hub to leaf", srv, s1},
	}
	sizes := []struct {
		name   string
		size   int64
		memory bool // OfferBytes
	}{
		{"empty", 0, false},
		{"one byte", 1, false},
		{"one chunk", DefaultChunkBytes, false},
		{"short last chunk", 10*DefaultChunkBytes + 12345, false},
		{"64 MiB", 64 << 20, false},
		{"empty from memory", 0, true},
		{"short last chunk from memory", 10*DefaultChunkBytes + 12345, true},
		{"64 MiB from memory", 64 << 20, true},
	}
	for _, p := range paths {
		reachable(t, p.from, p.to)
		reachable(t, p.to, p.from)
		for i, sz := range sizes {
			t.Run(p.name+"/"+sz.name, func(t *testing.T) {
				data := randomBytes(sz.size, uint64(i))
				sink := newCheckSink()
				out, st, err := transfer(t, p.from, p.to, data, sz.memory, sink)
				if err != nil {
					t.Fatal(err)
				}
				sink.check(t, data)
				chunks := len(out.Manifest.ChunkHashes)
				if st.Chunks != chunks || st.Bytes != sz.size || st.Corrupt != 0 {
					t.Fatalf("stats %+v, want %d chunks, %d bytes, none corrupt", st, chunks, sz.size)
				}
				if sent := out.Stats(); sent.Acked != chunks || sent.Sent != chunks {
					t.Fatalf("sender stats %+v, want %d chunks sent once", sent, chunks)
				}
			})
		}
	}
}

func TestBadManifestsAreRefused(t *testing.T) {
	tp := bustest.NewTopology(t)
	m := newManager(t, tp.HubConn(t), "server")
	hashes := func(n, size int) [][]byte {
		h := make([][]byte, n)
		for i := range h {
			h[i] = make([]byte, size)
		}
		return h
	}
	const id = "00112233445566778899aabbccddeeff"
	good := &hearthv1.StreamManifest{StreamId: id, TotalBytes: 2500, ChunkBytes: 1000, ChunkHash: BLAKE3, ChunkHashes: hashes(3, 32)}
	edit := func(f func(*hearthv1.StreamManifest)) *hearthv1.StreamManifest {
		c := proto.Clone(good).(*hearthv1.StreamManifest)
		f(c)
		return c
	}
	cases := []struct {
		name string
		man  *hearthv1.StreamManifest
	}{
		{"none", nil},
		{"one chunk hash too few", edit(func(m *hearthv1.StreamManifest) { m.ChunkHashes = m.ChunkHashes[:2] })},
		{"one chunk hash too many", edit(func(m *hearthv1.StreamManifest) { m.ChunkHashes = hashes(4, 32) })},
		{"hashes for an empty stream", edit(func(m *hearthv1.StreamManifest) { m.TotalBytes = 0 })},
		{"short hash", edit(func(m *hearthv1.StreamManifest) { m.ChunkHashes[1] = make([]byte, 31) })},
		{"long hash", edit(func(m *hearthv1.StreamManifest) { m.ChunkHashes[2] = make([]byte, 64) })},
		{"hash function unspecified", edit(func(m *hearthv1.StreamManifest) { m.ChunkHash = 0 })},
		{"unknown hash function", edit(func(m *hearthv1.StreamManifest) { m.ChunkHash = 99 })},
		{"negative size", edit(func(m *hearthv1.StreamManifest) { m.TotalBytes = -1 })},
		{"huge size", edit(func(m *hearthv1.StreamManifest) { m.TotalBytes = 1 << 62 })},
		{"over the maximum size", edit(func(m *hearthv1.StreamManifest) {
			m.TotalBytes, m.ChunkBytes = MaxStreamBytes+1, MaxChunkBytes
		})},
		{"too many chunks", edit(func(m *hearthv1.StreamManifest) {
			m.TotalBytes, m.ChunkBytes, m.ChunkHashes = MaxChunks+1, 1, hashes(MaxChunks+1, 32)
		})},
		{"zero chunk size", edit(func(m *hearthv1.StreamManifest) { m.ChunkBytes = 0 })},
		{"negative chunk size", edit(func(m *hearthv1.StreamManifest) { m.ChunkBytes = -1000 })},
		{"chunk over max payload", edit(func(m *hearthv1.StreamManifest) { m.ChunkBytes = bus.MaxPayload })},
		{"no stream id", edit(func(m *hearthv1.StreamManifest) { m.StreamId = "" })},
		{"wildcard stream id", edit(func(m *hearthv1.StreamManifest) { m.StreamId = "0011223344556677.899aabbccddeef>" })},
		{"upper-case stream id", edit(func(m *hearthv1.StreamManifest) { m.StreamId = strings.ToUpper(id) })},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := newCheckSink()
			if _, err := m.Receive(ctx, "site-1", tc.man, sink); !errors.Is(err, ErrManifest) {
				t.Fatalf("Receive: %v, want ErrManifest", err)
			}
			if sink.next != 0 {
				t.Fatal("sink called")
			}
		})
	}
	t.Run("offer of a negative size", func(t *testing.T) {
		if _, err := m.Offer(ctx, "site-1", bytes.NewReader(nil), -1); !errors.Is(err, ErrManifest) {
			t.Fatalf("Offer: %v, want ErrManifest", err)
		}
	})
	t.Run("offer over the maximum size", func(t *testing.T) {
		if _, err := m.Offer(ctx, "site-1", bytes.NewReader(nil), MaxStreamBytes+1); !errors.Is(err, ErrManifest) {
			t.Fatalf("Offer: %v, want ErrManifest", err)
		}
	})
	t.Run("names that are not subject tokens", func(t *testing.T) {
		for _, name := range []string{"", "site 1", "site-*", "site->", "a~b"} {
			if _, err := m.Receive(ctx, name, good, newCheckSink()); err == nil {
				t.Errorf("Receive from %q accepted", name)
			}
			if _, err := m.Offer(ctx, name, bytes.NewReader([]byte("x")), 1); err == nil {
				t.Errorf("Offer to %q accepted", name)
			}
		}
	})
}

func TestOfferGrowsChunksForHugeStreams(t *testing.T) {
	l, err := planLayout("id", 200<<30, DefaultChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	if l.count > MaxChunks || l.chunkBytes > MaxChunkBytes || int64(l.count)*int64(l.chunkBytes) < l.total {
		t.Fatalf("layout %+v does not fit the limits", l)
	}
}

func TestConfigValidate(t *testing.T) {
	tp := bustest.NewTopology(t)
	nc := tp.HubConn(t)
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no connection", Config{Self: "server"}},
		{"no name", Config{Conn: nc}},
		{"chunk over max payload", Config{Conn: nc, Self: "server", ChunkBytes: bus.MaxPayload}},
		{"negative window", Config{Conn: nc, Self: "server", Window: -1}},
		{"retry longer than stall", Config{Conn: nc, Self: "server", StallTimeout: time.Second, RetryInterval: 2 * time.Second}},
		{"unknown hash function", Config{Conn: nc, Self: "server", Hash: 99}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewManager(tc.cfg); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestOtherParticipantsCannotInject: site-2 publishes chunks and credit
// under the id of site-1's stream; they travel on subjects naming site-2
// (NATS permissions), so they never touch site-1's stream.
func TestOtherParticipantsCannotInject(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	_, nc2 := tp.JoinedLeaf(t, "site-2")
	srv := newManager(t, tp.HubConn(t), "server")
	s1 := newManager(t, nc1, "site-1")
	reachable(t, s1, srv)
	reachable(t, srv, s1)

	data := randomBytes(8<<20, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s1.Offer(ctx, "server", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	id := out.Manifest.StreamId
	bad := make([]byte, DefaultChunkBytes)
	for i := range 16 {
		nc2.PublishMsg(chunkMsg(bus.Stream("server", "site-2", id), i, bad))     // as itself
		nc2.PublishMsg(chunkMsg(bus.Stream("server", "site-1", id), i, bad))     // forged: refused by permissions
		nc2.Publish(bus.Stream("site-1", "site-2", id), credit{seq: 9}.encode()) // credit for a stream it is not in
	}
	nc2.Flush()
	sink := newCheckSink()
	st, err := srv.Receive(ctx, "site-1", out.Manifest, sink)
	if err != nil {
		t.Fatal(err)
	}
	sink.check(t, data)
	if st.Corrupt != 0 {
		t.Fatalf("stats %+v: injected chunks reached the stream", st)
	}
	if err := out.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	sum := blake3.Sum256(data[:DefaultChunkBytes])
	if out.Manifest.ChunkHash != BLAKE3 || !bytes.Equal(out.Manifest.ChunkHashes[0], sum[:]) {
		t.Fatalf("manifest says %v and hash %x for chunk 0, want BLAKE3 and %x", out.Manifest.ChunkHash, out.Manifest.ChunkHashes[0], sum)
	}
}
