package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestNonceIsClaimedOnce(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	nonce := "00112233445566778899aabbccddeeff"
	if err := s.ClaimNonce(ctx, nonce, "job-aaaaaaaaaaaa", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	err := s.ClaimNonce(ctx, nonce, "job-bbbbbbbbbbbb", time.Now().Add(time.Minute))
	if !errors.Is(err, ErrNonceUsed) || !strings.Contains(err.Error(), "job-aaaaaaaaaaaa") {
		t.Fatalf("second claim: %v, want ErrNonceUsed naming the first job", err)
	}
}

// TestSweepDropsOldAndExcessCheckpoints: past the retention, and past a
// submitter's newest CheckpointsPerSubmitter ended jobs, final models are
// dropped (and audited); running jobs, other submitters and newer jobs keep
// theirs.
func TestSweepDropsOldAndExcessCheckpoints(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(nil)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := auditor.Open(auditPath, "server", key, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	now := time.Now()
	c := &Coordinator{cfg: Config{Store: s, Audit: audit, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
		Limits: Limits{CheckpointsPerSubmitter: 2, CheckpointRetention: 24 * time.Hour}.withDefaults()}, workflows: map[string]*actor.PID{"job-000000000007": actor.NewPID("nonhost", "job-000000000007")}}
	jobs := []struct {
		id, submitter string
		ended         time.Duration // ago; 0: still running
		keep          bool
	}{
		{"job-000000000001", "mallory", time.Hour, true},
		{"job-000000000002", "mallory", 2 * time.Hour, true},
		{"job-000000000003", "mallory", 3 * time.Hour, false}, // her third newest
		{"job-000000000004", "mallory", 4 * time.Hour, false},
		{"job-000000000005", "alice", 48 * time.Hour, false}, // past the retention
		{"job-000000000006", "alice", time.Hour, true},
		{"job-000000000007", "mallory", 0, true}, // running
	}
	for _, j := range jobs {
		info := &hearthv1.JobInfo{Id: j.id, Submitter: j.submitter, CompletedRounds: 3, Status: hearthv1.JobStatus_JOB_STATUS_FINISHED}
		if j.ended > 0 {
			info.FinishedUnixNano = now.Add(-j.ended).UnixNano()
		} else {
			info.Status = hearthv1.JobStatus_JOB_STATUS_RUNNING
		}
		if err := s.Put(ctx, &hearthv1.JobRecord{Info: info}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutModel(ctx, j.id, 3, &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{1}, Data: make([]byte, 4)}}}); err != nil {
			t.Fatal(err)
		}
	}
	c.sweepCheckpoints()
	for _, j := range jobs {
		rec, err := s.Get(ctx, j.id)
		if err != nil {
			t.Fatal(err)
		}
		_, merr := s.Model(ctx, j.id, 3)
		if kept := merr == nil; kept != j.keep || rec.Info.ModelDropped == j.keep {
			t.Errorf("%s (%s, ended %v ago): model kept %v, marked dropped %v; want kept %v", j.id, j.submitter, j.ended, kept, rec.Info.ModelDropped, j.keep)
		}
	}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := auditor.Verify(f, pub)
	if err != nil {
		t.Fatal(err)
	}
	dropped := map[string]string{}
	for _, r := range recs {
		if r.Action == "checkpoint.dropped" {
			dropped[r.JobID] = r.Detail["reason"]
		}
	}
	if len(dropped) != 3 || !strings.Contains(dropped["job-000000000005"], "retention") || !strings.Contains(dropped["job-000000000003"], "newest 2") {
		t.Fatalf("audited drops: %v", dropped)
	}
}
