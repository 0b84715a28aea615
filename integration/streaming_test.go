package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"

	"github.com/hearthfl/hearth/integration/cluster"
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
	if info.Reason != "" || info.Test.GetSamples() < 1 || info.Test.GetAccuracy() < 0.8 {
		t.Fatalf("test evaluation of the streamed final model: %v (reason %q)", info.Test, info.Reason)
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

	// The admin downloads the final model as a stream; it classifies the
	// held-out test set as the sites' validation said it would.
	dir := t.TempDir()
	res, err := lp.admin.Download(context.Background(), id, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.ModelStream == nil || res.Model != nil {
		t.Fatalf("a %d-byte model came back inline", proto.Size(res.Model))
	}
	m := readLargeModel(t, dir)
	_, test, err := dataset.Load("optdigits")
	if err != nil {
		t.Fatal(err)
	}
	got, err := trainer.Evaluate(trainer.Spec{Kind: "mlp", Hidden: []int{2048, 128}, LearningRate: 0.05, Epochs: 1, BatchSize: 32, Seed: 1}, m, test)
	if err != nil {
		t.Fatal(err)
	}
	if got.Accuracy < 0.8 {
		t.Fatalf("the downloaded model classifies %.3f of the test set", got.Accuracy)
	}
	t.Logf("downloaded model: test accuracy %.3f on %d samples; the sites' test evaluation: %.3f on %d", got.Accuracy, got.Samples,
		info.Test.Accuracy, info.Test.Samples)
}

// readLargeModel reads what Download writes for a large model.
func readLargeModel(t *testing.T, dir string) *model.Model {
	t.Helper()
	var layout struct {
		Dtype   string `json:"dtype"`
		Order   string `json:"byte_order"`
		Tensors []struct {
			Name  string `json:"name"`
			Shape []int  `json:"shape"`
		} `json:"tensors"`
	}
	text, err := os.ReadFile(filepath.Join(dir, coordinator.LargeLayoutFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(text, &layout); err != nil || layout.Dtype != "float32" || layout.Order != "little" {
		t.Fatalf("layout file %s: %v", text, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, coordinator.LargeModelFile))
	if err != nil {
		t.Fatal(err)
	}
	m := &model.Model{}
	off := 0
	for _, tl := range layout.Tensors {
		n, err := model.ShapeSize(tl.Shape)
		if err != nil || 4*(off+n) > len(data) {
			t.Fatalf("tensor %s %v does not fit %d bytes: %v", tl.Name, tl.Shape, len(data), err)
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*(off+i):]))
		}
		m.Tensors = append(m.Tensors, model.Tensor{Name: tl.Name, Shape: tl.Shape, Data: vals})
		off += n
	}
	if 4*off != len(data) {
		t.Fatalf("layout covers %d of %d bytes", 4*off, len(data))
	}
	return m
}

// TestStreamedJobResumesAfterServerRestart: the server is killed in the
// middle of a job whose model travels as streams; restarted, it reloads the
// last raw checkpoint from JetStream and finishes the job.
func TestStreamedJobResumesAfterServerRestart(t *testing.T) {
	lp := startLearning(t, 2)
	id := lp.submit(t, jobSpec{rounds: 6, minSites: 2, timeout: "60s",
		trainer: "{kind: mlp, hidden: [2048, 128], learning_rate: 0.05, epochs: 1, batch_size: 32, seed: 1}"}.manifest())
	before := lp.waitRound(t, id, 2)
	lp.server.Kill()
	restarted := lp.start(t, "server-restarted", "server", "-k", lp.Kit("server"), "--listen", "127.0.0.1")
	lp.await(t, restarted)
	resumed := awaitLog(t, restarted, "resume", func(r cluster.Record) bool { return r.Msg() == "resuming job" && r.Str("job") == id })
	if from := int64(resumed["completed_rounds"].(float64)); from < before.CompletedRounds {
		t.Fatalf("resumed from round %d; round %d had completed", from, before.CompletedRounds)
	}
	info := lp.waitEnd(t, id, 120*time.Second)
	if over := restarted.Records(func(r cluster.Record) bool { return strings.Contains(r.Msg(), "starting the job over") }); len(over) > 0 {
		t.Fatalf("the restarted server started the job over: %v", over)
	}
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 6 || len(info.History) != 6 {
		t.Fatalf("job %s, %d rounds, %d in history: %s", info.Status, info.CompletedRounds, len(info.History), info.Reason)
	}
	if acc := info.History[5].GetValidation().GetAccuracy(); acc < 0.85 {
		t.Fatalf("round 6 started from a model at %.3f validation accuracy: the resumed model was not the checkpoint", acc)
	}
	t.Logf("crashed after round %d; finished with round-6 validation accuracy %.3f", before.CompletedRounds, info.History[5].GetValidation().GetAccuracy())
}

// TestStreamedRoundsWithAHungSite: with every site keeping pace, a round
// of a streamed model folds the updates into the global model's own buffer
// (one model in memory); with a site hung (SIGSTOP) its download never
// ends, so after the grace the other updates fold into a buffer of their
// own, the hung site is left out at the round timeout, and the model goes
// on learning. The job runs unbounded FedAvg, whose updates fold as they
// arrive (the default rule combines them in lockstep once every update is
// in, so it never folds beside a download: TestStreamedModelTrains).
func TestStreamedRoundsWithAHungSite(t *testing.T) {
	lp := startLearning(t, 3)
	id := lp.submit(t, jobSpec{rounds: 3, minSites: 2, timeout: "7s",
		trainer: "{kind: mlp, hidden: [2048, 128], learning_rate: 0.05, epochs: 1, batch_size: 32, seed: 1}"}.manifest()+
		"aggregation: {unbounded: true}\n")
	lp.waitRound(t, id, 1)
	hung := lp.sites["site-3"]
	if err := hung.Pause(); err != nil {
		t.Fatal(err)
	}
	defer hung.Resume()
	info := lp.waitEnd(t, id, 120*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 3 {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	last := info.History[len(info.History)-1]
	if !slices.Equal(last.Missing, []string{"site-3"}) || len(last.Answered) != 2 {
		t.Fatalf("last round answered %v, missing %v", last.Answered, last.Missing)
	}
	if acc := last.GetValidation().GetAccuracy(); acc < 0.8 {
		t.Fatalf("validation accuracy %.3f after a round summed apart from the global model", acc)
	}
	inPlace := map[int64]bool{}
	for _, r := range lp.server.Records(func(r cluster.Record) bool { return r.Msg() == "round sum ready" && r.Str("job") == id }) {
		inPlace[int64(r["round"].(float64))] = r["in_place"].(bool)
	}
	if p, ok := inPlace[1]; !ok || !p {
		t.Fatalf("round 1, every site keeping pace, summed in place: %v (logged %v)", p, inPlace)
	}
	if p, ok := inPlace[3]; !ok || p {
		t.Fatalf("round 3, site-3 hung mid-broadcast, summed in place: %v (logged %v)", p, inPlace)
	}
}
