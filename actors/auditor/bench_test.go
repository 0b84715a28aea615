package auditor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

var benchEvent = Event{Action: ActionTaskReceived, JobID: "job-7f3a", Round: 12, Peer: "server",
	PeerEvent: "server:1234:9f2c4e1ab07d3358", Detail: map[string]string{"message_id": "01J9Z8QW3E"}}

// BenchmarkAppend is one writer: every record is signed and fsynced before
// Append returns.
func BenchmarkAppend(b *testing.B) {
	_, key := newKey(b)
	l := mustOpen(b, filepath.Join(b.TempDir(), "audit.jsonl"), "site-1", key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel is many writers sharing fsyncs (group commit).
func BenchmarkAppendParallel(b *testing.B) {
	_, key := newKey(b)
	l := mustOpen(b, filepath.Join(b.TempDir(), "audit.jsonl"), "site-1", key)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(benchEvent); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerify checks a 10,000-record log; ns/op is per record.
func BenchmarkVerify(b *testing.B) {
	pub, key := newKey(b)
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	l := mustOpen(b, path, "site-1", key)
	const n = 10000
	for range n {
		if _, err := l.write(benchEvent); err != nil { // no fsync: only the content matters here
			b.Fatal(err)
		}
	}
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := Verify(bytes.NewReader(data), pub); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
