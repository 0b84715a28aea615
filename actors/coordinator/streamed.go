package coordinator

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Streams offers and pulls chunked streams; *stream.Manager is one.
type Streams interface {
	Prepare(ctx context.Context, data []byte) (*stream.Payload, error)
	OfferPayload(ctx context.Context, recipient string, p *stream.Payload) (*stream.Outgoing, error)
	Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error)
}

// outgoing is a stream of the global model offered to one site.
type outgoing struct {
	site string
	out  *stream.Outgoing
}

// pulled reports the end of a site's update stream to the workflow.
type pulled struct {
	site  string
	round int64
	stats stream.Stats
	err   error
}

func bytesOf(layout []model.TensorShape) int64 {
	n := int64(0)
	for _, t := range layout {
		size, _ := model.ShapeSize(t.Shape)
		n += int64(size)
	}
	return 4 * n
}

// spill is where a model of size bytes is kept: "" for memory.
func (c *Config) spill(size int64) string {
	if c.SpillDir != "" && c.SpillAbove > 0 && size > c.SpillAbove {
		return c.SpillDir
	}
	return ""
}

// initialBig makes the first global model of a large job.
func (w *workflow) initialBig(layout []model.TensorShape) error {
	if w.cfg.Streams == nil {
		return fmt.Errorf("the model is %d bytes, more than one envelope carries (%d), and this server streams nothing", bytesOf(layout), job.InlineLimit)
	}
	spec := w.manifest.Trainer.Spec()
	var err error
	if spec.Kind == trainer.KindNoop {
		// The noop model's zeros are written, not left to the mapping: an
		// untouched mapping reads as the kernel's shared zero page, and
		// the global model would then hold no memory, as no real one does.
		if w.big, err = model.NewFlat(layout, w.cfg.spill(bytesOf(layout))); err == nil {
			clear(w.big.Data)
		}
	} else {
		var m *model.Model
		if m, err = trainer.Init(spec, int(w.shapeFeatures), int(w.shapeLabels)); err == nil {
			w.big, err = model.FlatCopy(m, w.cfg.spill(bytesOf(layout)))
		}
	}
	if err != nil {
		return fmt.Errorf("initial model: %w", err)
	}
	w.rec.Info.CompletedRounds, w.rec.Info.History = 0, nil
	if err := w.checkpointBig(0); err != nil {
		return err
	}
	w.save()
	return nil
}

func (w *workflow) checkpointBig(round int64) error {
	return w.cfg.Store.PutRaw(w.jobCtx, w.id(), round, job.LayoutToWire(w.big.Layout), w.big, w.big.Size())
}

// loadBig reads a large checkpoint back into a flat model (on resume).
func (w *workflow) loadBig(round int64) error {
	wl, r, err := w.cfg.Store.Raw(w.jobCtx, w.id(), round)
	if err != nil {
		return err
	}
	defer r.Close()
	layout, size, err := job.LayoutFromWire(wl)
	if err != nil {
		return err
	}
	f, err := model.NewFlat(layout, w.cfg.spill(size))
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(r, f.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint of round %d: %w", round, err)
	}
	w.big = f
	return nil
}

// pullGrace is how long update streams wait, once the first is offered,
// for every stream of the global model to end so that the sum can fold
// into the global model's own buffer. Sites download at about the same
// pace and each uploads only after its download, so the wait is usually
// short and the round holds one model; past it (a site still downloading),
// the sum takes a buffer of its own and the updates are pulled at once. It
// is well under stream.DefaultStallTimeout, within which an offered stream
// must be pulled.
const pullGrace = 5 * time.Second

// waitingUpdate is a site's offered update, waiting for the round's sum.
type waitingUpdate struct {
	site   string
	result *hearthv1.TrainResult
	at     time.Time // when it was offered
}

// sumReady tells the workflow to choose the round's sum buffer: every
// stream of the global model has ended, or pullGrace has passed.
type sumReady struct{ round int64 }

// startStreamedRound offers the global model to every reachable site as a
// stream and asks each to train on it; the update streams are pulled as
// their results arrive (see pullGrace), each chunk folded into the round's
// sum.
func (w *workflow) startStreamedRound(ctx actor.Context) {
	w.sum, w.sumInPlace, w.waiting = nil, false, nil
	w.pulling, w.pulls = map[string]bool{}, &sync.WaitGroup{}
	if err := w.manifest.Aggregation.Streamable(); err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: the model is streamed (%d bytes): %v", w.round, w.big.Size(), err))
		return
	}
	layout := job.LayoutToWire(w.big.Layout)
	// Hashed once for every site: each gets its own stream of the same bytes.
	payload, err := w.cfg.Streams.Prepare(w.jobCtx, w.big.Bytes())
	if err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, err))
		return
	}
	for _, s := range w.sites() {
		if !w.reachable(s) {
			w.miss(s, "not connected to the hub")
			continue
		}
		out, err := w.cfg.Streams.OfferPayload(w.jobCtx, s, payload)
		if err != nil {
			w.miss(s, "offer of the global model: "+err.Error())
			continue
		}
		w.offered = append(w.offered, outgoing{site: s, out: out})
		id := w.audit(auditor.Event{Action: "task.sent", JobID: w.id(), Round: w.round, Peer: s,
			Detail: map[string]string{"stream": out.Manifest.StreamId, "bytes": fmt.Sprint(w.big.Size())}})
		w.events[s] = id
		w.bytes += w.big.Size()
		w.ask(ctx, s, &hearthv1.TrainTask{JobId: w.id(), Round: w.round, GlobalStream: out.Manifest, Layout: layout, AuditEvent: id})
	}
	w.next(ctx)
}

