package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// workflow runs one FedAvg job: join the sites, then for each round send
// the global model to every joined site, fold the updates that arrive
// within the round timeout, and close the round when every site answered
// or timed out: with at least min_sites answers the weighted mean is the
// new global model, checkpointed before the next round starts; below
// quorum the job fails. No step waits longer than the round timeout.
//
// It keeps the round's bookkeeping only (who was asked, who answered, why
// sites were left out, the figures, audit, when to checkpoint): the global
// model, the sums and every stream's buffer belong to its aggregator, a
// child actor (aggregator.HoldingProps), which it asks what to send each
// site and hands each update to, inline or streamed alike.
type workflow struct {
	engine
	checkpoint *hearthv1.Model // global model to resume from, if any
	resumeBig  bool            // resume from a large (raw) checkpoint

	agg  *actor.PID
	root *actor.RootContext // tells agg of sites left out (onMiss has no context)
	// asking is set while a request to the aggregator is out whose answer
	// moves the job on (next waits for it); holding says what that Hold
	// was for ("initial model", "resume"), fresh that the new model is
	// checkpointed as round 0 before the first round.
	asking   bool
	holding  string
	fresh    bool
	streamed bool  // the global model travels as streams
	size     int64 // the global model's bytes
	offerTo  []string
	pulling  map[string]*hearthv1.TrainResult // the updates the aggregator pulls, by site
	// he is the job's homomorphic encryption (he.go); nil for a plain job.
	he *heState

	// The open round.
	started                 time.Time
	answered                []string
	trainLoss, trainWeight  float64
	trainSamples            int64
	val, test               meanMetrics // validation this round; the final test evaluation
	bytes, maxTrain         int64
	events                  map[string]string // site -> audit event of the task sent
	exchanged, checkpointed time.Duration     // the round's exchange and aggregation; its checkpoint
	siteRounds              map[string]*hearthv1.SiteRound
}

// newFedAvg makes a FedAvg workflow, resuming from checkpoint (a large
// one in the store when resumeBig) if set.
func newFedAvg(cfg *Config, rec *hearthv1.JobRecord, m *job.Manifest, targets []string, checkpoint *hearthv1.Model, resumeBig bool) *workflow {
	w := &workflow{engine: engine{cfg: cfg, rec: rec, manifest: m, targets: slices.Clone(targets)}, checkpoint: checkpoint,
		resumeBig: resumeBig}
	w.engine.next, w.engine.onMiss = w.next, w.missed
	return w
}

// missed stops what the aggregator streams with a site left out (its
// offered model, its update pull): no use now.
func (w *workflow) missed(site string) {
	if w.agg != nil {
		w.root.Send(w.agg, &aggregator.Withdraw{Site: site})
	}
}

func (w *workflow) Receive(ctx actor.Context) {
	if w.ended {
		if _, ok := ctx.Message().(*abortJob); ok {
			ctx.Respond(w.rec.Info)
		}
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		w.jobCtx, w.stopJob = context.WithCancel(context.Background())
		w.root = ctx.ActorSystem().Root
		w.agg = ctx.Spawn(w.aggregatorProps())
		w.rec.Info.Status = hearthv1.JobStatus_JOB_STATUS_RUNNING
		w.save()
		if w.manifest.HE != nil {
			var err error
			if w.he, err = newHEState(); err != nil {
				w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, "homomorphic encryption: "+err.Error())
				return
			}
		}
		w.join(ctx)
		if w.cfg.Reachable != nil {
			ctx.Send(ctx.Self(), &watchLinks{})
		}
	case *watchLinks:
		w.watchLinks(ctx)
	case *bridge.Reply:
		w.reply(ctx, m)
	case *bridge.Failed:
		w.failed(ctx, m)
	case *aggregator.Held:
		w.held(ctx, m)
	case *aggregator.Offered:
		w.offered(ctx, m)
	case *aggregator.StreamTaken:
		w.streamTaken(ctx, m)
	case *aggregator.StreamPulled:
		w.streamPulled(ctx, m)
	case *aggregator.Closed:
		w.closed(ctx, m)
	case *aggregator.Checkpointed:
		w.checkpointDone(ctx, m)
	case *retryJoin:
		if w.phase == joining {
			w.tryJoin(ctx)
		}
	case *abortJob:
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_ABORTED, m.reason)
		ctx.Respond(w.rec.Info)
	case *actor.Stopped, *actor.Restarting:
		w.stopJob() // stopped without finishing (its parent stopped, a panic): its work ends too
	}
}

