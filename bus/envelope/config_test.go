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

func TestNewVerifierValidates(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name  string
		tweak func(*envelope.Config)
		text  string
	}{
		{"no self", func(c *envelope.Config) { c.Self = "" }, "self"},
		{"no trust", func(c *envelope.Config) { c.Trust = nil }, "no trust"},
		{"no registry", func(c *envelope.Config) { c.Registry = nil }, "no registry"},
		{"allowed type not registered", func(c *envelope.Config) {
			c.Allow = envelope.AllowList{pki.KindSite: {"hearth.v1.Envelope"}}
		}, `site may send "hearth.v1.Envelope", which is not in the registry`},
		{"unknown kind", func(c *envelope.Config) { c.Allow = envelope.AllowList{"robot": {"hearth.v1.Ping"}} }, `unknown sender kind "robot"`},
		{"negative window", func(c *envelope.Config) { c.Window = -time.Second }, "window"},
		{"window too long", func(c *envelope.Config) { c.Window = 25 * time.Hour }, "window"},
		{"negative max size", func(c *envelope.Config) { c.MaxSize = -1 }, "max size"},
		{"max size too large", func(c *envelope.Config) { c.MaxSize = 1 << 30 }, "max size"},
		{"negative max remembered", func(c *envelope.Config) { c.MaxRemembered = -1 }, "max remembered"},
		{"negative max senders", func(c *envelope.Config) { c.MaxSenders = -1 }, "max senders"},
		{"negative future skew", func(c *envelope.Config) { c.FutureSkew = -time.Second }, "future skew"},
		{"future skew beyond the window", func(c *envelope.Config) { c.Window, c.FutureSkew = time.Minute, 2*time.Minute }, "future skew"},
		{"negative rate", func(c *envelope.Config) { c.Rate = -1 }, "rate"},
		{"NaN rate", func(c *envelope.Config) { c.Rate = math.NaN() }, "rate"},
		{"negative burst", func(c *envelope.Config) { c.Burst = -1 }, "burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := envelope.Config{Self: self, Trust: fx.trust, Registry: fx.reg, Allow: fx.allow}
			tt.tweak(&cfg)
			_, err := envelope.NewVerifier(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("NewVerifier: %v, want an error about %q", err, tt.text)
			}
		})
	}
}

func TestVerifierCopiesAllowList(t *testing.T) {
	fx := newFixture(t)
	allow := envelope.AllowList{pki.KindSite: {"hearth.v1.Pong"}}
	v := fx.verifier(t, newClock(), func(c *envelope.Config) { c.Allow = allow })
	allow[pki.KindSite] = append(allow[pki.KindSite], "hearth.v1.Ping")
	if _, err := v.Open("site-2", ping(t, fx.site2)); !errors.Is(err, envelope.ErrTypeNotAllowed) {
		t.Fatalf("got %v, want %v: the verifier must not see later changes to the allow-list", err, envelope.ErrTypeNotAllowed)
	}
}

func TestRegistry(t *testing.T) {
	r := envelope.NewRegistry(&hearthv1.Ping{}, nil, &hearthv1.Pong{}, &hearthv1.Ping{Seq: 3})
	if got, want := strings.Join(r.Names(), ","), "hearth.v1.Ping,hearth.v1.Pong"; got != want {
		t.Errorf("Names = %s, want %s", got, want)
	}
	if !r.Has("hearth.v1.Ping") || r.Has("hearth.v1.Notice") || r.Has("") {
		t.Errorf("Has answers wrongly")
	}
	m, ok := r.New("hearth.v1.Pong")
	if _, isPong := m.(*hearthv1.Pong); !ok || !isPong {
		t.Errorf("New(Pong) = %T, %v", m, ok)
	}
	if _, ok := r.New("hearth.v1.Envelope"); ok {
		t.Errorf("New made an unregistered type")
	}
}
