package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// A plain-nats case takes the bridges' inboxes over by subscribing to
// them first and closing the bridges after (handOver): the interest in
// each subject never lapses. Closed first, a bridge's unsubscription makes
// the hub (or the leaf) withdraw the subject's interest across the leaf
// link and the new subscription announce it again; a message that crossed
// under the old interest can end the warm-up while the other side has yet
// to see the two, and core NATS drops what it publishes in between (seen:
// 1999 of 2000 received).

// handOver closes the bridges of ms once their inboxes have the
// benchmark's subscribers, and waits until each hub or leaf server has
// processed the unsubscriptions.
func handOver(b *testing.B, ms ...*member) {
	b.Helper()
	for _, m := range ms {
		m.bridge.Close()
		if err := m.conn.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// inFlight bounds the one-way benchmarks' messages sent and not yet
// received (a few MiB, plain or signed), far below every pending
// limit on the path (the leaf link's outbound buffer, the hub's for the
// receiving connection, the subscription's): a burst can never make a
// server cut a slow consumer, and core NATS drop what it carried, while
// the pipe stays full.
const inFlight = 1 << 14

// awaitTimeout bounds each wait of a one-way benchmark for its messages.
const awaitTimeout = 60 * time.Second

// counter counts the messages a one-way benchmark's receiver got and lets
// the sender wait for a count: the receiver signals only once the count
// the sender waits for is reached, so that waiting costs neither side a
// wake-up per message.
type counter struct {
	got     atomic.Int64
	want    atomic.Int64 // the count the sender waits for; MaxInt64 when none
	reached chan struct{}
}

func newCounter() *counter {
	c := &counter{reached: make(chan struct{}, 1)}
	c.want.Store(math.MaxInt64)
	return c
}

// add counts one message.
func (c *counter) add() {
	if c.got.Add(1) >= c.want.Load() {
		select {
		case c.reached <- struct{}{}:
		default:
		}
	}
}

// await waits until at least n messages arrived; it fails b, saying how
// many did, after awaitTimeout.
func (c *counter) await(b *testing.B, n int64) {
	b.Helper()
	c.want.Store(n)
	defer c.want.Store(math.MaxInt64)
	timeout := time.NewTimer(awaitTimeout)
	defer timeout.Stop()
	for c.got.Load() < n {
		select {
		case <-c.reached:
		case <-timeout.C:
			b.Fatalf("received %d of %d after %v", c.got.Load(), n, awaitTimeout)
		}
	}
}

// send calls publish b.N times and waits for all the messages. Whenever
// inFlight messages are on the way it waits for half of them first, so
// that it waits once per inFlight/2 messages, not once per message.
func (c *counter) send(b *testing.B, publish func() error) {
	b.Helper()
	n := int64(b.N)
	for i := range n {
		if i-c.got.Load() >= inFlight {
			c.await(b, i-inFlight/2)
		}
		if err := publish(); err != nil {
			b.Fatal(err)
		}
	}
	c.await(b, n)
}

// BenchmarkRequestResponse measures one round trip leaf -> hub -> leaf
// with plain NATS messages on the same subjects the bridges use (the
// bridges are closed, so raw subscribers own the inboxes).
func BenchmarkRequestResponse(b *testing.B) {
	w := newWorld(b, "site-1")
	site, server := w.parts["site-1"], w.parts["server"]
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
	handOver(b, site, server)
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

// BenchmarkThroughput measures one-way small messages leaf -> hub, at
// most inFlight of them on the way at any time.
func BenchmarkThroughput(b *testing.B) {
	b.Run("plain-nats", func(b *testing.B) {
		w := newWorld(b, "site-1")
		site, server := w.parts["site-1"], w.parts["server"]
		c := newCounter()
		var warm atomic.Bool
		sub, err := server.conn.Subscribe(bus.Inbox("server"), func(m *nats.Msg) {
			if len(m.Data) != smallPayload {
				warm.Store(true)
				return
			}
			c.add()
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			b.Fatal(err)
		}
		handOver(b, server)
		// The path is up (the world's pings crossed it) and its interest
		// never lapsed; one message that reaches the new subscriber shows it.
		bustest.CheckFor(b, 10*time.Second, 10*time.Millisecond, func() error {
			if warm.Load() {
				return nil
			}
			if err := site.conn.Publish(bus.Direct("server", "site-1"), []byte("warm-up")); err != nil {
				return err
			}
			if err := site.conn.Flush(); err != nil {
				return err
			}
			return errors.New("nothing crosses the leaf link")
		})
		payload := make([]byte, smallPayload)
		b.ResetTimer()
		t0 := time.Now()
		c.send(b, func() error { return site.conn.Publish(bus.Direct("server", "site-1"), payload) })
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
	b.Run("signed", func(b *testing.B) {
		w := newWorldWith(b, bustest.Unlimited, "site-1")
		site, server := w.parts["site-1"], w.parts["server"]
		c := newCounter()
		counter := server.system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*hearthv1.Pong); ok {
				c.add()
			}
		}))
		server.bridge.Route(protocol.Name(&hearthv1.Pong{}), counter)
		msg := &hearthv1.Pong{Payload: make([]byte, smallPayload)}
		b.ResetTimer()
		t0 := time.Now()
		c.send(b, func() error {
			site.system.Root.Send(site.bridge.PID(), &bridge.Send{To: "server", Msg: msg})
			return nil
		})
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
