package aggregator_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// scriptedStreams is a real stream manager whose pulls are the test's:
// each site's Receive runs the function given for it, which writes the
// site's chunks into the sink as the test directs.
type scriptedStreams struct {
	aggregator.Streams
	receive map[string]func(ctx context.Context, sink stream.Sink) (stream.Stats, error)
}

func (s *scriptedStreams) Receive(ctx context.Context, sender string, _ *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error) {
	return s.receive[sender](ctx, sink)
}

// writeUniform writes chunks [from, to) of an update whose every value is
// v, stopping at ctx's end or the sink's first error; before chunk at it
// closes reached.
func writeUniform(ctx context.Context, sink stream.Sink, chunkBytes, from, to int, v float32, at int, reached chan struct{}) (stream.Stats, error) {
	chunk := le(slices.Repeat([]float32{v}, chunkBytes/4)...)
	var st stream.Stats
	for c := from; c < to; c++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if c == at {
			close(reached)
		}
		if err := sink.WriteChunk(c, int64(c*chunkBytes), chunk); err != nil {
			return st, err
		}
		st.Chunks++
		st.Bytes += int64(len(chunk))
	}
	return st, nil
}

// next is the aggregator's next answer, which must be a T, within d.
func next[T any](h *holder, d time.Duration) (T, bool) {
	h.t.Helper()
	var v T
	select {
	case a := <-h.answer:
		v, ok := a.(T)
		if !ok {
			h.t.Fatalf("answered %T (%+v), want %T", a, a, v)
		}
		return v, true
	case <-time.After(d):
		return v, false
	}
}

// A member withdrawn while its stream runs a window ahead of the others
// (held back in its WriteChunk) leaves the lockstep sum at once: its pull
// ends now, not when the others catch up, and the chunks the sum held of
// it are never combined: the round's model is the others' alone.
func TestWithdrawnMemberLeavesTheLockstepAtOnce(t *testing.T) {
	const chunkBytes = 1024
	chunks := aggregator.LockstepWindow + 4
	release := make(chan struct{})
	aHeldBack := make(chan struct{})
	streams := &scriptedStreams{Streams: streamManagers(t, "agg")["agg"], receive: map[string]func(context.Context, stream.Sink) (stream.Stats, error){
		"a": func(ctx context.Context, sink stream.Sink) (stream.Stats, error) {
			// The window's chunks are held; the next one waits for b.
			return writeUniform(ctx, sink, chunkBytes, 0, chunks, 100, aggregator.LockstepWindow, aHeldBack)
		},
		"b": func(ctx context.Context, sink stream.Sink) (stream.Stats, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return stream.Stats{}, ctx.Err()
			}
			return writeUniform(ctx, sink, chunkBytes, 0, chunks, 1, -1, nil)
		},
	}}
	h := newHolder(t, aggregator.Config{Streams: streams, ChunkBytes: chunkBytes})
	n := chunks * chunkBytes / 4
	layout := []model.TensorShape{{Name: "w", Shape: []int{n}}}
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Layout: layout, Streamed: true}); held.Err != nil {
		t.Fatal(held.Err)
	}
	rule := aggregator.Rule{Method: aggregator.Median, Unbounded: true}
	if o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 1, Rule: rule, Expect: []string{"a", "b"}}); o.Err != nil {
		t.Fatal(o.Err)
	}
	for _, site := range []string{"a", "b"} {
		man := &hearthv1.StreamManifest{TotalBytes: int64(4 * n), ChunkBytes: chunkBytes}
		if got := ask[*aggregator.StreamTaken](h, &aggregator.FoldStream{Round: 1, Site: site, Manifest: man, Weight: 1}); got.Refused != "" {
			t.Fatalf("%s refused: %s", site, got.Refused)
		}
	}
	select {
	case <-aHeldBack:
	case <-time.After(10 * time.Second):
		t.Fatal("a's stream never reached the window's end")
	}
	h.system.Root.Send(h.probe, &request{to: h.agg, msg: &aggregator.Withdraw{Site: "a"}})
	// Well within LockstepPatience, after which b would be left out as too
	// slow and a's held chunks combined.
	p, ok := next[*aggregator.StreamPulled](h, aggregator.LockstepPatience/2)
	if !ok {
		t.Fatalf("a's pull did not end within %v of its withdrawal: it waits in the lockstep for b", aggregator.LockstepPatience/2)
	}
	if p.Site != "a" || p.Err == nil || !strings.Contains(p.Err.Error(), "withdrawn") {
		t.Fatalf("pulled %+v, want a's pull ended as withdrawn", p)
	}
	close(release)
	if p := ask[*aggregator.StreamPulled](h, nil); p.Site != "b" || p.Err != nil {
		t.Fatalf("pulled %+v, want b's update counted", p)
	}
	c := ask[*aggregator.Closed](h, &aggregator.Close{Round: 1, WantMean: true})
	if c.Err != nil {
		t.Fatal(c.Err)
	}
	if !slices.Equal(c.Sites, []string{"b"}) {
		t.Fatalf("aggregated %v, want b only", c.Sites)
	}
	for i, v := range c.Mean.Tensors[0].Data {
		if v != 1 {
			t.Fatalf("mean value %d is %v, want b's 1: the withdrawn a's chunks were combined", i, v)
		}
	}
}
