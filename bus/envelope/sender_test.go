package envelope_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestReplayQuotaIsPerSender: a sender that fills its replay quota with
// validly signed envelopes dated as far ahead as allowed (so their ids must
// be remembered longest) is refused, naming it, and every other sender is
// still served.
func TestReplayQuotaIsPerSender(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	const quota = 50
	v := fx.verifier(t, clk, func(c *envelope.Config) { c.MaxRemembered = quota })
	ahead := func(s *envelope.Signer) []byte { return sentAt(t, s, clk.Now().Add(envelope.DefaultFutureSkew)) }
	for i := range quota {
		if _, err := v.Open("site-2", ahead(fx.site2)); err != nil {
			t.Fatalf("flood envelope %d: %v", i, err)
		}
	}
	_, err := v.Open("site-2", ahead(fx.site2))
	if !errors.Is(err, envelope.ErrReplayCacheFull) || envelope.Reason(err) != "replay_cache_full" {
		t.Fatalf("flooder past its quota: got %v, want %v", err, envelope.ErrReplayCacheFull)
	}
	if want := `envelope from "site-2" refused: replay cache full: "site-2" has 50 ids remembered, its quota`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	others := []struct {
		name   string
		from   string
		signer *envelope.Signer
		body   func() envelope.Outgoing
	}{
		{"the server", "server", fx.server, func() envelope.Outgoing { return envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}} }},
		{"an admin", "admin@a.org", fx.admin, func() envelope.Outgoing { return envelope.Outgoing{Recipient: self, Body: &hearthv1.Notice{}} }},
	}
	for _, o := range others {
		t.Run(o.name, func(t *testing.T) {
			for i := range quota {
				if _, err := v.Open(o.from, mustSign(t, o.signer, o.body(), clk.Now())); err != nil {
					t.Fatalf("envelope %d from %s while site-2 is at its quota: %v", i, o.from, err)
				}
			}
		})
	}
	// The flooder's ids expire like any others: it is served again later.
	clk.Advance(3 * envelope.DefaultWindow)
	if _, err := v.Open("site-2", sentAt(t, fx.site2, clk.Now())); err != nil {
		t.Fatalf("flooder after its ids expired: %v", err)
	}
}

func TestReplayCacheBoundsSenders(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	v := fx.verifier(t, clk, func(c *envelope.Config) { c.MaxSenders = 1 })
	if _, err := v.Open("site-2", ping(t, fx.site2)); err != nil {
		t.Fatal(err)
	}
	_, err := v.Open("server", mustSign(t, fx.server, envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, t0))
	if !errors.Is(err, envelope.ErrReplayCacheFull) || !strings.Contains(err.Error(), "1 other senders have ids remembered, the limit") {
		t.Fatalf("second sender over MaxSenders: got %v, want %v saying why", err, envelope.ErrReplayCacheFull)
	}
	clk.Advance(3 * envelope.DefaultWindow)
	if _, err := v.Open("server", mustSign(t, fx.server, envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, clk.Now())); err != nil {
		t.Fatalf("second sender once the first one's ids expired: %v", err)
	}
}

// TestRateLimitIsPerSender: a sender over its burst is refused with
// ErrRateLimited before anything is parsed (its garbage costs nothing),
// others are not, and it is served again as its bucket refills.
func TestRateLimitIsPerSender(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	const burst = 20
	v := fx.verifier(t, clk, func(c *envelope.Config) { c.Rate, c.Burst = 10, burst })
	for i := range burst {
		if _, err := v.Open("site-2", sentAt(t, fx.site2, clk.Now())); err != nil {
			t.Fatalf("envelope %d inside the burst: %v", i, err)
		}
	}
	tests := []struct {
		name string
		from string
		data []byte
		want error
	}{
		{"valid envelope past the burst", "site-2", sentAt(t, fx.site2, clk.Now()), envelope.ErrRateLimited},
		{"garbage past the burst is refused as a flood, not parsed", "site-2", []byte{0xff, 0xff}, envelope.ErrRateLimited},
		{"another sender is served", "server", mustSign(t, fx.server, envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, clk.Now()), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Open(tt.from, tt.data)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want != nil && (envelope.Reason(err) != "rate_limited" || !strings.Contains(err.Error(), `envelope from "site-2" refused: sender over its rate limit: more than 20 at once or 10 a second`)) {
				t.Errorf("refusal %q (%s) does not say why", err, envelope.Reason(err))
			}
		})
	}
	clk.Advance(time.Second) // 10 tokens back
	for i := range 10 {
		if _, err := v.Open("site-2", sentAt(t, fx.site2, clk.Now())); err != nil {
			t.Fatalf("envelope %d after a second: %v", i, err)
		}
	}
	if _, err := v.Open("site-2", sentAt(t, fx.site2, clk.Now())); !errors.Is(err, envelope.ErrRateLimited) {
		t.Fatalf("eleventh envelope after a second: got %v, want %v", err, envelope.ErrRateLimited)
	}
}