// watchLinks leaves out at once every site the workflow waits on whose link
// to the hub is down, and looks again shortly.
func (w *workflow) watchLinks(ctx actor.Context) {
	lost := w.dropUnreachable()
	for site := range w.pulling { // its update stream ends now, not at the stall timeout
		if !w.reachable(site) {
			ctx.Send(w.agg, &aggregator.Withdraw{Site: site})
		}
	}
	if lost {
		w.next(ctx)
	}
	self, system := ctx.Self(), ctx.ActorSystem()
	time.AfterFunc(watchEvery, func() { system.Root.Send(self, &watchLinks{}) })
}

func (w *workflow) reply(ctx actor.Context, r *bridge.Reply) {
	site := r.From.Name
	if !w.pending[site] {
		return // late or duplicate
	}
	delete(w.pending, site)
	switch m := r.Msg.(type) {
	case *hearthv1.JobJoined:
		if w.phase != joining {
			w.refuse(site, "result.refused", "a JobJoined answering a task: commitments are made when joining", m.AuditEvent)
			break
		}
		if w.he != nil {
			if err := w.takeKey(site, m.SealingKey); err != nil {
				w.refuse(site, "join.refused", err.Error(), m.AuditEvent)
				break
			}
		}
		w.joined(ctx, site, m)
	case *hearthv1.HECommitted, *hearthv1.HEShared, *hearthv1.HEReady, *hearthv1.HERevealed, *hearthv1.HEDecryptionShare:
		if w.he == nil {
			w.refuse(site, "result.refused", fmt.Sprintf("%T in a job without homomorphic encryption", m), "")
			break
		}
		w.heAnswer(site, m)
	case *hearthv1.TrainResult:
		w.result(ctx, site, m)
	case *hearthv1.EvaluateResult:
		w.evaluated(ctx, site, m)
	default:
		w.refuse(site, "result.refused", fmt.Sprintf("unexpected answer %T", r.Msg), "")
	}
	w.next(ctx)
}

// clipped records that the aggregator clipped a site's update to the
// job's bound: audited, and shown in the round's per-site figures.
func (w *workflow) clipped(site, reason string) {
	w.audit(auditor.Event{Action: "update.clipped", JobID: w.id(), Round: w.round, Peer: site, Detail: map[string]string{"reason": reason}})
	w.cfg.Log.Warn("update clipped", "job", w.id(), "round", w.round, "site", site, "reason", reason)
	if r := w.siteRounds[site]; r != nil {
		r.Clipped = reason
	}
}

