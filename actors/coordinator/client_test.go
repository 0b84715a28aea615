package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/bridge"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// scriptedServer answers status requests from a script: a JobInfo, or an
// error where the script has nil.
type scriptedServer struct {
	script []*hearthv1.JobInfo
	calls  int
}

func (s *scriptedServer) Request(_ context.Context, _ string, _ proto.Message) (*bridge.Reply, error) {
	i := min(s.calls, len(s.script)-1)
	s.calls++
	if s.script[i] == nil {
		return nil, errors.New("context deadline exceeded")
	}
	return &bridge.Reply{Msg: s.script[i]}, nil
}

func running(rounds int) *hearthv1.JobInfo {
	info := &hearthv1.JobInfo{Id: "job-1", Status: hearthv1.JobStatus_JOB_STATUS_RUNNING}
	for r := range rounds {
		info.History = append(info.History, &hearthv1.RoundSummary{Round: int64(r + 1)})
	}
	return info
}

func TestFollowRidesOutABusyServer(t *testing.T) {
	done := running(2)
	done.Status = hearthv1.JobStatus_JOB_STATUS_FINISHED
	srv := &scriptedServer{script: []*hearthv1.JobInfo{running(1), nil, nil, nil, done}}
	c := &Client{Bus: srv, Server: "server"}
	var rounds []int64
	info, err := c.Follow(context.Background(), "job-1", time.Millisecond, func(r *hearthv1.RoundSummary) { rounds = append(rounds, r.Round) })
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || len(rounds) != 2 || srv.calls != 5 {
		t.Fatalf("status %v, rounds %v after %d requests", info.Status, rounds, srv.calls)
	}
}

func TestFollowGivesUp(t *testing.T) {
	t.Run("first request failing", func(t *testing.T) {
		c := &Client{Bus: &scriptedServer{script: []*hearthv1.JobInfo{nil}}, Server: "server"}
		if _, err := c.Follow(context.Background(), "job-1", time.Millisecond, nil); err == nil {
			t.Fatal("followed a job the server never answered for")
		}
	})
	t.Run("failing past the patience", func(t *testing.T) {
		c := &Client{Bus: &scriptedServer{script: []*hearthv1.JobInfo{running(1), nil}}, Server: "server", FollowPatience: 50 * time.Millisecond}
		start := time.Now()
		last, err := c.Follow(context.Background(), "job-1", time.Millisecond, nil)
		if err == nil || !strings.Contains(err.Error(), "status failing") || last == nil || len(last.History) != 1 {
			t.Fatalf("Follow: %v, last %v", err, last)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("gave up after %v, before its patience", d)
		}
	})
}
