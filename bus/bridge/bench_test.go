package bridge_test

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/bustest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The benchmarks run on one topology: the hub and a leaf node in this
// process, linked over loopback mTLS (TLS 1.3), the requester on the leaf
// and the responder on the hub. Each "plain-nats" case is the baseline:
// the same bytes over the same path with no envelope, no signature and no
// actors. Run: go test -run '^$' -bench . ./bus/bridge

const smallPayload = 64 // bytes of filler in each message

// BenchmarkRequestResponse measures one round trip leaf -> hub -> leaf
// with plain NATS messages on the same subjects the bridges use (the
// bridges are closed, so raw subscribers own the inboxes).
func BenchmarkRequestResponse(b *testing.B) {
	w := newWorld(b, "site-1")
	site, server := w.parts["site-1"], w.parts["server"]
	site.bridge.Close()
	server.bridge.Close()
	sub, err := server.conn.Subscribe(bus.Inbox("server"), func(m *nats.Msg) {
		_ = server.conn.Publish(bus.Direct("site-1", "server"), m.Data)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	replies, err := site.conn.SubscribeSync(bus.Inbox("site-1"))
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, smallPayload)
	roundTrip := func(timeout time.Duration) error {
		if err := site.conn.Publish(bus.Direct("server", "site-1"), payload); err != nil {
			return err
		}
		_, err := replies.NextMsg(timeout)
		return err
	}
	bustest.CheckFor(b, 10*time.Second, 0, func() error {
		if err := roundTrip(200 * time.Millisecond); err != nil {
			return fmt.Errorf("no reply across the leaf link: %w", err)
		}
		return nil
	})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := roundTrip(5 * time.Second); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkSignedRequestResponse is BenchmarkRequestResponse through the
// bridges: sign, publish, verify, route to an actor, respond, sign, verify.
func BenchmarkSignedRequestResponse(b *testing.B) {
	w := newWorldWith(b, bustest.Unlimited, "site-1")
	site := w.parts["site-1"]
	ctx := context.Background()
	ping := &hearthv1.Ping{Payload: make([]byte, smallPayload)}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := site.bridge.Request(ctx, "server", ping); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkThroughput measures one-way small messages leaf -> hub.
func BenchmarkThroughput(b *testing.B) {
	b.Run("plain-nats", func(b *testing.B) {
		w := newWorld(b, "site-1")
		site, server := w.parts["site-1"], w.parts["server"]
		server.bridge.Close()
		var got atomic.Int64
		var warm atomic.Bool
		done := make(chan struct{})
		n := int64(b.N)
		sub, err := server.conn.Subscribe(bus.Inbox("server"), func(m *nats.Msg) {
			warm.Store(true)
			if len(m.Data) == smallPayload && got.Add(1) == n {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		sub.SetPendingLimits(-1, -1)
		// Wait until the leaf forwards to the hub, then count from zero.
		for deadline := time.Now().Add(10 * time.Second); !warm.Load(); {
			_ = site.conn.Publish(bus.Direct("server", "site-1"), []byte("warm-up"))
			_ = site.conn.Flush()
			if time.Now().After(deadline) {
				b.Fatal("nothing crosses the leaf link")
			}
		}
		payload := make([]byte, smallPayload)
		b.ResetTimer()
		t0 := time.Now()
		for range b.N {
			if err := site.conn.Publish(bus.Direct("server", "site-1"), payload); err != nil {
				b.Fatal(err)
			}
		}
		awaitCount(b, done, &got, n)
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
	b.Run("signed", func(b *testing.B) {
		w := newWorldWith(b, bustest.Unlimited, "site-1")
		site, server := w.parts["site-1"], w.parts["server"]
		var got atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		counter := server.system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*hearthv1.Pong); ok && got.Add(1) == n {
				close(done)
			}
		}))
		server.bridge.Route(protocol.Name(&hearthv1.Pong{}), counter)
		msg := &hearthv1.Pong{Payload: make([]byte, smallPayload)}
		b.ResetTimer()
		t0 := time.Now()
		for range b.N {
			site.system.Root.Send(site.bridge.PID(), &bridge.Send{To: "server", Msg: msg})
		}
		awaitCount(b, done, &got, n)
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
}

func awaitCount(b *testing.B, done chan struct{}, got *atomic.Int64, n int64) {
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("received %d of %d", got.Load(), n)
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
