package participant

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/plugins"
	codetrainer "github.com/hearthfl/hearth/plugins/trainer"
	"github.com/hearthfl/hearth/policies/components"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// startedTrainers is a site's StartCode over the real test trainer
// plugin, counting the trainers it started and those closed; hold, when
// set, keeps each start waiting until it is closed.
type startedTrainers struct {
	bin     string
	sum     [32]byte
	mu      sync.Mutex
	started int
	closed  int
	hold    chan struct{}
}

type countedTrainer struct {
	*codetrainer.Client
	s *startedTrainers
}

func (c *countedTrainer) Close() error {
	c.s.mu.Lock()
	c.s.closed++
	c.s.mu.Unlock()
	return c.Client.Close()
}

func (s *startedTrainers) start(ctx context.Context, c JobCode) (CodeTrainer, error) {
	client, err := codetrainer.NewClient(codetrainer.ClientConfig{Pin: plugins.Pin{Path: s.bin, SHA256: s.sum},
		Setup: codetrainer.Setup{Args: []byte(`{"mode": "ok"}`), DataDir: c.DataDir}, Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := client.Start(ctx); err != nil {
		client.Close()
		return nil, err
	}
	s.mu.Lock()
	s.started++
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return &countedTrainer{Client: client, s: s}, nil
}

func (s *startedTrainers) counts() (started, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started, s.closed
}

// TestSiteRunsAJobsTrainerForTheJobOnly: through the participant actor,
// with the real test trainer plugin as the job's own trainer: a pre-flight
// starts none; joining starts one and answers only its layout's digest,
// whose layout the server may then ask for (and nothing else); a re-join
// (a resumed job) closes the old trainer; leaving closes the trainer, and
// a LeaveJob while a trainer is starting closes it once started and
// refuses the join.
func TestSiteRunsAJobsTrainerForTheJobOnly(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hearth-trainer-test")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hearthfl/hearth/plugins/trainer/internal/testtrainer/cmd/hearth-trainer-test").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	trainers := &startedTrainers{bin: bin, sum: sha256.Sum256(raw)}
	allow, err := components.Parse([]byte(`{"trainers": ["pytorch"], "workflows": ["fedavg"], "filters": [], "scripts": ["any"]}`))
	if err != nil {
		t.Fatal(err)
	}
	site := startTestSite(t, Config{Components: allow, StartCode: trainers.start})
	system, pid, admin := site.system, site.pid, site.admin

	script := []byte("def build(f, c, a): ...\n")
	sum := sha256.Sum256(script)
	manifest := []byte(`name: j
workflow: fedavg
rounds: 2
sites: ["@all"]
min_sites: 1
round_timeout: 30s
dataset: optdigits
trainer: {kind: pytorch, script: train.py, script_sha256: "` + hex.EncodeToString(sum[:]) + `", epochs: 1, batch_size: 32, seed: 1}
evaluation: {validation: true, test: true}
`)
	code := []*hearthv1.JobFile{{Name: "train.py", Data: script}}
	signed := func(preflight bool) *hearthv1.SignedJob {
		sign := job.Sign
		if preflight {
			sign = job.SignPreflight
		}
		sj, err := sign(manifest, admin.Cert, admin.Key)
		if err != nil {
			t.Fatal(err)
		}
		sj.Code = code
		return sj
	}
	ask := func(jobID string, msg any) any { t.Helper(); return site.ask(t, jobID, msg) }
	tell := func(jobID string, msg any) { system.Root.Send(pid, bridge.Delivered(fromServer(jobID), msg, nil)) }

	// A pre-flight decides, and starts nothing.
	pre, ok := ask("", &hearthv1.Preflight{Job: signed(true)}).(*hearthv1.SignedPreflightAnswer)
	if !ok {
		t.Fatalf("pre-flight answered %T", pre)
	}
	var answer hearthv1.PreflightAnswer
	if err := proto.Unmarshal(pre.Answer, &answer); err != nil || !answer.Accepted {
		t.Fatalf("pre-flight answer %v, %v; want it accepted", &answer, err)
	}
	if started, _ := trainers.counts(); started != 0 {
		t.Fatalf("a pre-flight started %d trainers", started)
	}

	// Joining starts one; the answer holds its layout's digest, no values.
	const jobID = "job-0000000000a1"
	sj := signed(false)
	joined, ok := ask(jobID, &hearthv1.JoinJob{JobId: jobID, Job: sj}).(*hearthv1.JobJoined)
	if !ok {
		t.Fatal("join refused")
	}
	layout := model.LayoutOf(&model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{2, 3}}, {Name: "b", Shape: []int{3}}}}) // the test trainer's
	want := job.LayoutDigest(layout)
	if !bytes.Equal(joined.LayoutSha256, want[:]) {
		t.Fatalf("layout digest %x, want the test trainer's %x", joined.LayoutSha256, want)
	}
	got, ok := ask(jobID, &hearthv1.GetLayout{JobId: jobID, LayoutSha256: want[:]}).(*hearthv1.ModelLayout)
	if !ok || len(got.Tensors) != 2 || got.Tensors[0].Name != "w" {
		t.Fatalf("GetLayout answered %v", got)
	}
	if f, ok := ask(jobID, &hearthv1.GetLayout{JobId: jobID, LayoutSha256: make([]byte, 32)}).(*hearthv1.Failure); !ok || !strings.Contains(f.Message, "another layout") {
		t.Fatalf("GetLayout of another digest answered %v", f)
	}

	// A re-join (the server resumed the job) replaces the trainer.
	if _, ok := ask(jobID, &hearthv1.JoinJob{JobId: jobID, Job: sj}).(*hearthv1.JobJoined); !ok {
		t.Fatal("re-join refused")
	}
	if started, closed := trainers.counts(); started != 2 || closed != 1 {
		t.Fatalf("after a re-join: %d started, %d closed; want 2 and 1", started, closed)
	}
	// Leaving ends it.
	tell(jobID, &hearthv1.LeaveJob{JobId: jobID, Status: hearthv1.JobStatus_JOB_STATUS_FINISHED})
	waitFor(t, func() bool { _, closed := trainers.counts(); return closed == 2 }, "the trainer closed after LeaveJob")

	// A LeaveJob while the trainer starts: closed once started, the join refused.
	const other = "job-0000000000a2"
	trainers.mu.Lock()
	trainers.hold = make(chan struct{})
	trainers.mu.Unlock()
	f := actor.NewFuture(system, 30*time.Second)
	system.Root.Send(pid, bridge.Delivered(fromServer(other), &hearthv1.JoinJob{JobId: other, Job: signed(false)}, f.PID()))
	waitFor(t, func() bool { started, _ := trainers.counts(); return started == 3 }, "the third trainer started")
	tell(other, &hearthv1.LeaveJob{JobId: other, Status: hearthv1.JobStatus_JOB_STATUS_ABORTED})
	time.Sleep(50 * time.Millisecond) // the LeaveJob reaches the actor before the start ends
	close(trainers.hold)
	res, err := f.Result()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := res.(*hearthv1.Failure); !ok || !strings.Contains(r.Message, "the server left the job while its trainer started") {
		t.Fatalf("a join left meanwhile answered %v", res)
	}
	waitFor(t, func() bool { _, closed := trainers.counts(); return closed == 3 }, "the trainer of a job left while it started closed")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
