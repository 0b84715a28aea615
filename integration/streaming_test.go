package integration

import (
	"strings"
	"testing"
	"time"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestStreamedModelTrains runs a job whose model (an MLP of 1.6 MB, over the
// 1 MiB an envelope carries) travels as chunked streams both ways and is
// aggregated chunk by chunk, and checks that it learns: the sites' own
// validation of each round's global model must rise well above chance.
func TestStreamedModelTrains(t *testing.T) {
	lp := startLearning(t, 3)
	id := lp.submit(t, jobSpec{rounds: 4, minSites: 3, timeout: "60s",
		trainer: "{kind: mlp, hidden: [2048, 128], learning_rate: 0.05, epochs: 1, batch_size: 32, seed: 1}"}.manifest())
	info := lp.waitEnd(t, id, 120*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 4 {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	if !strings.Contains(info.Reason, "streamed") {
		t.Logf("reason: %q", info.Reason)
	}
	last := info.History[len(info.History)-1]
	if acc := last.GetValidation().GetAccuracy(); acc < 0.8 {
		t.Fatalf("validation accuracy of the round-%d global model %.3f; the streamed model did not learn", last.Round, acc)
	}
	if want := int64(2 * 3 * 4 * (64*2048 + 2048 + 2048*128 + 128 + 128*10 + 10)); last.BytesMoved != want {
		t.Fatalf("round moved %d bytes, want %d (the model down and up for 3 sites)", last.BytesMoved, want)
	}
	for _, r := range info.History {
		t.Logf("round %d: %d sites, val acc %.3f, %.0f ms, checkpoint %.0f ms", r.Round, len(r.Answered), r.GetValidation().GetAccuracy(),
			float64(r.DurationMicros)/1000, float64(r.CheckpointMicros)/1000)
	}
}