func TestRateLimitOff(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	v := fx.verifier(t, clk, func(c *envelope.Config) { c.Rate, c.Burst = math.Inf(1), 1 })
	for i := range 3 * envelope.DefaultBurst {
		if _, err := v.Open("site-2", []byte{0xff}); errors.Is(err, envelope.ErrRateLimited) {
			t.Fatalf("envelope %d refused with the limit off: %v", i, err)
		}
	}
}

func TestAddressable(t *testing.T) {
	fx := newFixture(t)
	v := fx.verifier(t, newClock(), nil) // self is the site "site-1"
	tests := []struct {
		name string
		from string
		data []byte
		self pki.Kind
		want error
	}{
		{"server to a site", "server", mustSign(t, fx.server, envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{}}, t0), pki.KindSite, nil},
		{"site to a site (swarm learning: the bridge then asks the participant)", "site-2", ping(t, fx.site2), pki.KindSite, nil},
		{"admin to a site", "admin@a.org", mustSign(t, fx.admin, envelope.Outgoing{Recipient: self, Body: &hearthv1.Notice{}}, t0), pki.KindSite, envelope.ErrKindNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := v.Open(tt.from, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			err = envelope.Addressable(m, tt.self)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Addressable = %v, want %v", err, tt.want)
			}
			if tt.want != nil && (envelope.Reason(err) != "kind_not_allowed" || !strings.Contains(err.Error(), "senders may not address a site")) {
				t.Errorf("refusal %q does not say why", err)
			}
		})
	}
}

func TestMayAddress(t *testing.T) {
	kinds := []pki.Kind{pki.KindServer, pki.KindSite, pki.KindAdmin, pki.KindAggregator}
	for _, from := range kinds {
		for _, to := range kinds {
			want := from == pki.KindServer || to == pki.KindServer || from == pki.KindSite && to == pki.KindSite ||
				from == pki.KindSite && to == pki.KindAggregator || from == pki.KindAggregator && to == pki.KindSite
			if got := pki.MayAddress(from, to); got != want {
				t.Errorf("MayAddress(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
		if pki.MayAddress(from, "robot") || pki.MayAddress("robot", from) {
			t.Errorf("an unknown kind addresses or is addressed by %s", from)
		}
	}
}

// TestFutureSkewNeverPassesAShortWindow: with a window shorter than the
// default skew, the default skew shrinks to the window.
func TestFutureSkewNeverPassesAShortWindow(t *testing.T) {
	fx := newFixture(t)
	v := fx.verifier(t, newClock(), func(c *envelope.Config) { c.Window = 5 * time.Second })
	if _, err := v.Open("site-2", sentAt(t, fx.site2, t0.Add(5*time.Second))); err != nil {
		t.Fatalf("sent one window ahead: %v", err)
	}
	_, err := v.Open("site-2", sentAt(t, fx.site2, t0.Add(5*time.Second+time.Nanosecond)))
	if !errors.Is(err, envelope.ErrOutsideWindow) || !strings.Contains(err.Error(), "allowed skew 5s") {
		t.Fatalf("sent past a 5s window ahead: %v, want outside the window with a 5s skew", err)
	}
}
