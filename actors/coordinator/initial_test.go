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

// TestInitialLayoutFromTheSites: a job with its own trainer takes the
// layout digest most joined sites report; a site with another is left out
// with why, and so is one the shape check left out before (its digest
// counts for nothing); a site that sends none, or a digest in a job whose
// trainer is built in, is refused; no majority fails the job. The layout a
// holder answers must have the job's digest, within the inline bound, or
// that holder is refused; round 0 is made from it, with nothing of a
// site's values.
func TestInitialLayoutFromTheSites(t *testing.T) {
	mlp := []model.TensorShape{{Name: "0.weight", Shape: []int{8, 4}}, {Name: "0.bias", Shape: []int{8}}, {Name: "2.weight", Shape: []int{3, 8}}, {Name: "2.bias", Shape: []int{3}}}
	other := []model.TensorShape{{Name: "w", Shape: []int{3}}}
	digest := func(l []model.TensorShape) []byte { d := job.LayoutDigest(l); return d[:] }
	custom := &job.Manifest{Workflow: job.WorkflowFedAvg, Trainer: job.TrainerSpec{Kind: job.KindPyTorch, Seed: 7}}
	newEngine := func(m *job.Manifest) *engine {
		return &engine{cfg: &Config{Audit: recorder{}, Log: slog.New(slog.DiscardHandler)}, manifest: m,
			rec: &hearthv1.JobRecord{Info: &hearthv1.JobInfo{Id: "job-1"}, Joined: map[string]int64{}}}
	}

	e := newEngine(custom)
	for site, l := range map[string][]model.TensorShape{"site-1": other, "site-2": mlp, "site-3": mlp, "site-4": mlp, "site-0": other} {
		if err := e.takeInitial(site, digest(l)); err != nil {
			t.Fatalf("%s: %v", site, err)
		}
		if site != "site-0" { // site-0 was left out by the data shape check
			e.rec.Joined[site] = 10
		}
	}
	if err := e.settleInitial(); err != nil {
		t.Fatal(err)
	}
	if _, in := e.rec.Joined["site-1"]; in || len(e.reasons) != 1 || !strings.Contains(e.reasons[0], "site-1: its trainer's model has another layout than 3 of the 4 joined sites' trainers") {
		t.Fatalf("joined %v, reasons %v; want site-1 left out for its layout", e.rec.Joined, e.reasons)
	}
	if got := e.layoutHolders(); strings.Join(got, ",") != "site-2,site-3,site-4" {
		t.Fatalf("holders %v", got)
	}

	for name, answer := range map[string]*hearthv1.ModelLayout{
		"another layout":  job.LayoutToWire(other),
		"no layout":       {},
		"too large":       job.LayoutToWire([]model.TensorShape{{Name: "w", Shape: []int{job.InlineLimit/4 + 1}}}),
		"a bad dimension": {Tensors: []*hearthv1.TensorLayout{{Name: "w", Shape: []int64{0}}}},
	} {
		if err := e.takeLayout(answer); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	if err := e.takeLayout(&hearthv1.Ping{}); err == nil || !strings.Contains(err.Error(), "not a layout") {
		t.Errorf("a Ping for a layout: %v", err)
	}
	if err := e.takeLayout(job.LayoutToWire(mlp)); err != nil {
		t.Fatal(err)
	}
	m, err := e.initialFromLayout()
	if err != nil {
		t.Fatal(err)
	}
	if err := (&model.Model{Tensors: []model.Tensor{{Name: "0.weight", Shape: []int{8, 4}}, {Name: "0.bias", Shape: []int{8}},
		{Name: "2.weight", Shape: []int{3, 8}}, {Name: "2.bias", Shape: []int{3}}}}).SameLayout(m); err != nil {
		t.Fatalf("round 0's layout: %v", err)
	}
	for _, tn := range m.Tensors { // PyTorch's default: uniform in ±1/√fan_in (4 for the first layer, 8 for the second)
		bound := 1 / math.Sqrt(4)
		if strings.HasPrefix(tn.Name, "2.") {
			bound = 1 / math.Sqrt(8)
		}
		nonzero := false
		for _, v := range tn.Data {
			if math.Abs(float64(v)) >= bound {
				t.Fatalf("%s: %v outside ±%v", tn.Name, v, bound)
			}
			nonzero = nonzero || v != 0
		}
		if !nonzero {
			t.Fatalf("%s: all zero", tn.Name)
		}
	}

	if err := newEngine(custom).takeInitial("site-1", nil); err == nil || !strings.Contains(err.Error(), "needs the site's") {
		t.Errorf("no digest: %v", err)
	}
	if err := newEngine(custom).takeInitial("site-1", []byte{1, 2, 3}); err == nil {
		t.Errorf("a short digest: accepted")
	}
	if err := newEngine(&job.Manifest{Trainer: job.TrainerSpec{Kind: "logreg"}}).takeInitial("site-1", digest(mlp)); err == nil || !strings.Contains(err.Error(), "the server makes that model") {
		t.Errorf("a digest in a built-in trainer's job: %v", err)
	}
	split := newEngine(custom)
	for site, l := range map[string][]model.TensorShape{"site-1": mlp, "site-2": other} {
		if err := split.takeInitial(site, digest(l)); err != nil {
			t.Fatal(err)
		}
		split.rec.Joined[site] = 10
	}
	if err := split.settleInitial(); err == nil || !strings.Contains(err.Error(), "none has a majority: 2 sites, 2 layouts") {
		t.Fatalf("settleInitial of a split = %v", err)
	}
}
