package authn_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/internal/testauthn"
)

// BenchmarkAuthenticate measures one authenticator decision (the test
// authenticator's table lookup) called in process, and the same decision
// through the plugin boundary: the loader's supervised call, gRPC over
// AutoMTLS to the real plugin binary, and back. The difference is the
// plugin's own overhead. Each reports the p50 and p99 of a call beside
// ns/op.
func BenchmarkAuthenticate(b *testing.B) {
	config, err := json.Marshal(map[string]any{"users": users})
	if err != nil {
		b.Fatal(err)
	}
	r := request("alice", "pw")

	b.Run("in-process", func(b *testing.B) {
		a := &testauthn.Authenticator{}
		if err := a.Configure(b.Context(), config); err != nil {
			b.Fatal(err)
		}
		measure(b, func() (authn.Decision, error) { return a.Authenticate(b.Context(), r) })
	})

	b.Run("plugin", func(b *testing.B) {
		c, err := authn.NewClient(authn.ClientConfig{
			Pin:     plugins.Pin{Path: bins.Plain, SHA256: bins.PlainSum},
			Timeout: 5 * time.Second,
			WorkDir: b.TempDir(),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.Configure(b.Context(), config); err != nil {
			b.Fatal(err)
		}
		measure(b, func() (authn.Decision, error) { return c.Authenticate(b.Context(), r) })
	})
}

// measure runs call b.N times, each timed, and reports the p50 and p99.
func measure(b *testing.B, call func() (authn.Decision, error)) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		d, err := call()
		lat = append(lat, time.Since(start))
		if err != nil || !d.Authenticated {
			b.Fatalf("decision %+v, %v; want alice authenticated", d, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
