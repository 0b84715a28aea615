package envelope_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/envelope"
)

// TestAdminCommandsFromBeforeAStartAreRefused: a restarted process's
// replay cache is empty, so an admin's envelope sent before the process
// started (one captured and replayed, say) is refused; a site's answer from
// then, and an admin's command sent since, are not.
func TestAdminCommandsFromBeforeAStartAreRefused(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	v := fx.verifier(t, clk, func(c *envelope.Config) { c.Started = t0 })
	_, err := v.Open("admin@a.org", sentAt(t, fx.admin, t0.Add(-time.Second)))
	if !errors.Is(err, envelope.ErrOutsideWindow) || !strings.Contains(err.Error(), "before this process started") {
		t.Fatalf("an admin's command from before the start: %v", err)
	}
	if _, err := v.Open("admin@a.org", sentAt(t, fx.admin, t0)); err != nil {
		t.Fatalf("an admin's command since the start: %v", err)
	}
	if _, err := v.Open("site-2", sentAt(t, fx.site2, t0.Add(-time.Second))); err != nil {
		t.Fatalf("a site's envelope from before the start: %v", err)
	}
}
