package coordinator

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/jetstore/jetstoretest"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// recorder is an audit log that keeps nothing.
type recorder struct{}

func (recorder) Append(auditor.Event) (auditor.Record, error) {
	return auditor.Record{ID: "event"}, nil
}

// stallingUpdate is a site's update that reads normally once (the offer
// hashes it) and then, when the server pulls it, blocks until released: a
// site whose upload hangs mid-stream.
type stallingUpdate struct {
	size     int64
	mu       sync.Mutex
	reads    map[int64]int
	pulling  chan struct{} // closed at the first read of the pull
	released chan struct{}
}

func (u *stallingUpdate) ReadAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	u.reads[off]++
	again := u.reads[off] > 1
	if again && u.reads[off] == 2 && off == 0 {
		close(u.pulling)
	}
	u.mu.Unlock()
	if again {
		<-u.released
	}
	n := int(min(int64(len(p)), u.size-off))
	clear(p[:n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// watchedStreams are the server's streams, with the update pulls in
// flight counted.
type watchedStreams struct {
	Streams
	pulls sync.WaitGroup
}

func (s *watchedStreams) Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error) {
	s.pulls.Add(1)
	defer s.pulls.Done()
	return s.Streams.Receive(ctx, sender, man, sink)
}

// siteBridge stands in for the bridge and one site behind it: the site
// joins, pulls the global model it is sent, and offers its update (update)
// as a stream from its own stream manager.
type siteBridge struct {
	site    string
	streams *stream.Manager
	update  *stallingUpdate
	left    chan *hearthv1.LeaveJob
}

func (b *siteBridge) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *bridge.Ask:
		from := pki.Identity{Name: b.site, Org: "org-1", Kind: pki.KindSite}
		reply, system := ctx.Sender(), ctx.ActorSystem()
		switch task := m.Msg.(type) {
		case *hearthv1.JoinJob:
			ctx.Respond(&bridge.Reply{From: from, Msg: &hearthv1.JobJoined{JobId: task.JobId, TrainSamples: 100, Features: 8, Classes: 2}})
		case *hearthv1.TrainTask:
			go func() {
				bg := context.Background()
				discard := stream.SinkFunc(func(int, int64, []byte) error { return nil })
				if _, err := b.streams.Receive(bg, "server", task.GlobalStream, discard); err != nil {
					system.Root.Send(reply, &bridge.Failed{To: b.site, Err: err})
					return
				}
				out, err := b.streams.Offer(bg, "server", b.update, b.update.size)
				if err != nil {
					system.Root.Send(reply, &bridge.Failed{To: b.site, Err: err})
					return
				}
				system.Root.Send(reply, &bridge.Reply{From: from, Msg: &hearthv1.TrainResult{JobId: task.JobId, Round: task.Round,
					Samples: 100, UpdateStream: out.Manifest}})
			}()
		}
	case *bridge.Send:
		if l, ok := m.Msg.(*hearthv1.LeaveJob); ok {
			b.left <- l
		}
	}
}

// TestAbortEndsAnUpdatePullAtOnce: a site's update stream hangs while the
// server pulls it; an abort of the job ends the pull within about a second
// (the job's context is cancelled), not at the 30 s stall timeout, and the
// site is told the job ended, once: the ended pull's report, arriving
// while the workflow stops, does not end the job again.
func TestAbortEndsAnUpdatePullAtOnce(t *testing.T) {
	hub := jetstoretest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := OpenStore(ctx, hub.JetStream)
	if err != nil {
		t.Fatal(err)
	}
	managers := map[string]*stream.Manager{}
	for _, name := range []string{"server", "site-1"} {
		nc, err := hub.Connect()
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.NewManager(stream.Config{Conn: nc, Self: name, StallTimeout: stream.DefaultStallTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); nc.Close() })
		managers[name] = m
	}
	const params = 1 << 19 // 2 MiB: streamed, not inline
	manifest, err := job.ParseManifest([]byte(`name: stalled
workflow: fedavg
rounds: 2
sites: ["site-1"]
min_sites: 1
round_timeout: 60s
dataset: optdigits
trainer: {kind: noop, params: 524288}
`))
	if err != nil {
		t.Fatal(err)
	}
	update := &stallingUpdate{size: 4 * params, reads: map[int64]int{}, pulling: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(func() { close(update.released) })

	discard := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard }))
	site := &siteBridge{site: "site-1", streams: managers["site-1"], update: update, left: make(chan *hearthv1.LeaveJob, 4)}
	bridgePID := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return site }))
	server := &watchedStreams{Streams: managers["server"]}
	cfg := &Config{Store: store, Bridge: bridgePID, Streams: server, Audit: recorder{},
		Log: discard, Now: time.Now}
	rec := &hearthv1.JobRecord{Info: &hearthv1.JobInfo{Id: "job-000000000001", Name: "stalled", Rounds: 2}}
	w := newFedAvg(cfg, rec, manifest, []string{"site-1"}, nil, false)
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return w }))

	select {
	case <-update.pulling:
	case <-ctx.Done():
		t.Fatal("the server never pulled the site's update")
	}
	abortedAt := time.Now()
	res, err := system.Root.RequestFuture(pid, &abortJob{reason: "aborted by the test"}, 10*time.Second).Result()
	if info, ok := res.(*hearthv1.JobInfo); err != nil || !ok || info.Status != hearthv1.JobStatus_JOB_STATUS_ABORTED {
		t.Fatalf("abort answered %v, %v; want the aborted job's info", res, err)
	}
	if !errors.Is(w.jobCtx.Err(), context.Canceled) {
		t.Fatalf("the job's context after the abort: %v, want it cancelled", w.jobCtx.Err())
	}
	pulls := make(chan struct{})
	go func() { server.pulls.Wait(); close(pulls) }()
	select {
	case <-pulls:
	case <-time.After(2 * time.Second):
		t.Fatalf("the update pull still runs %v after the abort (stall timeout %v)", time.Since(abortedAt), stream.DefaultStallTimeout)
	}
	select {
	case l := <-site.left:
		if l.Status != hearthv1.JobStatus_JOB_STATUS_ABORTED {
			t.Fatalf("the site was told the job ended %v", l.Status)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the site was not told the job ended")
	}
	t.Logf("update pull ended %v after the abort", time.Since(abortedAt).Round(time.Millisecond))
	// The pull reported its end before it counted as ended: a request now
	// is answered after that report was handled (or not at all, once the
	// workflow has stopped).
	res, err = system.Root.RequestFuture(pid, &abortJob{reason: "aborted again"}, 5*time.Second).Result()
	if info, ok := res.(*hearthv1.JobInfo); ok && (info.Status != hearthv1.JobStatus_JOB_STATUS_ABORTED || info.Reason != "aborted by the test") {
		t.Fatalf("after the pull's report the job is %v (%q), want it aborted by the test", info.Status, info.Reason)
	} else if !ok && err == nil {
		t.Fatalf("a second abort answered %T", res)
	}
	stored, err := store.Get(ctx, rec.Info.Id)
	if err != nil || stored.Info.Status != hearthv1.JobStatus_JOB_STATUS_ABORTED {
		t.Fatalf("stored job: %v, %v; want it aborted", stored, err)
	}
	if n := len(site.left); n != 0 {
		t.Fatalf("the site was told %d more times that the job ended", n)
	}
}
