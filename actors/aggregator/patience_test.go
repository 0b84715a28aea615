package aggregator

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// A site that trickles its update cannot pace the others: once one is held
// back by the window for longer than the patience, the sites that have not
// delivered the chunk it waits for are left out of the round, and the rest
// go on (internal test: a patience of 100 ms instead of LockstepPatience).
func TestSlowSiteIsLeftOutOfTheLockstep(t *testing.T) {
	n := LockstepWindow + 4
	layout := []model.TensorShape{{Name: "w", Shape: []int{n}}}
	g, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	acc, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := NewRuleSum(acc, g, 4, Rule{Method: Median}, []string{"a", "b", "slow"})
	if err != nil {
		t.Fatal(err)
	}
	defer sum.Close()
	sum.ls.patience = 100 * time.Millisecond
	one := make([]byte, 4)
	binary.LittleEndian.PutUint32(one, math.Float32bits(1))
	a, b, slow := sum.Site("a", 1), sum.Site("b", 1), sum.Site("slow", 1)
	if err := slow.WriteChunk(0, 0, one); err != nil { // then it goes quiet
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for _, s := range []*SiteSink{a, b} {
		go func() {
			for c := range n {
				if err := s.WriteChunk(c, int64(4*c), one); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("an honest site failed: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the honest sites stayed paced by the slow one")
		}
	}
	err = slow.WriteChunk(1, 4, one)
	if err == nil || !strings.Contains(err.Error(), "too slow") {
		t.Fatalf("the slow site's next chunk: %v", err)
	}
	sum.Done("slow", err)
	mean, err := sum.Mean()
	if err != nil || mean.Data[n-1] != 1 {
		t.Fatalf("the round's aggregate: %v, %v", mean.Data, err)
	}
}
