// Package bustest is the test support that the bus packages' tests share:
// polling with a deadline instead of sleeping (Poll, CheckFor, whose
// condition returns a descriptive error), a logger that shows the embedded
// NATS servers' logs only when HEARTH_TEST_LOG is set (Logger), and a hub
// with leaf nodes in the test process on loopback with real mutual TLS
// (Topology), as in nats-server's own tests.
//
// Only _test.go files import it; no binary links it (the import-rules test
// in integration refuses package testing in the hearth binary).
package bustest

import (
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

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
