package aggregator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// memCheckpoints keeps checkpoints in memory.
type memCheckpoints struct {
	mu     sync.Mutex
	models map[int64]*model.Model
	raw    map[int64][]byte
	layout []model.TensorShape
}

func (c *memCheckpoints) PutModel(_ context.Context, round int64, m *model.Model) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.models[round] = m.Clone()
	return nil
}

func (c *memCheckpoints) PutRaw(_ context.Context, round int64, layout []model.TensorShape, data io.ReaderAt, size int64) error {
	b := make([]byte, size)
	if _, err := data.ReadAt(b, 0); err != nil && err != io.EOF {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw[round], c.layout = b, layout
	return nil
}

func (c *memCheckpoints) Raw(_ context.Context, round int64) ([]model.TensorShape, io.ReadCloser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.layout, io.NopCloser(bytes.NewReader(c.raw[round])), nil
}

// probe asks the aggregator on the test's behalf and hands every answer
// to the test: FoldStream is answered twice, which a future cannot take.
type probe struct{ answers chan any }

// request is what the test asks the probe to send.
type request struct {
	to  *actor.PID
	msg any
}

func (p *probe) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *request:
		ctx.Request(m.to, m.msg)
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		p.answers <- m
	}
}

// holder is an aggregator that holds a model, and a probe that talks to it.
type holder struct {
	t      *testing.T
	system *actor.ActorSystem
	agg    *actor.PID
	probe  *actor.PID
	answer chan any
}

func newHolder(t *testing.T, cfg aggregator.Config) *holder {
	t.Helper()
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &holder{t: t, system: system, answer: make(chan any, 16)}
	h.agg = system.Root.Spawn(aggregator.HoldingProps(ctx, cfg))
	h.probe = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &probe{answers: h.answer} }))
	return h
}

// ask sends msg and returns the next answer, which must be a T.
func ask[T any](h *holder, msg any) T {
	h.t.Helper()
	if msg != nil {
		h.system.Root.Send(h.probe, &request{to: h.agg, msg: msg})
	}
	select {
	case a := <-h.answer:
		v, ok := a.(T)
		if !ok {
			h.t.Fatalf("answered %T (%+v), want %T", a, a, v)
		}
		return v
	case <-time.After(10 * time.Second):
		var v T
		h.t.Fatalf("no %T within 10s", v)
		return v
	}
}

// An inline job: the aggregator holds the model, offers it, folds the
// round's updates into the next one, and checkpoints what it holds.
func TestHeldInlineRounds(t *testing.T) {
	store := &memCheckpoints{models: map[int64]*model.Model{}, raw: map[int64][]byte{}}
	h := newHolder(t, aggregator.Config{Checkpoints: store})
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Model: weights(0, 0)}); held.Err != nil || held.Streamed || held.Size != 8 {
		t.Fatalf("held %+v, want 8 inline bytes", held)
	}
	o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 1, Sites: []string{"a", "b"}})
	if o.Err != nil || o.Model == nil || !slices.Equal(o.Model.Tensors[0].Data, []float32{0, 0}) {
		t.Fatalf("round 1 offered %+v, want the held zeros", o)
	}
	h.system.Root.Send(h.agg, &aggregator.Fold{Round: 1, Site: "a", Update: weights(1, 10), Weight: 300})
	h.system.Root.Send(h.agg, &aggregator.Fold{Round: 1, Site: "b", Update: weights(3, 20), Weight: 100})
	if c := ask[*aggregator.Closed](h, &aggregator.Close{Round: 1}); c.Err != nil || len(c.Sites) != 2 {
		t.Fatalf("closed %+v", c)
	}
	if c := ask[*aggregator.Checkpointed](h, &aggregator.Checkpoint{Round: 1}); c.Err != nil || c.Bytes != 8 {
		t.Fatalf("checkpointed %+v", c)
	}
	if got := store.models[1].Tensors[0].Data; !slices.Equal(got, []float32{1.5, 12.5}) {
		t.Fatalf("checkpoint of round 1 is %v, want [1.5 12.5]", got)
	}
	o = ask[*aggregator.Offered](h, &aggregator.Offer{Sites: []string{"a"}})
	if o.Err != nil || !slices.Equal(o.Model.Tensors[0].Data, []float32{1.5, 12.5}) {
		t.Fatalf("the final model offered %+v, want round 1's mean", o)
	}
}

