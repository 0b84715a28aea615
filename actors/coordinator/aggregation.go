package coordinator

import (
	"context"
	"fmt"
	"io"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Streams offers and pulls chunked streams; *stream.Manager is one. The
// job's aggregator streams its models with it, the coordinator a
// download.
type Streams = aggregator.Streams

// spill is where a model of size bytes is kept: "" for memory.
func (c *Config) spill(size int64) string {
	if c.SpillDir != "" && c.SpillAbove > 0 && size > c.SpillAbove {
		return c.SpillDir
	}
	return ""
}

// aggregatorProps makes the props of the job's aggregator, the owner of
// its global model: a child of the workflow, its streams and store calls
// under the job's context.
func (w *workflow) aggregatorProps() *actor.Props {
	return aggregator.HoldingProps(w.jobCtx, aggregator.Config{JobID: w.id(), Streams: w.cfg.Streams,
		Checkpoints: checkpoints{store: w.cfg.Store, job: w.id()}, SpillDir: w.cfg.SpillDir, SpillAbove: w.cfg.SpillAbove, Codec: w.manifest.Codec(), Log: w.cfg.Log})
}

// checkpoints are one job's global models in the store, in the
// aggregator's terms.
type checkpoints struct {
	store *Store
	job   string
}

var _ aggregator.Checkpoints = checkpoints{}

func (c checkpoints) PutModel(ctx context.Context, round int64, m *model.Model) error {
	return c.store.PutModel(ctx, c.job, round, job.ToWire(m))
}

func (c checkpoints) PutRaw(ctx context.Context, round int64, layout []model.TensorShape, data io.ReaderAt, size int64) error {
	return c.store.PutRaw(ctx, c.job, round, job.LayoutToWire(layout), data, size)
}

func (c checkpoints) Raw(ctx context.Context, round int64) ([]model.TensorShape, io.ReadCloser, error) {
	wl, r, err := c.store.Raw(ctx, c.job, round)
	if err != nil {
		return nil, nil, err
	}
	layout, _, err := job.LayoutFromWire(wl)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return layout, r, nil
}

// askAggregator sends the aggregator a request whose answer moves the job
// on; next waits for it.
func (w *workflow) askAggregator(ctx actor.Context, msg any) {
	w.asking = true
	ctx.Request(w.agg, msg)
}

// pull hands a site's offered update stream to the aggregator, which
// answers at once whether it takes it (streamTaken) and later how its pull
// ended (streamPulled); next waits for both.
func (w *workflow) pull(ctx actor.Context, site string, m *hearthv1.TrainResult) {
	if m.UpdateStream.TotalBytes != w.size && w.manifest.Codec() == nil { // a quantized one's geometry the aggregator checks
		w.refuse(site, "result.refused", fmt.Sprintf("update of %d bytes for a %d-byte model", m.UpdateStream.TotalBytes, w.size), m.AuditEvent)
		return
	}
	w.audit(auditor.Event{Action: "result.received", JobID: w.id(), Round: w.round, Peer: site, PeerEvent: m.AuditEvent,
		Detail: map[string]string{"task": w.events[site], "stream": m.UpdateStream.StreamId}})
	w.pulling[site] = m
	ctx.Request(w.agg, &aggregator.FoldStream{Round: w.round, Site: site, Manifest: m.UpdateStream, Weight: w.weight(site, m)})
}

// streamTaken accounts a site's update the aggregator took, or refuses it.
func (w *workflow) streamTaken(ctx actor.Context, t *aggregator.StreamTaken) {
	m := w.pulling[t.Site]
	if t.Round != w.round || m == nil {
		return
	}
	if t.Refused != "" {
		delete(w.pulling, t.Site)
		w.refuse(t.Site, "result.refused", t.Refused, m.AuditEvent)
		w.next(ctx)
		return
	}
	w.account(t.Site, m)
}

func (w *workflow) streamPulled(ctx actor.Context, p *aggregator.StreamPulled) {
	if p.Round != w.round || w.pulling[p.Site] == nil {
		return
	}
	delete(w.pulling, p.Site)
	w.bytes += p.Stats.Bytes
	if p.Err != nil {
		w.refuse(p.Site, "stream.failed", "update stream: "+p.Err.Error(), "")
	} else {
		w.answered = append(w.answered, p.Site)
		w.cfg.Log.Info("update pulled", "job", w.id(), "round", w.round, "site", p.Site, "bytes", p.Stats.Bytes,
			"ms", p.Stats.Duration.Milliseconds(), "resent", p.Stats.Resent, "corrupt", p.Stats.Corrupt)
	}
	w.next(ctx)
}