// next moves on once every site of the phase has answered or timed out,
// and the aggregator has answered what the workflow asked.
func (w *workflow) next(ctx actor.Context) {
	if w.asking || len(w.pending) > 0 || len(w.awaiting) > 0 || len(w.pulling) > 0 {
		return
	}
	switch w.phase {
	case joining:
		if err := w.settleJoined(); err != nil {
			w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
			return
		}
		if n := len(w.rec.Joined); n < w.manifest.MinSites {
			w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("only %d of %d sites joined (min_sites %d): %s",
				n, len(w.targets), w.manifest.MinSites, strings.Join(w.reasons, "; ")))
			return
		}
		if w.he != nil { // the job's key first; then the model
			if err := w.startKeying(ctx); err != nil {
				w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
			}
			return
		}
		if w.manifest.Trainer.Custom() && w.initials != nil && w.initials.layout == nil { // the sites' trainers' layout first (initial.go)
			w.asking = true
			w.fetchLayout(ctx, w.layoutHolders(), func(err error) {
				w.asking = false
				if err == nil && len(w.rec.Joined) < w.manifest.MinSites {
					err = fmt.Errorf("only %d of %d sites joined (min_sites %d): %s", len(w.rec.Joined), len(w.targets), w.manifest.MinSites, strings.Join(w.reasons, "; "))
				}
				if err != nil {
					w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
					return
				}
				w.beginModel(ctx)
			})
			return
		}
		w.beginModel(ctx)
	case keying:
		w.keyingNext(ctx)
	case training:
		if len(w.answered) < w.manifest.MinSites {
			w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %d of %d sites answered (min_sites %d): %s",
				w.round, len(w.answered), len(w.rec.Joined), w.manifest.MinSites, strings.Join(w.reasons, "; ")))
			return
		}
		if w.he != nil { // the updates revealed and their sum decrypted first
			w.startReveal(ctx)
			return
		}
		w.phase = closing
		w.askAggregator(ctx, &aggregator.Close{Round: w.round})
	case revealing:
		w.revealNext(ctx)
	case decrypting:
		w.decryptNext(ctx)
	case evaluating:
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FINISHED, "")
	}
}

// beginModel has the aggregator hold the job's first global model.
func (w *workflow) beginModel(ctx actor.Context) {
	hold, err := w.initialModel()
	if err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
		return
	}
	w.askAggregator(ctx, hold)
}

// initialModel says what the aggregator is to hold first: the checkpoint
// to resume from, or a fresh model shaped by what the sites reported of
// their data (fresh: checkpointed as round 0 once held). A model larger
// than one envelope is streamed.
func (w *workflow) initialModel() (*aggregator.Hold, error) {
	w.holding, w.fresh = "initial model", false
	if w.resumeBig {
		w.resumeBig, w.holding = false, "resume"
		return &aggregator.Hold{Restore: true, Round: w.rec.Info.CompletedRounds}, nil
	}
	if w.manifest.Trainer.Custom() { // the sites' trainers made it (initial.go)
		return w.initialFromSites()
	}
	spec := w.manifest.Trainer.Spec()
	if layout, err := trainer.Layout(spec, int(w.shapeFeatures), int(w.shapeLabels)); err == nil && model.LayoutBytes(layout) > job.InlineLimit {
		if w.cfg.Streams == nil {
			return nil, fmt.Errorf("the model is %d bytes, more than one envelope carries (%d), and this server streams nothing", model.LayoutBytes(layout), job.InlineLimit)
		}
		w.fresh = true
		if spec.Kind == trainer.KindNoop { // made by the aggregator in its own buffer
			return &aggregator.Hold{Layout: layout, Streamed: true, Fill: trainer.NoopValues}, nil
		}
		m, err := trainer.Init(spec, int(w.shapeFeatures), int(w.shapeLabels))
		if err != nil {
			return nil, fmt.Errorf("initial model: %w", err)
		}
		return &aggregator.Hold{Model: m, Streamed: true}, nil
	}
	if w.checkpoint != nil {
		m, err := job.FromWire(w.checkpoint)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		w.checkpoint = nil
		return &aggregator.Hold{Model: m}, nil
	}
	m, err := trainer.Init(spec, int(w.shapeFeatures), int(w.shapeLabels))
	if err != nil {
		return nil, fmt.Errorf("initial model: %w", err)
	}
	w.fresh = true
	return &aggregator.Hold{Model: m}, nil
}

