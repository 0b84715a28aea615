package coordinator

import (
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestInitialModelFromTheSites: a job with its own trainer starts from
// its sites' initial models. The layout most joined sites report is the
// job's and round 0 is the first such site's model, by name; a site whose
// layout differs is left out with why; a site that sends none, one that is
// not a model, or one in a job whose trainer is built in, is refused; no
// majority fails the job with every site's layout.
func TestInitialModelFromTheSites(t *testing.T) {
	layoutA := func(v float32) *hearthv1.Model {
		return job.ToWire(&model.Model{Tensors: []model.Tensor{{Name: "0.weight", Shape: []int{2, 2}, Data: []float32{v, v, v, v}}, {Name: "0.bias", Shape: []int{2}, Data: []float32{0, 0}}}})
	}
	layoutB := job.ToWire(&model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{3}, Data: []float32{1, 2, 3}}}})
	custom := &job.Manifest{Workflow: job.WorkflowFedAvg, Trainer: job.TrainerSpec{Kind: job.KindPyTorch}}
	newEngine := func(m *job.Manifest) *engine {
		return &engine{cfg: &Config{Audit: recorder{}, Log: slog.New(slog.DiscardHandler)}, manifest: m,
			rec: &hearthv1.JobRecord{Info: &hearthv1.JobInfo{Id: "job-1"}, Joined: map[string]int64{}}}
	}
	join := func(e *engine, site string, w *hearthv1.Model) error {
		err := e.takeInitial(site, w)
		if err == nil {
			e.rec.Joined[site] = 10
		}
		return err
	}

	e := newEngine(custom)
	for _, s := range []struct {
		site string
		w    *hearthv1.Model
	}{{"site-3", layoutA(3)}, {"site-2", layoutA(2)}, {"site-1", layoutB}, {"site-4", layoutA(4)}} {
		if err := join(e, s.site, s.w); err != nil {
			t.Fatalf("%s: %v", s.site, err)
		}
	}
	if err := e.settleInitial(); err != nil {
		t.Fatal(err)
	}
	if got := e.initials.chosen; got == nil || got.Tensors[0].Data[0] != 2 {
		t.Fatalf("round 0 is %v, want site-2's model (the first by name with the majority's layout)", got)
	}
	if _, in := e.rec.Joined["site-1"]; in || len(e.reasons) != 1 || !strings.Contains(e.reasons[0], "site-1: its trainer's model is 1 tensors, 3 parameters; the job's (site-2's) is 2 tensors, 6 parameters") {
		t.Fatalf("joined %v, reasons %v; want site-1 left out for its layout", e.rec.Joined, e.reasons)
	}

	for name, w := range map[string]*hearthv1.Model{
		"none":                 nil,
		"not a model":          {Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{2}, Data: []byte{1, 2, 3}}}},
		"a value not finite":   job.ToWire(&model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{1}, Data: []float32{float32(math.Inf(1))}}}}),
		"larger than one send": {Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{job.InlineLimit/4 + 1}, Data: make([]byte, job.InlineLimit+4)}}},
	} {
		if err := newEngine(custom).takeInitial("site-1", w); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := newEngine(&job.Manifest{Trainer: job.TrainerSpec{Kind: "logreg"}}).takeInitial("site-1", layoutB); err == nil || !strings.Contains(err.Error(), "the server makes that one") {
		t.Errorf("an initial model in a built-in trainer's job: %v", err)
	}

	split := newEngine(custom)
	for site, w := range map[string]*hearthv1.Model{"site-1": layoutA(1), "site-2": layoutB} {
		if err := join(split, site, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := split.settleInitial(); err == nil || !strings.Contains(err.Error(), "none has a majority") || !strings.Contains(err.Error(), "site-2: 1 tensors, 3 parameters") {
		t.Fatalf("settleInitial of a split = %v", err)
	}
}
