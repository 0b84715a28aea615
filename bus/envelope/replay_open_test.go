package envelope_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestOpenRefusesReplay(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	v := fx.verifier(t, clk, nil)
	data := ping(t, fx.site2)
	if _, err := v.Open("site-2", data); err != nil {
		t.Fatalf("first copy: %v", err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    error
	}{
		{"same bytes at once", 0, envelope.ErrReplay},
		{"same bytes at the end of the window", envelope.DefaultWindow, envelope.ErrReplay},
		{"same bytes after the window", time.Nanosecond, envelope.ErrOutsideWindow},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		_, err := v.Open("site-2", data)
		if !errors.Is(err, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, err, s.want)
		}
		if s.want == envelope.ErrReplay && !strings.Contains(err.Error(), "message id already seen: id "+headerOf(t, data).Id) {
			t.Errorf("%s: error %q does not name the id", s.name, err)
		}
	}
}

func TestOpenRefusesReplayConcurrently(t *testing.T) {
	fx := newFixture(t)
	v := fx.verifier(t, newClock(), nil)
	data := ping(t, fx.site2)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
	)
	for range 32 {
		wg.Go(func() {
			_, err := v.Open("site-2", data)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case !errors.Is(err, envelope.ErrReplay):
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if accepted != 1 {
		t.Errorf("%d copies accepted, want 1", accepted)
	}
}

func TestOpenReplayCacheFull(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	v := fx.verifier(t, clk, func(c *envelope.Config) { c.MaxRemembered = 2 })
	for i := range 2 {
		if _, err := v.Open("site-2", ping(t, fx.site2)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	_, err := v.Open("site-2", ping(t, fx.site2))
	if !errors.Is(err, envelope.ErrReplayCacheFull) || envelope.Reason(err) != "replay_cache_full" {
		t.Fatalf("third message: got %v, want %v", err, envelope.ErrReplayCacheFull)
	}
	if !strings.Contains(err.Error(), `replay cache full: "site-2" has 2 ids remembered, its quota`) {
		t.Errorf("error %q does not say why", err)
	}
	// Once the remembered envelopes can no longer pass the time check, their
	// ids are dropped and the cache takes new ones again.
	clk.Advance(3 * envelope.DefaultWindow)
	if _, err := v.Open("site-2", sentAt(t, fx.site2, clk.Now())); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestForgeryDoesNotPoisonReplayCache: forgeries carrying a genuine
// envelope's id are refused without remembering the id, so the genuine
// envelope still passes afterwards.
func TestForgeryDoesNotPoisonReplayCache(t *testing.T) {
	fx := newFixture(t)
	genuine := ping(t, fx.site2)
	id := headerOf(t, genuine).Id
	forgeries := []struct {
		name string
		data []byte
		want error
	}{
		{"tampered body", tamper(t, genuine, func(env *hearthv1.Envelope) { env.Body[0] ^= 1 }), envelope.ErrBadSignature},
		{"signed by another key", tamper(t, genuine, func(env *hearthv1.Envelope) {
			env.Signature = ed25519.Sign(fx.otherKey, signed(env.Header, env.Body))
		}), envelope.ErrBadSignature},
		{"impostor certificate with the same id", resign(t, ping(t, fx.impostor), fx.impostorKey, func(h *hearthv1.Header, _ *hearthv1.Envelope) {
			h.Id = id
		}), envelope.ErrUntrustedSender},
	}
	v := fx.verifier(t, newClock(), nil)
	for _, f := range forgeries {
		if headerOf(t, f.data).Id != id {
			t.Fatalf("%s: forgery does not carry the genuine id", f.name)
		}
		if _, err := v.Open("site-2", f.data); !errors.Is(err, f.want) {
			t.Fatalf("%s: got %v, want %v", f.name, err, f.want)
		}
	}
	if _, err := v.Open("site-2", genuine); err != nil {
		t.Fatalf("genuine envelope after forgeries: %v", err)
	}
}
