package auditor

import (
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

const askTimeout = 10 * time.Second

// spawnAuditor starts an actor system with an auditor on a fresh log.
func spawnAuditor(t *testing.T) (*actor.ActorSystem, *actor.PID, *Log, string) {
	t.Helper()
	_, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := mustOpen(t, path, "server", key)
	discard := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard }))
	t.Cleanup(system.Shutdown)
	a := &Actor{Log: l, Logger: discard}
	return system, system.Root.Spawn(a.Props()), l, path
}

func ask(t *testing.T, system *actor.ActorSystem, pid *actor.PID, msg any) *Appended {
	t.Helper()
	res, err := system.Root.RequestFuture(pid, msg, askTimeout).Result()
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	out, ok := res.(*Appended)
	if !ok {
		t.Fatalf("answer is %T, want *Appended", res)
	}
	return out
}

func TestActorAppendsOnRequest(t *testing.T) {
	system, pid, l, path := spawnAuditor(t)
	first := ask(t, system, pid, &Append{Event: Event{Action: ActionJobSubmitted, JobID: "job-1"}})
	if first.Err != nil || first.Record.Seq != 1 || first.Record.Action != ActionJobSubmitted || first.Record.ID == "" {
		t.Fatalf("Appended = %+v", first)
	}

	// A Send writes silently; mailbox order puts it before the next request.
	system.Root.Send(pid, &Append{Event: Event{Action: ActionJobStarted, JobID: "job-1"}})
	if got := ask(t, system, pid, &Append{Event: Event{Action: ActionJobFinished}}); got.Record.Seq != 3 {
		t.Errorf("request after a send got Seq %d, want 3", got.Record.Seq)
	}
	l.Close()
	recs := mustVerify(t, path, pubOf(l.key))
	if len(recs) != 3 || recs[0].ID != first.Record.ID || recs[0].Hash != first.Record.Hash || recs[1].Action != ActionJobStarted {
		t.Errorf("log holds %s", actions(recs))
	}
}

func TestActorReportsFailures(t *testing.T) {
	system, pid, l, _ := spawnAuditor(t)
	if got := ask(t, system, pid, &Append{}); got.Err == nil {
		t.Error("an event without action was accepted")
	}
	if got := ask(t, system, pid, (*Append)(nil)); got.Err == nil {
		t.Error("a nil message was accepted")
	}
	l.Close()
	if got := ask(t, system, pid, &Append{Event: Event{Action: ActionJobStarted}}); !errors.Is(got.Err, ErrClosed) {
		t.Errorf("append to a closed log: %v, want ErrClosed", got.Err)
	}
	noLog := system.Root.Spawn((&Actor{}).Props())
	if got := ask(t, system, noLog, &Append{Event: Event{Action: ActionJobStarted}}); got.Err == nil {
		t.Error("an actor without a log answered success")
	}
}

func TestActorConcurrentAppendsKeepTheChain(t *testing.T) {
	system, pid, l, path := spawnAuditor(t)
	const senders, each = 20, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[uint64]bool{}
	)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				res, err := system.Root.RequestFuture(pid, &Append{Event: Event{Action: ActionTaskSent, Round: int64(s*each + i)}}, askTimeout).Result()
				a, ok := res.(*Appended)
				if err != nil || !ok || a.Err != nil {
					t.Errorf("append: %v %v", err, res)
					return
				}
				mu.Lock()
				seqs[a.Record.Seq] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l.Close()
	if len(seqs) != senders*each {
		t.Errorf("%d distinct seqs, want %d", len(seqs), senders*each)
	}
	if recs := mustVerify(t, path, pubOf(l.key)); len(recs) != senders*each {
		t.Errorf("%d records, want %d", len(recs), senders*each)
	}
}

func TestFromOrigin(t *testing.T) {
	system, _, _, _ := spawnAuditor(t)
	type result struct {
		e  Event
		ok bool
	}
	probe := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, isString := ctx.Message().(string); isString {
			e, ok := FromOrigin(ctx, ActionTaskReceived)
			ctx.Respond(result{e, ok})
		}
	}))

	res, err := system.Root.RequestFuture(probe, "local", askTimeout).Result()
	if err != nil || res != nil && res.(result).ok {
		t.Errorf("local message: %+v, %v; want ok=false", res, err)
	}

	// The headers the bridge sets on what it delivers (bus/bridge).
	headers := map[string]string{"hearth-sender": "server", "hearth-sender-org": "org-a", "hearth-sender-kind": "server",
		"hearth-job": "job-1", "hearth-round": "3", "hearth-message-id": "m-42"}
	future := actor.NewFuture(system, askTimeout)
	system.Root.Send(probe, &actor.MessageEnvelope{Header: headers, Message: "task", Sender: future.PID()})
	res, err = future.Result()
	if err != nil {
		t.Fatal(err)
	}
	got := res.(result)
	want := Event{Action: ActionTaskReceived, JobID: "job-1", Round: 3, Peer: "server", Detail: map[string]string{"message_id": "m-42"}}
	if !got.ok || !reflect.DeepEqual(got.e, want) {
		t.Errorf("FromOrigin = %+v, %v; want %+v", got.e, got.ok, want)
	}
}