// pull takes a site's offered update: pulled into the round's sum at once
// if it has one, else once it has (the first update starts the wait).
func (w *workflow) pull(ctx actor.Context, site string, m *hearthv1.TrainResult) {
	if m.UpdateStream.TotalBytes != w.big.Size() {
		w.refuse(site, "result.refused", fmt.Sprintf("update of %d bytes for a %d-byte model", m.UpdateStream.TotalBytes, w.big.Size()), m.AuditEvent)
		return
	}
	w.audit(auditor.Event{Action: "result.received", JobID: w.id(), Round: w.round, Peer: site, PeerEvent: m.AuditEvent,
		Detail: map[string]string{"task": w.events[site], "stream": m.UpdateStream.StreamId}})
	if w.sum != nil && w.manifest.Aggregation.Lockstep() {
		w.refuse(site, "result.refused", fmt.Sprintf("update offered more than %v after the round's first: its lockstep aggregation had begun without it "+
			"(an offered stream must be pulled within the stall timeout)", lockstepWait), m.AuditEvent)
		return
	}
	w.pulling[site] = true
	w.account(site, m)
	if w.sum != nil {
		w.startPull(ctx, site, m)
		return
	}
	if len(w.waiting) == 0 {
		self, system, round, offered, jobCtx := ctx.Self(), ctx.ActorSystem(), w.round, w.offered, w.jobCtx
		go func() {
			grace := time.NewTimer(pullGrace)
			defer grace.Stop()
			for _, o := range offered {
				select {
				case <-o.out.Done():
				case <-grace.C:
					system.Root.Send(self, &sumReady{round: round})
					return
				case <-jobCtx.Done():
					return
				}
			}
			system.Root.Send(self, &sumReady{round: round})
		}()
	}
	w.waiting = append(w.waiting, waitingUpdate{site: site, result: m, at: time.Now()})
}

// sumReady chooses the round's sum buffer, the global model's own when no
// stream reads it any more, and pulls the updates that waited. A lockstep
// rule (see aggregator.NewRuleSum) pulls every update at once, so it waits
// until no site's result is pending, looking again shortly; but an offered
// stream must be pulled within the stream stall timeout, so once the first
// update has waited lockstepWait it starts with the updates it has, and a
// later one is left out of the round (a straggler) rather than the early
// ones failing.
func (w *workflow) sumReady(ctx actor.Context, m *sumReady) {
	if m.round != w.round || w.phase != training || w.sum != nil || len(w.waiting) == 0 {
		return
	}
	rule := w.manifest.Aggregation
	if rule.Lockstep() && len(w.pending) > 0 && time.Since(w.waiting[0].at) < lockstepWait {
		self, system := ctx.Self(), ctx.ActorSystem()
		time.AfterFunc(lockstepPoll, func() { system.Root.Send(self, m) })
		return
	}
	w.sumInPlace = true
	for _, o := range w.offered {
		select {
		case <-o.out.Done():
		default:
			w.sumInPlace = false
		}
	}
	acc := w.big
	if !w.sumInPlace {
		var err error
		if acc, err = w.spare.Take(w.big.Layout, w.cfg.spill(w.big.Size())); err != nil {
			w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, err))
			return
		}
	}
	var sum *aggregator.StreamSum
	var err error
	if rule.Lockstep() {
		sites := make([]string, len(w.waiting))
		for i, u := range w.waiting {
			sites[i] = u.site
		}
		sum, err = aggregator.NewRuleSum(acc, w.big, stream.DefaultChunkBytes, rule, sites)
	} else {
		sum, err = aggregator.NewStreamSum(acc, stream.DefaultChunkBytes)
	}
	if err != nil { // acc released: the global model too when in place
		if w.sumInPlace {
			w.big = nil
		}
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, err))
		return
	}
	w.sum = sum
	w.cfg.Log.Info("round sum ready", "job", w.id(), "round", w.round, "in_place", w.sumInPlace, "waiting", len(w.waiting),
		"lockstep", rule.Lockstep())
	waiting := w.waiting
	w.waiting = nil
	for _, u := range waiting {
		w.startPull(ctx, u.site, u.result)
	}
}