// What the aggregator refuses of a job's held model: requests before it
// holds one, a checkpoint with nowhere to write, a streamed model with
// nothing to stream, an inline update in a streamed round, and streamed
// updates that are not the round's, of the wrong size, or a second one.
func TestHeldRefuses(t *testing.T) {
	h := newHolder(t, aggregator.Config{})
	if o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 1, Sites: []string{"a"}}); o.Err == nil {
		t.Fatal("a round began on no model")
	}
	if c := ask[*aggregator.Checkpointed](h, &aggregator.Checkpoint{Round: 1}); c.Err == nil {
		t.Fatal("a checkpoint was written with no store")
	}
	layout := []model.TensorShape{{Name: "w", Shape: []int{1024}}}
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Layout: layout, Streamed: true}); held.Err == nil {
		t.Fatal("a streamed model was held with no streams")
	}
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Model: weights(1, float32(math.NaN()))}); held.Err == nil {
		t.Fatal("a model holding NaN was held")
	}

	mgrs := streamManagers(t, "server", "a")
	s := newHolder(t, aggregator.Config{Streams: mgrs["server"], ChunkBytes: 1024})
	if held := ask[*aggregator.Held](s, &aggregator.Hold{Layout: layout, Streamed: true}); held.Err != nil || !held.Streamed || held.Size != 4096 {
		t.Fatalf("held %+v, want 4096 streamed bytes", held)
	}
	o := ask[*aggregator.Offered](s, &aggregator.Begin{Round: 1, Sites: []string{"a"}})
	if o.Err != nil || o.Manifest["a"] == nil {
		t.Fatalf("offered %+v", o)
	}
	discard := stream.SinkFunc(func(int, int64, []byte) error { return nil })
	if _, err := mgrs["a"].Receive(context.Background(), "server", o.Manifest["a"], discard); err != nil {
		t.Fatal(err)
	}
	offer := func(size int64) *hearthv1.StreamManifest {
		out, err := mgrs["a"].Offer(context.Background(), "server", bytes.NewReader(make([]byte, size)), size)
		if err != nil {
			t.Fatal(err)
		}
		return out.Manifest
	}
	for _, tt := range []struct {
		name   string
		fold   *aggregator.FoldStream
		reason string
	}{
		{name: "another round", fold: &aggregator.FoldStream{Round: 2, Site: "a", Manifest: offer(4096), Weight: 1}, reason: "round 2"},
		{name: "wrong size", fold: &aggregator.FoldStream{Round: 1, Site: "a", Manifest: offer(2048), Weight: 1}, reason: "2048 bytes"},
		{name: "no manifest", fold: &aggregator.FoldStream{Round: 1, Site: "a", Weight: 1}, reason: "without its manifest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ask[*aggregator.StreamTaken](s, tt.fold); !strings.Contains(got.Refused, tt.reason) {
				t.Fatalf("refused %q, want it to say %q", got.Refused, tt.reason)
			}
		})
	}
	s.system.Root.Send(s.agg, &aggregator.Fold{Round: 1, Site: "inline", Update: weights(make([]float32, 1024)...), Weight: 1})
	if got := ask[*aggregator.StreamTaken](s, &aggregator.FoldStream{Round: 1, Site: "a", Manifest: offer(4096), Weight: 1}); got.Refused != "" {
		t.Fatalf("the round's update refused: %s", got.Refused)
	}
	if got := ask[*aggregator.StreamTaken](s, &aggregator.FoldStream{Round: 1, Site: "a", Manifest: offer(4096), Weight: 1}); !strings.Contains(got.Refused, "second") {
		t.Fatalf("a second update: refused %q", got.Refused)
	}
	if p := ask[*aggregator.StreamPulled](s, nil); p.Err != nil || p.Site != "a" {
		t.Fatalf("pulled %+v", p)
	}
	c := ask[*aggregator.Closed](s, &aggregator.Close{Round: 1})
	if c.Err != nil || !strings.Contains(c.Refused["inline"], "inline update") {
		t.Fatalf("closed %+v, want the inline update refused", c)
	}
}

