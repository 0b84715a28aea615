package main

import (
	"context"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/cmd/hearth/linkrelay"
)

// TestBenchRefusesABadLink: a --link that is not a rate is refused with
// the reason before anything is provisioned or started.
func TestBenchRefusesABadLink(t *testing.T) {
	for _, tt := range []struct{ link, want string }{
		{"100Mb", `--link: rate "100Mb": unknown unit "Mb"`},
		{"100", "no unit"},
		{"0Gbit", "must be positive"},
		{"fast", `unknown unit "fast"`},
	} {
		t.Run(tt.link, func(t *testing.T) {
			var out, errOut strings.Builder
			c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
			err := run(context.Background(), c, []string{"bench", "--workspace", t.TempDir(), "--link", tt.link})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("bench --link %s: %v, want an error saying %q", tt.link, err, tt.want)
			}
			if out.Len() > 0 {
				t.Fatalf("bench printed %q before refusing", out.String())
			}
		})
	}
}

// TestBenchLinkCountsItsTunnels: a link that no leaf went through is an
// error (its figures would be loopback's), and no link is no check.
func TestBenchLinkCountsItsTunnels(t *testing.T) {
	l, err := newBenchLink(125e6)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.serve(provision.ServerSpec{Hosts: []string{"127.0.0.1"}, LeafPort: 1}); err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if _, err := l.carried(2); err == nil || !strings.Contains(err.Error(), "0 tunnels for 2 leaf nodes") {
		t.Fatalf("carried with no tunnel: %v, want an error naming the missing tunnels", err)
	}
	none, err := newBenchLink(0)
	if err != nil {
		t.Fatal(err)
	}
	if none.url() != "" {
		t.Fatalf("no link, proxy %q", none.url())
	}
	if n, err := none.carried(2); n != 0 || err != nil {
		t.Fatalf("no link: carried %d, %v", n, err)
	}
}

// TestPlainBaselineOverTheLink runs the plain NATS baseline through a
// 100 Mbit/s relay: the leaf's mTLS link to the hub works through it, and
// what arrives can never beat the link (a bucket's burst of 32 KiB is
// 0.4% of the 8 MiB sent; no lower bound, which would be a timing test).
func TestPlainBaselineOverTheLink(t *testing.T) {
	const link = linkrelay.Rate(12.5e6)
	mbps, err := plainThroughput(t.Context(), t.TempDir(), 8<<20, link)
	if err != nil {
		t.Fatal(err)
	}
	if limit := 1.01 * float64(link) / 1e6; mbps <= 0 || mbps > limit {
		t.Fatalf("plain NATS over a %s link: %.2f MB/s, want at most %.2f", link, mbps, limit)
	}
	t.Logf("plain NATS over a %s link: %.2f MB/s", link, mbps)
}

// TestPlainSwarmRoundOverTheLink runs the swarm round's plain NATS pattern
// with 3 sites through a 100 Mbit/s relay: both members' flows and the one
// publication reach every receiver (run fails otherwise), and what is
// delivered can never beat the links: 4 model copies arrive while the
// aggregator's link carries 2 in and 1 out, so at most 4/3 of its rate.
func TestPlainSwarmRoundOverTheLink(t *testing.T) {
	const link = linkrelay.Rate(12.5e6)
	mbps, err := plainSwarmRound(t.Context(), t.TempDir(), 4<<20, 3, link)
	if err != nil {
		t.Fatal(err)
	}
	if limit := 1.01 * 4 / 3 * float64(link) / 1e6; mbps <= 0 || mbps > limit {
		t.Fatalf("a swarm round's pattern over a %s link: %.2f MB/s delivered, want at most %.2f", link, mbps, limit)
	}
	t.Logf("a swarm round's pattern over a %s link: %.2f MB/s delivered", link, mbps)
}

// TestProfileNamesDiffer: each configuration of the grid writes its own
// CPU profiles (the filter's run once overwrote the unfiltered one's).
func TestProfileNamesDiffer(t *testing.T) {
	seen := map[string]bool{}
	for _, workflow := range []string{"fedavg", "swarm"} {
		for _, codec := range []string{"float32", "int8-block64"} {
			for _, filter := range []string{"", "/bin/hearth-filter-noop"} {
				name := profileName(workflow, "fedavg", codec, filter, 256<<20, 4, "site-1")
				if seen[name] || strings.ContainsAny(name, " /") {
					t.Fatalf("profile name %q repeated or not a plain file name", name)
				}
				seen[name] = true
			}
		}
	}
}