// initialFromSites is a job with its own trainer's first model: its
// checkpoint when resumed (of the layout the sites' trainers have now),
// else one the server makes from that layout (initial.go).
func (w *workflow) initialFromSites() (*aggregator.Hold, error) {
	if w.checkpoint != nil {
		m, err := job.FromWire(w.checkpoint)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		if w.initials == nil || job.LayoutDigest(model.LayoutOf(m)) != w.initials.won {
			return nil, errors.New("checkpoint: its layout is not the one the joined sites' trainers have now")
		}
		w.checkpoint = nil
		return &aggregator.Hold{Model: m}, nil
	}
	m, err := w.initialFromLayout()
	if err != nil {
		return nil, err
	}
	w.fresh = true
	return &aggregator.Hold{Model: m}, nil
}

// held starts the job once the aggregator holds its first global model: a
// fresh one is checkpointed as round 0 first.
func (w *workflow) held(ctx actor.Context, h *aggregator.Held) {
	if w.phase != joining || !w.asking {
		return
	}
	w.asking = false
	if h.Err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("%s: %v", w.holding, h.Err))
		return
	}
	w.streamed, w.size = h.Streamed, h.Size
	if w.fresh {
		w.rec.Info.CompletedRounds, w.rec.Info.History = 0, nil
		w.askAggregator(ctx, &aggregator.Checkpoint{Round: 0})
		return
	}
	w.startRound(ctx, w.rec.Info.CompletedRounds+1)
}

// checkpointDone goes on once the aggregator wrote a checkpoint: the
// initial model's starts the first round, a round's closes it.
func (w *workflow) checkpointDone(ctx actor.Context, c *aggregator.Checkpointed) {
	if !w.asking {
		return
	}
	w.asking = false
	if c.Err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, c.Err.Error())
		return
	}
	if w.phase == joining {
		w.save()
		w.startRound(ctx, w.rec.Info.CompletedRounds+1)
		return
	}
	if w.phase != closing || c.Round != w.round {
		return
	}
	w.checkpointed = time.Since(w.started) - w.exchanged
	if w.streamed {
		w.cfg.Log.Info("checkpoint written", "job", w.id(), "round", w.round, "bytes", c.Bytes, "ms", w.checkpointed.Milliseconds())
	}
	w.roundClosed(ctx)
}

// startRound asks the aggregator to begin the round on the global model
// and to offer it to every reachable site; offered sends the tasks.
func (w *workflow) startRound(ctx actor.Context, round int64) {
	w.phase, w.round, w.pending = training, round, map[string]bool{}
	w.started, w.answered, w.missing, w.reasons = time.Now(), nil, nil, nil
	w.trainLoss, w.trainWeight, w.trainSamples, w.val, w.bytes, w.maxTrain = 0, 0, 0, meanMetrics{}, 0, 0
	w.events, w.siteRounds, w.pulling = map[string]string{}, map[string]*hearthv1.SiteRound{}, map[string]*hearthv1.TrainResult{}
	w.offerTo = w.reachableSites()
	if w.he != nil {
		w.he.beginRound()
	}
	w.askAggregator(ctx, &aggregator.Begin{Round: round, Rule: w.manifest.Aggregation, Sites: w.offerTo})
}

// reachableSites are the joined sites whose link is up; the others are
// left out.
func (w *workflow) reachableSites() []string {
	var out []string
	for _, s := range w.sites() {
		if !w.reachable(s) {
			w.miss(s, "not connected to the hub")
			continue
		}
		out = append(out, s)
	}
	return out
}

