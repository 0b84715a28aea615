package participant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/quantize"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// flatSink writes a stream's verified chunks into a flat model.
type flatSink struct{ f *model.Flat }

func (s flatSink) WriteChunk(index int, offset int64, data []byte) error {
	if offset < 0 || offset+int64(len(data)) > s.f.Size() {
		return fmt.Errorf("chunk %d (%d bytes at %d) does not fit a %d-byte model", index, len(data), offset, s.f.Size())
	}
	copy(s.f.Bytes()[offset:], data)
	return nil
}

// receiveModel pulls a streamed model of layout into the job's kept buffer
// (spilled to disk when large); the caller hands it back with
// j.spare.Put.
func (p *Participant) receiveModel(j *joined, from bridge.Origin, man *hearthv1.StreamManifest, wl *hearthv1.ModelLayout) (*model.Flat, stream.Stats, error) {
	if p.cfg.Streams == nil {
		return nil, stream.Stats{}, fmt.Errorf("%w: this site cannot receive streamed models", errNoStreams)
	}
	layout, size, err := job.LayoutFromWire(wl)
	if err != nil {
		return nil, stream.Stats{}, fmt.Errorf("%w: layout: %v", errBadModel, err)
	}
	codec := j.manifest.Codec()
	wire := quantize.Stream{Codec: codec, Values: int(size / 4)}
	switch {
	case codec != nil:
		if err := wire.Check(man.GetTotalBytes(), int(man.GetChunkBytes())); err != nil {
			return nil, stream.Stats{}, fmt.Errorf("%w: %v", errBadModel, err)
		}
	case size != man.GetTotalBytes():
		return nil, stream.Stats{}, fmt.Errorf("%w: layout of %d bytes for a %d-byte stream", errBadModel, size, man.GetTotalBytes())
	}
	f, err := j.spare.Take(layout, p.spill(size))
	if err != nil {
		return nil, stream.Stats{}, fmt.Errorf("%w: %v", errNoMemory, err)
	}
	var sink stream.Sink = flatSink{f}
	if codec != nil {
		sink = wire.Sink(sink) // decoded chunk by chunk into the float32 buffer
	}
	got, err := p.cfg.Streams.Receive(context.Background(), from.Sender.Name, man, sink)
	if err != nil {
		j.spare.Put(f)
		return nil, got, fmt.Errorf("%w: %v", errStream, err)
	}
	return f, got, nil
}

// offerUpdate offers a streamed update to the server, encoded in the job's
// codec chunk by chunk (quantize.Stream) when it names one.
func (p *Participant) offerUpdate(ctx context.Context, j *joined, server string, update *model.Flat) (*stream.Outgoing, error) {
	codec := j.manifest.Codec()
	if codec == nil {
		return p.cfg.Streams.OfferBytes(ctx, server, update.Bytes())
	}
	wire := quantize.Stream{Codec: codec, Values: len(update.Data)}
	enc, err := wire.Encode(update.Data)
	if err != nil {
		return nil, err
	}
	return p.cfg.Streams.OfferBytesChunks(ctx, server, enc, wire.ChunkBytes())
}

// streamedUpdate is the buffer a trained update streams from: the job's
// kept update buffer (j.updates, handed back with Put once the stream has
// ended), holding update as the job's result filters make it (written
// there by the chain, see filterUpdateInto), or update itself when it has
// none. An error wraps errNoMemory when there is no buffer; else the
// chain refused the update, or a budget its release.
func (p *Participant) streamedUpdate(j *joined, jobID string, round int64, global, update *model.Model) (*model.Flat, error) {
	buf, err := j.updates.Take(model.LayoutOf(update), p.spill(int64(update.Bytes())))
	if err != nil {
		return nil, fmt.Errorf("%w: the update's buffer: %v", errNoMemory, err)
	}
	if len(j.filters) == 0 {
		dst := buf.Data
		for _, t := range update.Tensors {
			dst = dst[copy(dst, t.Data):]
		}
		return buf, nil
	}
	if err := p.filterUpdateInto(j, jobID, round, global, update, buf.Model()); err != nil {
		j.updates.Put(buf) // what it holds never leaves: the next round overwrites it
		return nil, err
	}
	return buf, nil
}

// codeOf is the failure code a streamedUpdate error answers with.
func codeOf(err error) hearthv1.FailureCode {
	if errors.Is(err, errNoMemory) {
		return hearthv1.FailureCode_FAILURE_CODE_NO_MEMORY
	}
	return hearthv1.FailureCode_FAILURE_CODE_FILTERED
}

// spill is where a model of size bytes is kept: "" for memory.
func (p *Participant) spill(size int64) string {
	if p.cfg.SpillAbove > 0 && size > p.cfg.SpillAbove {
		return p.cfg.SpillDir
	}
	return ""
}

// Reasons receiveModel fails; receiveFailures pairs each with the failure
// code it answers with.
var (
	errNoStreams = errors.New("no_streams")
	errBadModel  = errors.New("bad_model")
	errNoMemory  = errors.New("no_memory")
	errStream    = errors.New("stream_failed")
)

var receiveFailures = []struct {
	err  error
	code hearthv1.FailureCode
}{
	{errNoStreams, hearthv1.FailureCode_FAILURE_CODE_NO_STREAMS},
	{errBadModel, hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL},
	{errNoMemory, hearthv1.FailureCode_FAILURE_CODE_NO_MEMORY},
	{errStream, hearthv1.FailureCode_FAILURE_CODE_STREAM_FAILED},
}