// lockstepPoll is how often a lockstep round looks whether every result
// is in; lockstepWait is how long the first offered update waits for the
// others before the round's lockstep aggregation starts without them, well
// within stream.DefaultStallTimeout.
const (
	lockstepPoll = 50 * time.Millisecond
	lockstepWait = stream.DefaultStallTimeout / 2
)

// startPull pulls a site's update stream into the round's sum; the sum's
// own verdict on the site (refused by the norm bound, say) fails the pull.
func (w *workflow) startPull(ctx actor.Context, site string, m *hearthv1.TrainResult) {
	self, system, round, sum := ctx.Self(), ctx.ActorSystem(), w.round, w.sum
	sink := sum.Site(site, w.weight(site, m))
	pullCtx, cancel := context.WithCancel(w.jobCtx)
	if w.pullCancels == nil {
		w.pullCancels = map[string]context.CancelFunc{}
	}
	w.pullCancels[site] = cancel
	w.pulls.Add(1)
	go func() {
		defer w.pulls.Done()
		defer cancel()
		stats, err := w.cfg.Streams.Receive(pullCtx, site, m.UpdateStream, sink)
		if verdict := sum.Done(site, err); err == nil && verdict != nil {
			err = fmt.Errorf("refused by the aggregator: %w", verdict)
		}
		system.Root.Send(self, &pulled{site: site, round: round, stats: stats, err: err})
	}()
}

func (w *workflow) pulled(ctx actor.Context, p *pulled) {
	if p.round != w.round || !w.pulling[p.site] {
		return
	}
	delete(w.pulling, p.site)
	delete(w.pullCancels, p.site)
	w.bytes += p.stats.Bytes
	if p.err != nil {
		w.refuse(p.site, "stream.failed", "update stream: "+p.err.Error(), "")
	} else {
		w.answered = append(w.answered, p.site)
		w.cfg.Log.Info("update pulled", "job", w.id(), "round", w.round, "site", p.site, "bytes", p.stats.Bytes,
			"ms", p.stats.Duration.Milliseconds(), "resent", p.stats.Resent, "corrupt", p.stats.Corrupt)
	}
	w.next(ctx)
}

// closeStreamed makes the round's mean the new global model and
// checkpoints it.
func (w *workflow) closeStreamed(ctx actor.Context) {
	if w.sum == nil { // no update was pulled (next fails such a round first)
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: no update to aggregate", w.round))
		return
	}
	for site, reason := range w.sum.Clipped() {
		w.clipped(site, reason)
	}
	mean, err := w.sum.Mean()
	inPlace := w.sumInPlace
	w.sum, w.sumInPlace = nil, false
	if err != nil { // Mean released the sum's buffer: the global model's too when in place
		if !inPlace {
			retire(w.big, w.offered, w.spare)
		}
		w.big, w.offered = nil, nil
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, err))
		return
	}
	old, offered := w.big, w.offered
	w.big, w.offered = mean, nil
	if !inPlace { // the old global model's buffer holds the next sum that cannot be in place
		retire(old, offered, w.spare)
	}
	w.exchanged = time.Since(w.started)
	if err := w.checkpointBig(w.round); err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
		return
	}
	w.checkpointed = time.Since(w.started) - w.exchanged
	w.cfg.Log.Info("checkpoint written", "job", w.id(), "round", w.round, "bytes", w.big.Size(), "ms", w.checkpointed.Milliseconds())
	w.roundClosed(ctx)
}

// retire hands a global model's buffer to spare (which releases it once
// closed) when every stream offering it has ended (a site that never
// pulled it is cancelled first), so that no stream reads memory in reuse.
// Its wait takes no job context on purpose: the buffer must outlive every
// stream reading it, and Cancel ends each stream at once.
func retire(f *model.Flat, offered []outgoing, spare *model.Spare) {
	go func() {
		for _, o := range offered {
			o.out.Cancel()
			_ = o.out.Wait(context.Background())
		}
		spare.Put(f)
	}()
}

// release frees a large job's buffers when it ends, after its context
// was cancelled; a sum that update streams may still be writing into is
// freed once they have ended (the cancelled context ends them at once).
func (w *workflow) release() {
	w.spare.Close()
	if w.sum != nil {
		sum, pulls := w.sum, w.pulls
		sum.Abort() // a lockstep sum holds streams back: let them end
		go func() {
			pulls.Wait()
			sum.Close()
		}()
		if w.sumInPlace {
			w.big = nil // the sum's buffer: closed with it
		}
		w.sum, w.sumInPlace = nil, false
	}
	if w.big != nil {
		retire(w.big, w.offered, w.spare) // released: the spare is closed
	}
	w.big, w.offered, w.waiting = nil, nil, nil
}
