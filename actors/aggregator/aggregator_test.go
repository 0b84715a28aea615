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
