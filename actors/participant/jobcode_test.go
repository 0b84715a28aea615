package participant

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/plugins"
	codetrainer "github.com/hearthfl/hearth/plugins/trainer"
)

// TestSiteBoundsItsJobTrainer: a job's own trainer (the real test trainer
// plugin, which claims 10 samples trained and 5 evaluated) is held to what
// the site committed when it joined: a claim of more samples than the
// site has is refused, not passed on; within them its round is audited
// with its figures; and a trainer that crashes fails the round: the
// server hears the kind of failure, the site's audit log keeps the
// plugin's own reason.
func TestSiteBoundsItsJobTrainer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hearth-trainer-test")
	build := exec.Command("go", "build", "-o", bin, "github.com/hearthfl/hearth/plugins/trainer/internal/testtrainer/cmd/hearth-trainer-test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, mode string) *codetrainer.Client {
		c, err := codetrainer.NewClient(codetrainer.ClientConfig{Pin: plugins.Pin{Path: bin, SHA256: sha256.Sum256(raw)},
			Setup: codetrainer.Setup{Args: []byte(`{"mode": "` + mode + `"}`), DataDir: dir}, Timeout: 10 * time.Second,
			StageDir: t.TempDir(), ShmDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rowsOf := func(n int) *dataset.Set {
		return &dataset.Set{X: make([]float32, n), Y: make([]int, n), Features: 1, Classes: 2}
	}
	rec := &records{}
	p := &Participant{cfg: Config{Audit: rec}}
	code := start(t, "ok")
	global, err := code.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	newJob := func(c CodeTrainer, train, val int) *joined {
		j := &joined{id: "job-1", manifest: &job.Manifest{Rounds: 3}, code: c, train: rowsOf(train), val: rowsOf(val), test: rowsOf(val)}
		j.ctx, j.cancel = context.WithCancel(context.Background())
		t.Cleanup(j.cancel)
		return j
	}

	t.Run("more samples than the site has", func(t *testing.T) {
		j := newJob(code, 4, 3)
		if _, _, _, err := p.trainLocally(j, 1, trainer.Spec{}, global); err == nil || !strings.Contains(err.Error(), "reports 10 samples trained, more than the 4") {
			t.Fatalf("trainLocally = %v", err)
		}
		if _, err := p.evaluateOn(j, global, codetrainer.Validation); err == nil || !strings.Contains(err.Error(), "reports 5 validation samples, more than the 3") {
			t.Fatalf("evaluateOn = %v", err)
		}
		if ev := rec.of("trainer.round"); len(ev) != 0 {
			t.Fatalf("a refused round audited as trained: %v", ev)
		}
	})
	t.Run("within the site's commitment", func(t *testing.T) {
		j := newJob(code, 100, 50)
		update, r, _, err := p.trainLocally(j, 2, trainer.Spec{}, global)
		if err != nil || r.Samples != 10 || update.Tensors[0].Data[0] != global.Tensors[0].Data[0]+1 {
			t.Fatalf("trainLocally = %v, %+v, %v", update, r, err)
		}
		mt, err := p.evaluateOn(j, global, codetrainer.Test)
		if err != nil || mt.Samples != 5 || mt.Accuracy != 0.8 {
			t.Fatalf("evaluateOn = %+v, %v", mt, err)
		}
		ev := rec.of("trainer.round")
		if len(ev) != 1 || ev[0].Round != 2 || ev[0].Detail["samples"] != "10" || ev[0].Detail["metric.round"] != "1" {
			t.Fatalf("audited %v, want round 2 with the trainer's figures (its round 1, from 0)", ev)
		}
	})
	t.Run("a trainer that crashes", func(t *testing.T) {
		crash := start(t, "crash")
		if _, err := crash.Prepare(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := p.trainLocally(newJob(crash, 100, 50), 1, trainer.Spec{}, global)
		if err == nil || !strings.Contains(err.Error(), "its trainer exited in train (why: ") {
			t.Fatalf("trainLocally = %v, want the kind of failure and where to find why", err)
		}
		ev := rec.of("trainer.failed")
		if len(ev) != 1 || !strings.Contains(ev[0].Detail["reason"], "exited") || ev[0].Detail["call"] != "train" {
			t.Fatalf("audited %v, want the plugin's own reason kept at the site", ev)
		}
	})
}

// TestCoarse: a job trainer's figures leave the site rounded to 4
// significant digits.
func TestCoarse(t *testing.T) {
	for in, want := range map[float64]float64{0.123456789: 0.1235, 1234567: 1235000, 0.98765: 0.9877, -2.000049: -2, 0: 0} {
		if got := coarse(in); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("coarse(%v) = %v, want %v", in, got, want)
		}
	}
}

// TestAdmissionsOffTheActorAreBounded: at most maxOffActor admissions run
// off the actor at once, one per job; the next is refused with why until
// one ends, and a LeaveJob meanwhile makes its end say the job is no
// longer wanted.
func TestAdmissionsOffTheActorAreBounded(t *testing.T) {
	p := &Participant{admitting: map[string]*admitting{}, offActor: make(chan struct{}, maxOffActor)}
	var dones []func() bool
	for i := range maxOffActor {
		a, done, err := p.admitOffActor(fmt.Sprintf("job-%d", i), time.Minute)
		if err != nil || a.ctx.Err() != nil {
			t.Fatalf("admission %d: %v", i, err)
		}
		dones = append(dones, done)
	}
	if _, _, err := p.admitOffActor("job-0", time.Minute); err == nil || !strings.Contains(err.Error(), "being admitted here already") {
		t.Fatalf("a second admission of one job: %v", err)
	}
	if _, _, err := p.admitOffActor("job-x", time.Minute); err == nil || !strings.Contains(err.Error(), "other jobs are being admitted here") {
		t.Fatalf("one admission more than the bound: %v", err)
	}
	p.admitting["job-1"].leave()
	if dones[1]() {
		t.Fatal("a job left while it was admitted is still wanted")
	}
	if !dones[0]() {
		t.Fatal("a job not left is no longer wanted")
	}
	if _, _, err := p.admitOffActor("job-x", time.Minute); err != nil {
		t.Fatalf("after two ended: %v", err)
	}
}
