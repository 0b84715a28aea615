package bridge_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestSiteHearsOnlyTheServerUnlessAdmitted: envelopes from another site or
// an admin, validly signed and addressed to site-1, that reach site-1's
// inbox (published on site-1's own leaf node, past the hub's permissions)
// are refused by its bridge, the admin's with ErrKindNotAllowed, the
// site's with ErrNotAdmitted (no swarm job admits it), and reach no actor;
// the server's are delivered.
func TestSiteHearsOnlyTheServerUnlessAdmitted(t *testing.T) {
	w := newWorld(t, "site-1", "site-2")
	site1 := w.parts["site-1"]
	rec := &recorder{seen: make(chan struct{}, 8)}
	site1.bridge.Route(protocol.Name(&hearthv1.Ping{}), site1.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec })))
	admin := w.project.Issue(t, "admin2@hearth.org", "hearth", pki.KindAdmin)
	adminSigner, err := envelope.NewSigner(admin.Cert, admin.Key)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(s *envelope.Signer, msg *hearthv1.Ping) []byte {
		data, _, err := s.Sign(envelope.Outgoing{Recipient: "site-1", Body: msg}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cases := []struct {
		name   string
		signer *envelope.Signer
		want   error
	}{
		{"from another site, outside any job both are in", w.parts["site-2"].signer, envelope.ErrNotAdmitted},
		{"from an admin", adminSigner, envelope.ErrKindNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.signer.Identity().Name
			if err := site1.conn.Publish(bus.Direct("site-1", from), sign(tc.signer, &hearthv1.Ping{Text: "hello"})); err != nil {
				t.Fatal(err)
			}
			waitRefusalOrNone(t, site1, tc.want)
		})
	}
	select {
	case <-rec.seen:
		t.Fatalf("an actor received %v", rec.got)
	default:
	}
	server := w.parts["server"]
	server.system.Root.Send(server.bridge.PID(), &bridge.Send{To: "site-1", Msg: &hearthv1.Ping{Text: "from the server"}})
	select {
	case <-rec.seen:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's ping was not delivered")
	}
}

// TestFloodRefusesOnlyTheFlooder: while site-1 floods the server with
// validly signed envelopes as fast as it can publish them, site-2's
// request/response round trips with the server all succeed, and the
// flood is refused (rate limit, then replay quota) through OnRefused.
func TestFloodRefusesOnlyTheFlooder(t *testing.T) {
	w := newWorld(t, "site-1", "site-2")
	flooder, honest, server := w.parts["site-1"], w.parts["site-2"], w.parts["server"]
	const pool = 4000 // distinct envelopes, signed beforehand so that the flood runs at publishing speed
	flood := signFlood(t, flooder, pool)
	roundTrips := func(n int) []time.Duration { return roundTrips(t, honest, n) }
	quiet := roundTrips(20)

	start := time.Now()
	stop := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		defer func() { published <- n }()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			for _, data := range flood {
				select {
				case <-stop:
					return
				default:
				}
				if flooder.conn.Publish(bus.Direct("server", "site-1"), data) != nil {
					return
				}
				n++
			}
		}
	}()
	loud := roundTrips(50)
	close(stop)
	n := <-published
	// Of n envelopes, the bucket lets through at most its burst and its
	// rate over the flood's duration; every other one must be refused as
	// rate limited, and each refusal must reach OnRefused.
	bustest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		allowed := envelope.DefaultBurst + int(envelope.DefaultRate*time.Since(start).Seconds()) + 1
		if refused := server.refusedCount("rate_limited") + server.refusedCount("replay"); refused < n-allowed {
			return fmt.Errorf("%d of %d flood envelopes refused, want at least %d", refused, n, n-allowed)
		}
		return nil
	})
	drained := time.Since(start)
	t.Logf("flood: %d envelopes published by site-1, all handled by the server after %v; server refused %d rate_limited, %d replay; site-2 round trips: quiet p50 %v max %v, during the flood p50 %v max %v",
		n, drained.Round(time.Millisecond), server.refusedCount("rate_limited"), server.refusedCount("replay"), median(quiet), slices.Max(quiet), median(loud), slices.Max(loud))
	if server.refusedCount("rate_limited") == 0 {
		t.Fatal("no flood envelope was refused as rate limited")
	}
}

// TestReplayQuotaFloodRefusesOnlyTheFlooder: with the rate limit off, a
// sender's flood of distinct, validly signed envelopes fills its own replay
// quota and the rest are refused with ErrReplayCacheFull through OnRefused,
// while another site's round trips, running at the same time, all succeed.
func TestReplayQuotaFloodRefusesOnlyTheFlooder(t *testing.T) {
	const quota, pool = 1000, 4000
	w := newWorldWith(t, func(c *envelope.Config) { c.Rate, c.MaxRemembered = math.Inf(1), quota }, "site-1", "site-2")
	flooder, honest, server := w.parts["site-1"], w.parts["site-2"], w.parts["server"]
	flood := signFlood(t, flooder, pool)
	done := make(chan []time.Duration, 1)
	go func() { done <- roundTrips(t, honest, 20) }()
	for _, data := range flood {
		if err := flooder.conn.Publish(bus.Direct("server", "site-1"), data); err != nil {
			t.Fatal(err)
		}
	}
	lat := <-done
	bustest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if refused := server.refusedCount("replay_cache_full"); refused < pool-quota {
			return fmt.Errorf("%d of %d flood envelopes refused as over the replay quota, want at least %d", refused, pool, pool-quota)
		}
		return nil
	})
	t.Logf("replay-quota flood: %d envelopes, %d refused replay_cache_full; site-2 round trips p50 %v max %v",
		pool, server.refusedCount("replay_cache_full"), median(lat), slices.Max(lat))
}

// signFlood signs n distinct Pings from m to the server, beforehand, so
// that a flood runs at publishing speed.
func signFlood(t *testing.T, m *member, n int) [][]byte {
	t.Helper()
	flood := make([][]byte, n)
	for i := range flood {
		data, _, err := m.signer.Sign(envelope.Outgoing{Recipient: "server", Body: &hearthv1.Ping{Seq: uint64(i)}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		flood[i] = data
	}
	return flood
}

// roundTrips makes n request/response round trips from m to the server,
// each of which must succeed within 2s, and returns their latencies. It
// may run on another goroutine (it reports with t.Errorf and stops).
func roundTrips(t *testing.T, m *member, n int) []time.Duration {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t0 := time.Now()
		r, err := m.bridge.Request(ctx, "server", &hearthv1.Ping{Seq: uint64(i)})
		cancel()
		if err != nil {
			t.Errorf("round trip %d of %s during the flood: %v", i, m.part.Identity.Name, err)
			break
		}
		if pong, ok := r.Msg.(*hearthv1.Pong); !ok || pong.Seq != uint64(i) {
			t.Errorf("round trip %d: reply %v", i, r.Msg)
			break
		}
		lat = append(lat, time.Since(t0))
	}
	if len(lat) == 0 {
		lat = append(lat, 0) // for median and max; the test has failed
	}
	return lat
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