// offered sends each site its task with the global model the aggregator
// offered it: the round's TrainTask, or the final EvaluateTask.
func (w *workflow) offered(ctx actor.Context, o *aggregator.Offered) {
	if !w.asking || (w.phase != training && w.phase != evaluating) {
		return
	}
	w.asking = false
	if w.phase == evaluating {
		w.evaluate(ctx, o)
		return
	}
	if o.Err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, o.Err))
		return
	}
	var wire *hearthv1.Model
	var layout *hearthv1.ModelLayout
	size := o.Size
	if o.Model != nil {
		wire = job.ToWire(o.Model)
		size = int64(proto.Size(wire))
	} else {
		layout = job.LayoutToWire(o.Layout)
	}
	for _, s := range w.offerTo {
		if reason, failed := o.Failed[s]; failed {
			w.miss(s, "offer of the global model: "+reason)
			continue
		}
		task := &hearthv1.TrainTask{JobId: w.id(), Round: w.round, Global: wire}
		if w.he != nil && w.he.proof != nil {
			task.HeProof = w.he.proof // the previous round's decryption: each site checks the global model is its mean
			w.bytes += int64(proto.Size(task.HeProof))
		}
		ev := auditor.Event{Action: "task.sent", JobID: w.id(), Round: w.round, Peer: s}
		if wire == nil {
			task.GlobalStream, task.Layout = o.Manifest[s], layout
			ev.Detail = map[string]string{"stream": task.GlobalStream.StreamId, "bytes": fmt.Sprint(o.Size)}
		}
		task.AuditEvent = w.audit(ev)
		w.events[s] = task.AuditEvent
		w.bytes += size
		w.ask(ctx, s, task)
	}
	w.next(ctx) // when no site was reachable, the round closes now
}

func (w *workflow) result(ctx actor.Context, site string, m *hearthv1.TrainResult) {
	if w.phase != training || m.JobId != w.id() || m.Round != w.round {
		w.miss(site, fmt.Sprintf("result for %q round %d during round %d", clip(m.JobId), m.Round, w.round))
		return
	}
	if reason := checkResult(m, commitmentOf(w.rec.Info, site)); reason != "" {
		w.refuse(site, "result.refused", reason, m.AuditEvent)
		return
	}
	if w.he != nil {
		if err := w.heResult(site, m); err != nil {
			w.refuse(site, "result.refused", err.Error(), m.AuditEvent)
			return
		}
		w.bytes += int64(proto.Size(m.Encrypted))
		w.audit(auditor.Event{Action: "result.received", JobID: w.id(), Round: w.round, Peer: site, PeerEvent: m.AuditEvent,
			Detail: map[string]string{"task": w.events[site], "encrypted": fmt.Sprint(len(m.Encrypted.Payload))}})
		w.answered = append(w.answered, site)
		w.account(site, m)
		return
	}
	if m.Encrypted != nil {
		w.refuse(site, "result.refused", "an encrypted update in a job without homomorphic encryption", m.AuditEvent)
		return
	}
	if m.UpdateStream != nil {
		w.pull(ctx, site, m)
		return
	}
	w.bytes += int64(proto.Size(m.Update))
	update, err := job.FromWire(m.Update)
	if err != nil {
		w.refuse(site, "result.refused", err.Error(), m.AuditEvent)
		return
	}
	detail := map[string]string{"task": w.events[site]}
	if len(m.Excluded) > 0 {
		detail["excluded"] = envelope.Clip(strings.Join(m.Excluded, ","), maxReason)
	}
	w.audit(auditor.Event{Action: "result.received", JobID: w.id(), Round: w.round, Peer: site, PeerEvent: m.AuditEvent, Detail: detail})
	ctx.Send(w.agg, &aggregator.Fold{Round: w.round, Site: site, Update: update, Weight: w.weight(site, m), Excluded: m.Excluded})
	w.answered = append(w.answered, site)
	w.account(site, m)
}

// capMetric is the weight of a site's reported metrics in the job's
// average: their sample count, at most the site's capped share (caps).
func capMetric(caps map[string]float64, site string, m *hearthv1.Metrics) float64 {
	if m == nil {
		return 0
	}
	return min(caps[site], float64(m.Samples))
}

// weight is a site's FedAvg weight this round: its committed, capped
// weight, or less when it trained on fewer samples than it committed.
func (w *workflow) weight(site string, m *hearthv1.TrainResult) float64 {
	return min(w.weights[site], float64(m.Samples))
}

