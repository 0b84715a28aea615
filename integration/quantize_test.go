package integration

import (
	"fmt"
	"math"
	"testing"
	"time"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestQuantizedStreams: an MLP of 1.3 MB (streamed both ways) trained with
// its models crossing the wire as float32, float16 and blockwise 8-bit:
// the quantized jobs move a half and about a quarter of the bytes, and
// learn within a point of float32 (the aggregator sums the decoded values
// in full precision).
func TestQuantizedStreams(t *testing.T) {
	lp := startLearning(t, 3)
	run := func(codec string) *hearthv1.JobInfo {
		t.Helper()
		info := lp.waitEnd(t, lp.submit(t, fmt.Sprintf(`name: quantized-%s
workflow: fedavg
rounds: 5
sites: ["@all"]
min_sites: 3
round_timeout: 60s
dataset: optdigits
trainer: {kind: mlp, hidden: [1024, 256], learning_rate: 0.003, epochs: 1, batch_size: 32, seed: 1}
evaluation: {validation: true, test: true}
quantize: %s
`, codec, codec)), 180*time.Second)
		if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 5 {
			t.Fatalf("%s: job %s after %d rounds: %s", codec, info.Status, info.CompletedRounds, info.Reason)
		}
		return info
	}
	plain := run("float32")
	base := plain.History[1].BytesMoved
	for _, tc := range []struct {
		codec    string
		maxBytes float64 // of float32's
	}{{"float16", 0.51}, {"int8-block64", 0.28}} {
		info := run(tc.codec)
		moved := info.History[1].BytesMoved
		if share := float64(moved) / float64(base); share > tc.maxBytes {
			t.Errorf("%s: a round moved %d bytes, %.3f of float32's %d", tc.codec, moved, share, base)
		}
		diff := info.Test.GetAccuracy() - plain.Test.GetAccuracy()
		if math.Abs(diff) > 0.01 {
			t.Errorf("%s: test accuracy %.4f, float32 %.4f", tc.codec, info.Test.GetAccuracy(), plain.Test.GetAccuracy())
		}
		t.Logf("%s: test accuracy %.2f%% (float32 %.2f%%), %d bytes a round (float32 %d), round %v (float32 %v)", tc.codec,
			100*info.Test.GetAccuracy(), 100*plain.Test.GetAccuracy(), moved, base,
			time.Duration(info.History[1].DurationMicros)*time.Microsecond, time.Duration(plain.History[1].DurationMicros)*time.Microsecond)
	}
}
