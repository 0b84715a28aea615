package integration

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// BenchmarkRoundOverhead runs a job of b.N rounds on a server and 5 sites
// as separate processes (optdigits, logistic regression: a 2.6 KB model),
// FedAvg and swarm, and reports a round's overhead: its wall time minus the
// local work (validation and training) of its slowest site. That is
// everything Hearth adds: signing and verifying, the hub and leaf hops,
// actors, aggregation, the JetStream checkpoint (FedAvg) or sealing and
// the site-to-site hops (swarm), and the audit records (fsynced). Next to
// it, the baseline measured in the same run: a plain NATS fan-out of the
// same model bytes to 5 leaf nodes and back over the same kind of mTLS
// hub-leaf links, with nothing else.
//
//	go test -run '^$' -bench RoundOverhead -benchtime 50x ./integration
func BenchmarkRoundOverhead(b *testing.B) {
	for _, workflow := range []string{"fedavg", "swarm"} {
		b.Run(workflow, func(b *testing.B) {
			lp := startLearning(b, 5)
			manifest := jobSpec{rounds: b.N, minSites: 5, timeout: "30s"}.manifest()
			if workflow == "swarm" {
				manifest = swarmJob("bench", b.N, 5, "30s", "")
			}
			id := lp.submit(b, manifest)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			info, err := lp.admin.Follow(ctx, id, 50*time.Millisecond, nil)
			if err != nil {
				b.Fatal(err)
			}
			if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
				for _, s := range lp.sites {
					for _, r := range s.Records(func(r cluster.Record) bool { return r.Str("level") != "INFO" }) {
						b.Logf("%s: %v", s.Name, r)
					}
				}
				b.Fatalf("job %s: %s", info.Status, info.Reason)
			}
			var overhead, wall []time.Duration
			for _, r := range info.History {
				d := time.Duration(r.DurationMicros) * time.Microsecond
				wall = append(wall, d)
				overhead = append(overhead, d-time.Duration(r.MaxTrainMicros)*time.Microsecond)
			}
			b.ReportMetric(ms(percentile(overhead, 50)), "overhead-p50-ms")
			b.ReportMetric(ms(percentile(overhead, 95)), "overhead-p95-ms")
			b.ReportMetric(ms(percentile(wall, 50)), "round-p50-ms")
			const modelBytes = 2600 // the logreg's 650 float32s, as FedAvg's rounds report (bytes_moved / 10)
			base := plainFanOut(b, 5, modelBytes, 200)
			b.ReportMetric(ms(percentile(base, 50)), "baseline-p50-ms")
			b.ReportMetric(ms(percentile(base, 95)), "baseline-p95-ms")
		})
	}
}

// plainFanOut measures rounds of a plain NATS fan-out: the hub sends n
// payload bytes to each of `sites` leaf nodes, each answers with the same
// bytes; a round ends when all answers are back.
func plainFanOut(b *testing.B, sites, n, rounds int) []time.Duration {
	p := pkitest.New(b)
	server := p.Issue(b, "server", "hearth", pki.KindServer)
	var ids []pki.Identity
	var parts []*pkitest.Participant
	for i := 1; i <= sites; i++ {
		sp := p.Issue(b, fmt.Sprintf("site-%d", i), "org", pki.KindSite)
		parts, ids = append(parts, sp), append(ids, sp.Identity)
	}
	hub, err := bus.StartHub(bus.HubConfig{Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: server.TLS(), Trust: p.Trust, Participants: ids, StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Shutdown()
	sc, err := hub.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	replies, _ := sc.SubscribeSync(bus.Inbox("server"))
	for _, sp := range parts {
		leaf, err := bus.StartLeaf(bus.LeafConfig{Name: sp.Identity.Name, HubURLs: []string{"tls://" + hub.LeafAddr()},
			LocalPort: -1, Certificate: sp.TLS(), Trust: p.Trust})
		if err != nil {
			b.Fatal(err)
		}
		defer leaf.Shutdown()
		nc, err := leaf.Connect()
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		name := sp.Identity.Name
		if _, err := nc.Subscribe(bus.Inbox(name), func(m *nats.Msg) { _ = nc.Publish(bus.Direct("server", name), m.Data) }); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		ready := true
		for _, sp := range parts {
			ready = ready && hub.Reachable(sp.Identity.Name)
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("leaves not reachable")
		}
		time.Sleep(10 * time.Millisecond)
	}
	payload := make([]byte, n)
	var out []time.Duration
	for range rounds {
		t0 := time.Now()
		for _, sp := range parts {
			if err := sc.Publish(bus.Direct(sp.Identity.Name, "server"), payload); err != nil {
				b.Fatal(err)
			}
		}
		for range parts {
			if _, err := replies.NextMsg(5 * time.Second); err != nil {
				b.Fatal(err)
			}
		}
		out = append(out, time.Since(t0))
	}
	return out
}

func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