// account adds a site's checked training result to the round's figures.
func (w *workflow) account(site string, m *hearthv1.TrainResult) {
	w.trainLoss += m.TrainLoss * w.weight(site, m)
	w.trainSamples += m.Samples
	w.trainWeight += w.weight(site, m)
	w.val.add(m.Validation, capMetric(w.valWeights, site, m.Validation))
	w.maxTrain = max(w.maxTrain, m.TrainMicros)
	w.siteRounds[site] = &hearthv1.SiteRound{Site: site, Weight: w.weight(site, m), TrainLoss: m.TrainLoss, Validation: m.Validation, Epsilon: m.Epsilon}
}

// closed takes the aggregator's verdicts on the round's updates and, with
// quorum, has the new global model checkpointed.
func (w *workflow) closed(ctx actor.Context, c *aggregator.Closed) {
	if w.phase != closing || c.Round != w.round || !w.asking {
		return
	}
	w.asking = false
	if reason := c.Refused[heSum]; reason != "" {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: the decrypted mean refused by the aggregator: %s", w.round, reason))
		return
	}
	for site, reason := range c.Refused {
		w.answered = slices.DeleteFunc(w.answered, func(s string) bool { return s == site })
		w.refuse(site, "update.refused", "update refused by the aggregator: "+reason, "")
	}
	for site, reason := range c.Clipped {
		w.clipped(site, reason)
	}
	for site, reason := range c.Screened {
		w.audit(auditor.Event{Action: "update.screened", JobID: w.id(), Round: w.round, Peer: site, Detail: map[string]string{"reason": reason}})
		if r := w.siteRounds[site]; r != nil {
			r.Clipped = reason
		}
	}
	if c.Err != nil && w.streamed {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, c.Err))
		return
	}
	if c.Err != nil || len(w.answered) < w.manifest.MinSites {
		reason := fmt.Sprintf("round %d: %d of %d updates aggregated (min_sites %d): %s", w.round, len(w.answered),
			len(w.rec.Joined), w.manifest.MinSites, strings.Join(w.reasons, "; "))
		if c.Err != nil {
			reason += ": " + c.Err.Error()
		}
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, reason)
		return
	}
	w.exchanged = time.Since(w.started)
	w.askAggregator(ctx, &aggregator.Checkpoint{Round: w.round})
}

// roundClosed records the closed round (its global model checkpointed) and
// moves on to the next round or the evaluation.
func (w *workflow) roundClosed(ctx actor.Context) {
	sum := &hearthv1.RoundSummary{Round: w.round, Answered: sorted(w.answered), Missing: sorted(w.missing),
		BytesMoved: w.bytes, DurationMicros: w.exchanged.Microseconds(), MaxTrainMicros: w.maxTrain,
		CheckpointMicros: w.checkpointed.Microseconds()}
	if w.trainWeight > 0 {
		sum.TrainLoss = w.trainLoss / w.trainWeight
	}
	sum.Validation = w.val.mean()
	for _, site := range sum.Answered {
		if r := w.siteRounds[site]; r != nil {
			sum.Sites = append(sum.Sites, r)
		}
	}
	w.rec.Info.History = append(w.rec.Info.History, sum)
	w.rec.Info.CompletedRounds = w.round
	w.save()
	w.audit(auditor.Event{Action: "round.closed", JobID: w.id(), Round: w.round,
		Detail: map[string]string{"answered": strings.Join(sum.Answered, ","), "missing": strings.Join(sum.Missing, ",")}})
	w.cfg.Log.Info("round closed", "job", w.id(), "round", w.round, "answered", len(sum.Answered), "missing", sum.Missing,
		"train_loss", sum.TrainLoss, "val_accuracy", sum.GetValidation().GetAccuracy(), "ms", sum.DurationMicros/1000)

	if w.round < int64(w.manifest.Rounds) {
		w.startRound(ctx, w.round+1)
		return
	}
	if !w.manifest.Evaluation.Test {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FINISHED, "")
		return
	}
	w.phase, w.pending, w.missing, w.reasons = evaluating, map[string]bool{}, nil, nil
	w.test, w.rec.Info.SiteTest = meanMetrics{}, nil
	w.offerTo = w.reachableSites()
	w.askAggregator(ctx, &aggregator.Offer{Sites: w.offerTo})
}

