// Package bustest is the test support that the bus packages' tests share:
// polling with a deadline instead of sleeping (Poll, CheckFor, whose
// condition returns a descriptive error), waiting for a new subscription's
// interest to cross the leaf links (DeliverUntilSeen), a logger that shows the embedded
// NATS servers' logs only when HEARTH_TEST_LOG is set (Logger), and a hub
// with leaf nodes in the test process on loopback with real mutual TLS
// (Topology), as in nats-server's own tests.
//
// Only _test.go files import it; no binary links it (the import-rules test
// in integration refuses package testing in the hearth binary).
package bustest

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus/envelope"
)

// LogEnv is the environment variable that turns on the test logs.
const LogEnv = "HEARTH_TEST_LOG"

// Logger discards everything unless LogEnv is set, when it writes debug
// logs to stderr.
func Logger() *slog.Logger {
	if os.Getenv(LogEnv) != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Poll calls f every `every` until it returns nil or total passes, and
// returns f's last error (nil once it succeeded). f runs at least once.
func Poll(total, every time.Duration, f func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// CheckFor polls f like Poll and fails t with f's last error if f has not
// returned nil after total.
func CheckFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()
	if err := Poll(total, every, f); err != nil {
		t.Fatalf("after %v: %v", total, err)
	}
}

// Unlimited lifts a verifier's per-sender rate limit and replay quota,
// which a benchmark's or a flood test's one sender would otherwise reach
// at once; the checks themselves stay on.
func Unlimited(c *envelope.Config) { c.Rate, c.MaxRemembered = math.Inf(1), 1<<24 }

// DeliverUntilSeen publishes on subject until sub sees a message, so that
// sub's interest has crossed the leaf links to pub, and returns the first
// it saw. It then reads sub past a last message of its own (SyncPast), so
// that no "hello" still on its way is taken for the next message the test
// reads there.
func DeliverUntilSeen(t testing.TB, pub *nats.Conn, subject string, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	var got *nats.Msg
	CheckFor(t, 10*time.Second, 0, func() error {
		if err := pub.Publish(subject, []byte("hello")); err != nil {
			return err
		}
		m, err := sub.NextMsg(50 * time.Millisecond)
		if err != nil {
			return fmt.Errorf("nothing on %s yet: %w", subject, err)
		}
		got = m
		return nil
	})
	SyncPast(t, pub, subject, sub)
	return got
}

// syncs numbers SyncPast's messages.
var syncs atomic.Int64

// SyncPast publishes a message of its own on subject, unlike any other, and
// reads each of subs up to it: past everything pub published there before
// (one publisher's messages keep their order).
func SyncPast(t testing.TB, pub *nats.Conn, subject string, subs ...*nats.Subscription) {
	t.Helper()
	token := fmt.Sprintf("sync %d", syncs.Add(1))
	if err := pub.Publish(subject, []byte(token)); err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs {
		for {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("the sync message on %s did not come: %v", subject, err)
			}
			if string(m.Data) == token {
				break
			}
		}
	}
}