// failureOf answers a receiveModel error with its code.
func failureOf(err error) *hearthv1.Failure {
	for _, f := range receiveFailures {
		if errors.Is(err, f.err) {
			return failure(f.code, err.Error())
		}
	}
	return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
}

// evaluateStreamed evaluates a final model that comes as a stream on the
// site's test data.
func (p *Participant) evaluateStreamed(ctx actor.Context, m *hearthv1.EvaluateTask, j *joined, from bridge.Origin, received string) {
	reply, system := ctx.Sender(), ctx.ActorSystem()
	go func() {
		f, _, err := p.receiveModel(j, from, m.ModelStream, m.Layout)
		if err != nil {
			system.Root.Send(reply, failureOf(fmt.Errorf("final model: %w", err)))
			return
		}
		defer j.spare.Put(f)
		mdl, err := p.filterIncoming(j, m.JobId, 0, f.Model()) // the scope's filters on what enters, as for training
		if err != nil {
			system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err.Error()))
			return
		}
		system.Root.Send(reply, p.testResult(j, m.JobId, mdl, from.Sender.Name, received))
	}()
}

// trainStreamed handles a task whose global model comes as a stream: pull it
// into a flat buffer (outside the heap, or spilled to disk), evaluate and
// train, then offer the update as a stream for the server to pull. Memory
// is the model (twice when training makes a new one), whatever its size.
func (p *Participant) trainStreamed(ctx actor.Context, m *hearthv1.TrainTask, j *joined, from bridge.Origin, received string) {
	reply, system := ctx.Sender(), ctx.ActorSystem()
	go func() {
		defer j.endRound()
		fail := func(code hearthv1.FailureCode, err error) { system.Root.Send(reply, failure(code, err.Error())) }
		global, got, err := p.receiveModel(j, from, m.GlobalStream, m.Layout)
		if err != nil {
			system.Root.Send(reply, failureOf(fmt.Errorf("global model: %w", err)))
			return
		}
		defer j.spare.Put(global) // after the update stream, which may be global itself, has ended
		bg := context.Background()
		p.cfg.Log.Info("global model received", "job", m.JobId, "round", m.Round, "bytes", got.Bytes, "ms", got.Duration.Milliseconds(), "resent", got.Resent, "corrupt", got.Corrupt)
		start := time.Now()
		res := &hearthv1.TrainResult{JobId: m.JobId, Round: m.Round}
		if j.val != nil {
			mt, err := trainer.Evaluate(j.spec, global.Model(), j.val)
			if err != nil {
				fail(hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL, err)
				return
			}
			res.Validation = metrics(mt)
		}
		// The scope's filters on what enters, as for a model sent inline:
		// training starts from what they make of it (a copy, when any).
		base, err := p.filterIncoming(j, m.JobId, m.Round, global.Model())
		if err != nil {
			fail(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err)
			return
		}
		update, samples := global, j.train.Rows()
		if j.spec.Kind != trainer.KindNoop { // a noop update is the global model itself: no copy
			spec := j.spec
			spec.Seed += m.Round
			trained, r, eps, err := p.trainPrivately(bg, j, m.JobId, m.Round, spec, base, j.train)
			if errors.Is(err, errBudget) {
				fail(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err)
				return
			}
			if err != nil {
				fail(hearthv1.FailureCode_FAILURE_CODE_TRAINING_FAILED, err)
				return
			}
			if update, err = p.streamedUpdate(j, m.JobId, m.Round, base, trained); err != nil {
				fail(codeOf(err), err)
				return
			}
			defer j.updates.Put(update)
			res.Epsilon = max(eps, epsilonOf(j)) // with what the chain's filters spent
			samples, res.TrainLoss = r.Samples, r.Loss
		} else if len(j.filters) > 0 || len(j.dataFilters) > 0 { // a noop update is the model it got, and the site's chains still see it
			if update, err = p.streamedUpdate(j, m.JobId, m.Round, base, base); err != nil {
				fail(codeOf(err), err)
				return
			}
			defer j.updates.Put(update)
		}
		res.TrainMicros = time.Since(start).Microseconds()
		res.Samples = int64(samples)
		executed := p.audit(auditor.Event{Action: "task.executed", JobID: m.JobId, Round: m.Round, PeerEvent: received,
			Detail: map[string]string{"samples": fmt.Sprint(samples), "bytes": fmt.Sprint(update.Size())}})
		out, err := p.offerUpdate(bg, j, from.Sender.Name, update)
		if err != nil {
			fail(hearthv1.FailureCode_FAILURE_CODE_STREAM_FAILED, fmt.Errorf("update: %w", err))
			return
		}
		res.UpdateStream = out.Manifest
		if err := p.outgoing(j.manifest, nil, res); err != nil { // the update itself has been offered: its figures only
			out.Cancel()
			// Cancel only asks: a chunk may still be read from the buffer,
			// which the deferred Put hands to the next round (or frees).
			<-out.Done()
			fail(hearthv1.FailureCode_FAILURE_CODE_FILTERED, err)
			return
		}
		res.AuditEvent = p.audit(auditor.Event{Action: "result.sent", JobID: m.JobId, Round: m.Round, Peer: from.Sender.Name, PeerEvent: executed})
		system.Root.Send(reply, res)
		// Serve the update until the server has pulled it all (or stalls);
		// the deferred Close calls free the buffers after that.
		if err := out.Wait(bg); err != nil {
			p.cfg.Log.Warn("update stream failed", "job", m.JobId, "round", m.Round, "err", err)
		}
	}()
}