// A streamed job over real streams: the aggregator offers its model to
// each site as a stream, pulls their update streams into the round's sum,
// holds the weighted mean, checkpoints it and offers it again.
func TestHeldStreamedRound(t *testing.T) {
	const n = 4096 // 16 chunks of 1 KiB
	mgrs := streamManagers(t, "server", "a", "b")
	store := &memCheckpoints{models: map[int64]*model.Model{}, raw: map[int64][]byte{}}
	h := newHolder(t, aggregator.Config{Streams: mgrs["server"], Checkpoints: store, ChunkBytes: 1024})
	layout := []model.TensorShape{{Name: "w", Shape: []int{n}}}
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Layout: layout, Streamed: true}); held.Err != nil {
		t.Fatal(held.Err)
	}
	o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 1, Sites: []string{"a", "b"}})
	if o.Err != nil || len(o.Manifest) != 2 || o.Size != 4*n || len(o.Failed) != 0 {
		t.Fatalf("offered %+v", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	values, weight := map[string]float32{"a": 1, "b": 4}, map[string]float64{"a": 300, "b": 100}
	for _, site := range []string{"a", "b"} {
		global := make([]byte, 0, 4*n)
		sink := stream.SinkFunc(func(_ int, _ int64, data []byte) error { global = append(global, data...); return nil })
		if _, err := mgrs[site].Receive(ctx, "server", o.Manifest[site], sink); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(global, make([]byte, 4*n)) {
			t.Fatalf("%s got a global model that is not the held zeros", site)
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = values[site]
		}
		out, err := mgrs[site].Offer(ctx, "server", bytes.NewReader(le(data...)), 4*n)
		if err != nil {
			t.Fatal(err)
		}
		fold := &aggregator.FoldStream{Round: 1, Site: site, Manifest: out.Manifest, Weight: weight[site]}
		if got := ask[*aggregator.StreamTaken](h, fold); got.Refused != "" {
			t.Fatalf("%s refused: %s", site, got.Refused)
		}
	}
	for range 2 {
		if p := ask[*aggregator.StreamPulled](h, nil); p.Err != nil || p.Stats.Bytes != 4*n {
			t.Fatalf("pulled %+v", p)
		}
	}
	if c := ask[*aggregator.Closed](h, &aggregator.Close{Round: 1}); c.Err != nil {
		t.Fatal(c.Err)
	}
	if c := ask[*aggregator.Checkpointed](h, &aggregator.Checkpoint{Round: 1}); c.Err != nil || c.Bytes != 4*n {
		t.Fatalf("checkpointed %+v", c)
	}
	want := make([]float32, n)
	for i := range want {
		want[i] = 1.75 // (300*1 + 100*4) / 400
	}
	if !bytes.Equal(store.raw[1], le(want...)) {
		t.Fatal("the checkpoint of round 1 is not the weighted mean")
	}
	o = ask[*aggregator.Offered](h, &aggregator.Offer{Sites: []string{"a"}})
	if o.Err != nil || o.Manifest["a"] == nil {
		t.Fatalf("the final model offered %+v", o)
	}
	final := make([]byte, 0, 4*n)
	sink := stream.SinkFunc(func(_ int, _ int64, data []byte) error { final = append(final, data...); return nil })
	if _, err := mgrs["a"].Receive(ctx, "server", o.Manifest["a"], sink); err != nil || !bytes.Equal(final, le(want...)) {
		t.Fatalf("the final model streamed: %v, equal to the mean: %v", err, bytes.Equal(final, le(want...)))
	}
}

// A site withdrawn (left out by the workflow) is not waited for: its
// offered model is cancelled, so the other site's update is pulled at once
// rather than after the grace for every download to end; and an update
// that still waits for the round's sum ends when its site is withdrawn.
func TestHeldWithdraw(t *testing.T) {
	mgrs := streamManagers(t, "server", "a", "b")
	layout := []model.TensorShape{{Name: "w", Shape: []int{1024}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	discard := stream.SinkFunc(func(int, int64, []byte) error { return nil })
	for _, tt := range []struct {
		name     string
		withdraw string
		check    func(*aggregator.StreamPulled) bool
	}{
		{name: "the one still downloading", withdraw: "b", check: func(p *aggregator.StreamPulled) bool { return p.Err == nil }},
		{name: "the one waiting for the sum", withdraw: "a", check: func(p *aggregator.StreamPulled) bool {
			return errors.Is(p.Err, context.Canceled)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHolder(t, aggregator.Config{Streams: mgrs["server"], ChunkBytes: 1024})
			if held := ask[*aggregator.Held](h, &aggregator.Hold{Layout: layout, Streamed: true}); held.Err != nil {
				t.Fatal(held.Err)
			}
			o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 1, Sites: []string{"a", "b"}})
			if _, err := mgrs["a"].Receive(ctx, "server", o.Manifest["a"], discard); err != nil {
				t.Fatal(err)
			}
			out, err := mgrs["a"].Offer(ctx, "server", bytes.NewReader(make([]byte, 4096)), 4096)
			if err != nil {
				t.Fatal(err)
			}
			if got := ask[*aggregator.StreamTaken](h, &aggregator.FoldStream{Round: 1, Site: "a", Manifest: out.Manifest, Weight: 1}); got.Refused != "" {
				t.Fatal(got.Refused)
			}
			start := time.Now()
			h.system.Root.Send(h.agg, &aggregator.Withdraw{Site: tt.withdraw})
			p := ask[*aggregator.StreamPulled](h, nil)
			if !tt.check(p) || p.Site != "a" {
				t.Fatalf("pulled %+v", p)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("a's update ended %v after the withdrawal, want at once", d)
			}
		})
	}
}
