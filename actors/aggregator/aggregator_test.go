package aggregator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
)

func weights(v ...float32) *model.Model {
	return &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{len(v)}, Data: v}}}
}

func closeRound(t *testing.T, system *actor.ActorSystem, pid *actor.PID, round int64) *aggregator.Closed {
	t.Helper()
	res, err := system.Root.RequestFuture(pid, &aggregator.Close{Round: round}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*aggregator.Closed)
}

func TestFedAvgWeightsBySamples(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	pid := system.Root.Spawn(aggregator.Props())
	system.Root.Send(pid, &aggregator.Begin{Round: 1, Layout: weights(0, 0)})
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "a", Update: weights(1, 10), Weight: 300})
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "b", Update: weights(3, 20), Weight: 100})
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "wrong-layout", Update: weights(1, 2, 3), Weight: 100})
	system.Root.Send(pid, &aggregator.Fold{Round: 0, Site: "stale", Update: weights(9, 9), Weight: 100})
	c := closeRound(t, system, pid, 1)
	if c.Err != nil {
		t.Fatal(c.Err)
	}
	got := c.Mean.Tensors[0].Data
	if got[0] != 1.5 || got[1] != 12.5 || c.TotalWeight != 400 || len(c.Sites) != 2 {
		t.Fatalf("mean %v over %v (weight %v), want [1.5 12.5] over a, b (400)", got, c.Sites, c.TotalWeight)
	}
	if len(c.Refused) != 2 || c.Refused["wrong-layout"] == "" || !strings.Contains(c.Refused["stale"], "round 0") {
		t.Fatalf("refused %v", c.Refused)
	}
	// A round with nothing folded, and a close of the wrong round, fail.
	system.Root.Send(pid, &aggregator.Begin{Round: 2, Layout: weights(0, 0)})
	if c := closeRound(t, system, pid, 2); c.Err == nil {
		t.Fatal("an empty round produced a model")
	}
	if c := closeRound(t, system, pid, 7); c.Err == nil {
		t.Fatal("closing a round that was not begun produced a model")
	}
}

// TestFedAvgLeavesExcludedTensorsToTheOthers: a tensor a site's filters
// excluded (FLARE's exclude_vars; the site sends the global model's values
// there) is averaged over the other sites only; the others are averaged as
// ever; an excluded name the model does not have is refused.
func TestFedAvgLeavesExcludedTensorsToTheOthers(t *testing.T) {
	two := func(a, b float32) *model.Model {
		return &model.Model{Tensors: []model.Tensor{{Name: "a", Shape: []int{2}, Data: []float32{a, a}}, {Name: "b", Shape: []int{1}, Data: []float32{b}}}}
	}
	system := actor.NewActorSystem()
	defer system.Shutdown()
	pid := system.Root.Spawn(aggregator.Props())
	rule := aggregator.Rule{Unbounded: true}
	system.Root.Send(pid, &aggregator.Begin{Round: 1, Layout: two(0, 0), Rule: rule})
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "s1", Update: two(1, 10), Weight: 1})
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "s2", Update: two(0, 20), Weight: 3, Excluded: []string{"a"}}) // the global's 0s for a
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "s3", Update: two(0, 0), Weight: 1, Excluded: []string{"b"}})
	system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: "s4", Update: two(5, 5), Weight: 1, Excluded: []string{"c"}})
	c := closeRound(t, system, pid, 1)
	if c.Err != nil {
		t.Fatal(c.Err)
	}
	// a: s1 and s3 only, weights 1 and 1: 0.5; b: s1 and s2, weights 1 and 3: 17.5.
	if a, b := c.Mean.Tensors[0].Data, c.Mean.Tensors[1].Data; a[0] != 0.5 || a[1] != 0.5 || b[0] != 17.5 {
		t.Fatalf("mean %v %v, want a = 0.5 (s2 left out), b = 17.5 (s3 left out)", a, b)
	}
	if !strings.Contains(c.Refused["s4"], `"c"`) {
		t.Fatalf("an unknown excluded tensor: refused %v", c.Refused)
	}
}