// evaluate asks each site to test the final model the aggregator offered
// it, inline or as a stream.
func (w *workflow) evaluate(ctx actor.Context, o *aggregator.Offered) {
	if o.Err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("test evaluation: %v", o.Err))
		return
	}
	var wire *hearthv1.Model
	var layout *hearthv1.ModelLayout
	if o.Model != nil {
		wire = job.ToWire(o.Model)
	} else {
		layout = job.LayoutToWire(o.Layout)
	}
	for _, s := range w.offerTo {
		if reason, failed := o.Failed[s]; failed {
			w.miss(s, "offer of the final model: "+reason)
			continue
		}
		t := &hearthv1.EvaluateTask{JobId: w.id(), Model: wire}
		if w.he != nil {
			t.HeProof = w.he.proof // the last round's decryption, which the final model is the mean of
		}
		if wire == nil {
			t.ModelStream, t.Layout = o.Manifest[s], layout
		}
		t.AuditEvent = w.audit(auditor.Event{Action: "eval.sent", JobID: w.id(), Peer: s})
		w.ask(ctx, s, t)
	}
	w.next(ctx)
}

func (w *workflow) evaluated(_ actor.Context, site string, m *hearthv1.EvaluateResult) {
	if w.phase != evaluating || m.Test == nil || m.Test.Samples < 1 {
		w.miss(site, "no test metrics")
		return
	}
	c := commitmentOf(w.rec.Info, site)
	if c == nil {
		w.refuse(site, "result.refused", "no commitment for this site", m.AuditEvent)
		return
	}
	if reason := checkMetrics("test", m.Test, c.TestSamples); reason != "" {
		w.refuse(site, "result.refused", reason, m.AuditEvent)
		return
	}
	w.audit(auditor.Event{Action: "result.received", JobID: w.id(), Peer: site, PeerEvent: m.AuditEvent})
	w.test.add(m.Test, capMetric(w.testWeights, site, m.Test))
	w.rec.Info.Test = w.test.mean()
	w.rec.Info.SiteTest = append(w.rec.Info.SiteTest, &hearthv1.SiteMetrics{Site: site, Metrics: m.Test})
	sort.Slice(w.rec.Info.SiteTest, func(i, j int) bool { return w.rec.Info.SiteTest[i].Site < w.rec.Info.SiteTest[j].Site })
}

// finish ends the job, once: status stored, sites told, the job's context
// cancelled (the aggregator's streams end), actor stopped (and with it
// the aggregator, which then releases its buffers).
func (w *workflow) finish(ctx actor.Context, status hearthv1.JobStatus, reason string) {
	w.end(ctx, status, reason)
	ctx.Stop(ctx.Self())
}

// meanMetrics averages metrics over sites, each weighted by its sample
// count capped as its FedAvg weight is (capMetric), so that no site's
// claim decides the job's figures alone.
type meanMetrics struct {
	loss, acc, weight float64
	samples           int64
}

func (a *meanMetrics) add(m *hearthv1.Metrics, weight float64) {
	if m == nil || m.Samples < 1 || !(weight > 0) {
		return
	}
	a.loss += m.Loss * weight
	a.acc += m.Accuracy * weight
	a.weight += weight
	a.samples += m.Samples
}

// mean is the weighted mean, nil when nothing was added.
func (a meanMetrics) mean() *hearthv1.Metrics {
	if a.weight == 0 {
		return nil
	}
	return &hearthv1.Metrics{Samples: a.samples, Loss: a.loss / a.weight, Accuracy: a.acc / a.weight}
}
