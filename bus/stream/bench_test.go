package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// BenchmarkStream moves 256 MiB from a site's leaf to the hub, as a stream
// offered with OfferBytes and as plain NATS messages of the same size with
// the same window, on the same connections, and reports:
//
//	stream-MB/s      Receive, from the first credit to the last chunk verified
//	nats-MB/s        the plain NATS baseline
//	ratio            stream-MB/s / nats-MB/s
//	offer-MB/s       Offer's hashing (read and SHA-256 every chunk, in parallel)
//	e2e-MB/s         Offer plus transfer
//	stream-cpu-ms/GB process CPU time (user+system) per GB transferred
//	nats-cpu-ms/GB
//
// On a machine with few cores the transfer is CPU-bound and the recipient's
// SHA-256 (about 2 GB/s a core with SHA-NI) is the difference between the
// two; the CPU figures show it.
func BenchmarkStream(b *testing.B) { benchStream(b, true) }

// BenchmarkStreamReaderAt is BenchmarkStream with Offer from an
// io.ReaderAt: the sender reads every chunk into its buffer.
func BenchmarkStreamReaderAt(b *testing.B) { benchStream(b, false) }

func benchStream(b *testing.B, fromMemory bool) {
	const size = 256 << 20
	tp := bustest.NewTopology(b, "site-1")
	_, nc := tp.JoinedLeaf(b, "site-1")
	hc := tp.HubConn(b)
	site := newManager(b, nc, "site-1")
	srv := newManager(b, hc, "server")
	reachable(b, site, srv)
	reachable(b, srv, site)
	data := randomBytes(size, 1)
	discard := SinkFunc(func(int, int64, []byte) error { return nil })
	ctx := context.Background()

	var offer, stream, plain, streamCPU, plainCPU time.Duration
	for b.Loop() {
		c0 := cpuTime()
		plain += natsBaseline(b, nc, hc, data, DefaultChunkBytes, DefaultWindow)
		plainCPU += cpuTime() - c0

		start := time.Now()
		var out *Outgoing
		var err error
		if fromMemory {
			out, err = site.OfferBytes(ctx, "server", data)
		} else {
			out, err = site.Offer(ctx, "server", bytes.NewReader(data), size)
		}
		if err != nil {
			b.Fatal(err)
		}
		offered, c1 := time.Now(), cpuTime()
		if _, err := srv.Receive(ctx, "site-1", out.Manifest, discard); err != nil {
			b.Fatal(err)
		}
		stream += time.Since(offered)
		streamCPU += cpuTime() - c1
		offer += offered.Sub(start)
		if err := out.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	gb := float64(b.N) * size / 1e9
	mbps := func(d time.Duration) float64 { return gb * 1e3 / d.Seconds() }
	b.ReportMetric(mbps(stream), "stream-MB/s")
	b.ReportMetric(mbps(plain), "nats-MB/s")
	b.ReportMetric(mbps(stream)/mbps(plain), "ratio")
	b.ReportMetric(mbps(offer), "offer-MB/s")
	b.ReportMetric(mbps(offer+stream), "e2e-MB/s")
	if streamCPU > 0 {
		b.ReportMetric(float64(streamCPU.Milliseconds())/gb, "stream-cpu-ms/GB")
		b.ReportMetric(float64(plainCPU.Milliseconds())/gb, "nats-cpu-ms/GB")
	}
}

// natsBaseline publishes data from pub to a subscriber on sub that counts
// the bytes, in messages of chunk bytes; the subscriber acknowledges every
// window/4 messages with the count so far, and the publisher keeps at most
// window messages unacknowledged, so nothing is dropped. It returns the time
// from the first message to the last acknowledgement.
func natsBaseline(b *testing.B, pub, sub *nats.Conn, data []byte, chunk, window int) time.Duration {
	b.Helper()
	id, err := newStreamID()
	if err != nil {
		b.Fatal(err)
	}
	// "bench" is no Manager's name, so only the counting subscriber gets
	// the data; site-1 may publish on this subject and receive on the other.
	dataSubj, ackSubj := bus.Stream("bench", "site-1", id), bus.Stream("site-1", "bench", id)
	n := (len(data) + chunk - 1) / chunk
	const hello = 1<<32 - 1

	acks := make(chan uint32, 4*n)
	as, err := pub.Subscribe(ackSubj, func(m *nats.Msg) {
		if len(m.Data) == 4 {
			acks <- binary.BigEndian.Uint32(m.Data)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer as.Unsubscribe()
	got, gotBytes := 0, 0
	ack := func(v uint32) { sub.Publish(ackSubj, binary.BigEndian.AppendUint32(nil, v)) }
	ds, err := sub.Subscribe(dataSubj, func(m *nats.Msg) {
		if len(m.Data) == 1 {
			ack(hello)
			return
		}
		got++
		gotBytes += len(m.Data)
		if got%max(window/4, 1) == 0 || got == n {
			ack(uint32(got))
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Unsubscribe()
	ds.SetPendingLimits(-1, -1)
	// Wait until each side's interest crossed the leaf link.
	bustest.CheckFor(b, 10*time.Second, 0, func() error {
		pub.Publish(dataSubj, []byte{0})
		select {
		case <-acks:
			return nil
		case <-time.After(20 * time.Millisecond):
			return context.DeadlineExceeded
		}
	})
	for len(acks) > 0 {
		<-acks
	}

	start := time.Now()
	sent, acked := 0, 0
	for acked < n {
		for sent < n && sent < acked+window {
			end := min((sent+1)*chunk, len(data))
			if err := pub.Publish(dataSubj, data[sent*chunk:end]); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		select {
		case v := <-acks:
			if v != hello {
				acked = max(acked, int(v))
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("baseline: %d of %d acknowledged", acked, n)
		}
	}
	d := time.Since(start)
	if gotBytes != len(data) {
		b.Fatalf("baseline: %d of %d bytes arrived", gotBytes, len(data))
	}
	return d
}

// BenchmarkCast sends one 256 MiB payload from site-1 to three sites, each
// on its own leaf, in the same run both ways: one cast (OfferCast), and
// three unicast streams at once (OfferPayload), hashed once by Prepare
// beforehand (not timed). It reports the bytes delivered to the three
// recipients' Sinks together per second, from the offer until every
// recipient verified the last chunk:
//
//	cast-MB/s, unicast-MB/s     the two ways
//	ratio                       cast-MB/s / unicast-MB/s
//	cast-link-MB, unicast-link-MB  what the sender's leaf link carried to the hub, per payload
func BenchmarkCast(b *testing.B) {
	const size = 256 << 20
	s := newCastSetup(b, 3, nil)
	data := randomBytes(size, 1)
	ctx := context.Background()
	p, err := s.sender.Prepare(ctx, data)
	if err != nil {
		b.Fatal(err)
	}
	discard := SinkFunc(func(int, int64, []byte) error { return nil })
	receive := func(man []*hearthv1.StreamManifest) {
		var wg sync.WaitGroup
		errs := make([]error, len(s.recipients))
		for i, m := range s.recipients {
			wg.Go(func() { _, errs[i] = m.Receive(ctx, "site-1", man[i], discard) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
	}
	linkIn := func() int64 {
		lb, err := s.tp.LeafBytes()
		if err != nil {
			b.Fatal(err)
		}
		return lb["site-1"].In
	}

	var castTime, uniTime time.Duration
	var castLink, uniLink int64
	for b.Loop() {
		in0, start := linkIn(), time.Now()
		c, err := s.sender.OfferCast(ctx, s.names, p)
		if err != nil {
			b.Fatal(err)
		}
		receive([]*hearthv1.StreamManifest{c.Manifest, c.Manifest, c.Manifest})
		results, err := c.Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for name, err := range results {
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
		}
		castTime += time.Since(start)
		castLink += linkIn() - in0

		in0, start = linkIn(), time.Now()
		outs := make([]*Outgoing, len(s.names))
		mans := make([]*hearthv1.StreamManifest, len(s.names))
		for i, name := range s.names {
			if outs[i], err = s.sender.OfferPayload(ctx, name, p); err != nil {
				b.Fatal(err)
			}
			mans[i] = outs[i].Manifest
		}
		receive(mans)
		for _, o := range outs {
			if err := o.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
		uniTime += time.Since(start)
		uniLink += linkIn() - in0
	}
	delivered := float64(b.N) * float64(len(s.names)) * size / 1e6
	b.ReportMetric(delivered/castTime.Seconds(), "cast-MB/s")
	b.ReportMetric(delivered/uniTime.Seconds(), "unicast-MB/s")
	b.ReportMetric(uniTime.Seconds()/castTime.Seconds(), "ratio")
	b.ReportMetric(float64(castLink)/float64(b.N)/1e6, "cast-link-MB")
	b.ReportMetric(float64(uniLink)/float64(b.N)/1e6, "unicast-link-MB")
}
