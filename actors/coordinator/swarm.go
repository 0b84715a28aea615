package coordinator

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// swarmFlow runs one swarm job. The server coordinates and never holds
// a weight: it joins the sites (their commitments and sealing keys), then
// for each round asks every site that is up for its part in one attempt.
// The rotation (actors/swarm) names the attempt's aggregator; the members
// (the sites that hold the basis model) train and send their updates
// sealed to it; it folds them and sends the new model sealed to every
// holder, and its answer closes the round.
//
// Failover: an aggregator that fails its attempt (no answer within the
// round timeout, its link down, an error) is left out and the round is run
// again, from the same basis, by the next site in the rotation. A site that
// fails is left out and, once it is back, joins again at the next round
// (a holder at first, a member once it holds the global model). The job
// fails only when fewer than min_sites members remain, or no eligible
// aggregator is up, with the reason.
type swarmFlow struct {
	engine
	rotation swarm.Rotation
	eligible []string
	keys     map[string]*hearthv1.SealingKey // each joined site's binding
	out      map[string]string               // sites left out for now, with the reason
	holds    map[string]bool                 // the sites that hold the basis model
	basis    roundKey

	// The open attempt, and the key its answers carry (the evaluation's
	// differs from the last round's, whose late answers are dropped).
	attempt int64
	askKey  roundKey
	agg     string
	aggDone bool
	// The aggregator's account, once it answered; the round closes when
	// the contributors' own answers are in too.
	aggregated *hearthv1.SwarmAggregated
	members    []string
	holders    []string
	trained    map[string]*hearthv1.SwarmTrained
	confirmed  map[string]string // the digest of the new model each holder holds
	// attemptStarted is when the open attempt's tasks went out.
	attemptStarted time.Time
	sealMicros     int64 // the slowest holder's encryption and decryption (wall time)
	sealCPUMicros  int64 // that holder's CPU time in them
	failovers      []string
	started        time.Time
	rejoining      map[string]bool
	test           meanMetrics
	evaluated      []string // the sites asked to evaluate the final model

	// Attested placement (placement.go): the hosts that joined, with
	// their keys; the answers awaited; why each host did not join; the
	// sites that accept each host, and each site's reasons for those it
	// does not; the sites left out of the job for accepting none.
	hosts       map[string]*hearthv1.SealingKey
	placing     map[string]bool
	hostReasons map[string][]string
	acceptedBy  map[string]map[string]bool
	siteReasons map[string]string
	placedOut   map[string]bool
	// refusedHost are the open attempt's refusals of its host's evidence.
	refusedHost []string
}

// roundKey is one attempt at one round; round 0 is the initial model.
type roundKey struct{ round, attempt int64 }

// answered is an answer to one of the open attempt's tasks, or a failure.
type answered struct {
	site string
	at   roundKey
	msg  proto.Message
	err  error
}

// confirmDue ends the wait for the holders' confirmations of an attempt's
// new model.
type confirmDue struct{ at roundKey }

// confirmGrace is how long the holders have to confirm the new model
// after the aggregator answered, the attempt having taken so far: the
// model is on its way by then, and takes about as long to reach them as
// the updates took to reach the aggregator (a large model's streams), or
// a tenth of the round timeout (200 ms..5 s) for small ones; plus lag, the
// time one slow holder may hold a streamed model's cast back before the
// aggregator splits it off (bus/stream), so that the others are not left
// out for it. A holder that is slower is left out of the round (it
// catches up).
func confirmGrace(roundTimeout, sofar, lag time.Duration) time.Duration {
	return max(min(max(roundTimeout/10, 200*time.Millisecond), 5*time.Second), sofar) + lag
}

// castLag is the lag confirmGrace allows for: a streamed model's cast, on
// the stream timings every node runs with (bus/node leaves them at their
// defaults); none for a model that travels inline.
func (s *swarmFlow) castLag() time.Duration {
	if !s.streamed() {
		return 0
	}
	return stream.Config{}.CastLag()
}

// streamed says whether the job's models are over one envelope, and so
// travel as streams (a layout the server cannot tell counts as streamed).
func (s *swarmFlow) streamed() bool {
	layout, err := trainer.Layout(s.manifest.Trainer.Spec(), int(s.shapeFeatures), int(s.shapeLabels))
	return err != nil || model.LayoutBytes(layout) > job.InlineLimit
}

// rejoined is a left-out site's answer to a new JoinJob.
type rejoined struct {
	site string
	msg  proto.Message
	err  error
}

func newSwarmFlow(cfg *Config, rec *hearthv1.JobRecord, m *job.Manifest, targets []string) *swarmFlow {
	s := &swarmFlow{engine: engine{cfg: cfg, rec: rec, manifest: m, targets: slices.Clone(targets)},
		keys: map[string]*hearthv1.SealingKey{}, out: map[string]string{}, holds: map[string]bool{}, rejoining: map[string]bool{},
		placedOut: map[string]bool{}}
	s.engine.next = s.next
	return s
}

func (s *swarmFlow) Receive(ctx actor.Context) {
	if s.ended {
		if _, ok := ctx.Message().(*abortJob); ok {
			ctx.Respond(s.rec.Info)
		}
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.jobCtx, s.stopJob = context.WithCancel(context.Background())
		s.rec.Info.Status = hearthv1.JobStatus_JOB_STATUS_RUNNING
		s.rec.Info.Workflow = job.WorkflowSwarm
		s.rec.Info.CompletedRounds, s.rec.Info.History = 0, nil
		s.save()
		s.join(ctx)
		if s.cfg.Reachable != nil {
			ctx.Send(ctx.Self(), &watchLinks{})
		}
	case *watchLinks:
		if s.dropUnreachable() {
			s.next(ctx)
		}
		self, system := ctx.Self(), ctx.ActorSystem()
		time.AfterFunc(watchEvery, func() { system.Root.Send(self, &watchLinks{}) })
	case *retryJoin:
		if s.phase == joining {
			s.tryJoin(ctx)
		}
	case *bridge.Reply: // the join phase's answers
		if !s.pending[m.From.Name] {
			return
		}
		delete(s.pending, m.From.Name)
		if j, ok := m.Msg.(*hearthv1.JobJoined); ok && s.phase == joining {
			s.joinedSwarm(m.From.Name, j, false)
		} else {
			s.refuse(m.From.Name, "result.refused", fmt.Sprintf("unexpected answer %T", m.Msg), "")
		}
		s.next(ctx)
	case *bridge.Failed:
		if s.pending[m.To] && s.phase == joining {
			delete(s.pending, m.To)
			s.miss(m.To, m.Err.Error())
			s.next(ctx)
		}
	case *answered:
		s.answered(ctx, m)
	case *rejoined:
		s.rejoined(ctx, m)
	case *confirmDue:
		if m.at == s.askKey && s.phase == training && s.aggDone {
			for site := range s.pending {
				delete(s.pending, site)
				s.miss(site, "no confirmation of the new model in time")
			}
			s.next(ctx)
		}
	case *abortJob:
		s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_ABORTED, m.reason)
		ctx.Respond(s.rec.Info)
	case *actor.Stopped, *actor.Restarting:
		s.stopJob()
	}
}

// joinedSwarm takes a site's commitment and checks its sealing key
// binding; again says it re-joined a running job.
func (s *swarmFlow) joinedSwarm(site string, m *hearthv1.JobJoined, again bool) bool {
	if _, err := sealing.VerifyKey(m.SealingKey, s.cfg.Trust, s.id(), site, s.cfg.Now()); err != nil {
		s.refuse(site, "join.refused", err.Error(), m.AuditEvent)
		return false
	}
	if again {
		if reason := checkCommitment(m); reason != "" {
			s.refuse(site, "join.refused", reason, m.AuditEvent)
			return false
		}
		if m.Features != s.shapeFeatures || m.Classes != s.shapeLabels {
			s.refuse(site, "join.refused", fmt.Sprintf("local data has %v; the job's data has %v",
				dataShape{m.Features, m.Classes}, dataShape{s.shapeFeatures, s.shapeLabels}), m.AuditEvent)
			return false
		}
		s.rec.Info.Commitments = slices.DeleteFunc(s.rec.Info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == site })
		s.joined(nil, site, m)
		slices.SortFunc(s.rec.Info.Commitments, func(a, b *hearthv1.SiteCommitment) int { return strings.Compare(a.Site, b.Site) })
		s.weights = aggregator.CappedWeights(s.rec.Joined, s.maxShare())
	} else {
		s.joined(nil, site, m)
		if _, ok := s.rec.Joined[site]; !ok {
			return false // its commitment was refused
		}
	}
	s.keys[site] = m.SealingKey
	return true
}

// next moves on once the join phase, or the evaluation, has every answer;
// during training it looks after the round's aggregator.
func (s *swarmFlow) next(ctx actor.Context) {
	switch s.phase {
	case joining:
		if len(s.pending) > 0 || len(s.awaiting) > 0 {
			return
		}
		if err := s.settleJoined(); err != nil {
			s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
			return
		}
		if n := len(s.rec.Joined); n < s.manifest.MinSites {
			s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("only %d of %d sites joined (min_sites %d): %s",
				n, len(s.targets), s.manifest.MinSites, strings.Join(s.reasons, "; ")))
			return
		}
		if s.manifest.Attested() {
			s.place(ctx) // the hosts the sites accept are the rotation
			return
		}
		eligible := s.manifest.Aggregators
		if len(eligible) == 0 && s.manifest.Sites[0] != job.AllSites {
			eligible = s.manifest.Sites
		}
		if len(eligible) == 0 {
			eligible = s.sites()
		}
		s.begin(ctx, eligible)
	case training:
		switch {
		case s.aggDone && len(s.pending) == 0: // the contributors' figures are in
			s.roundClosed(ctx, s.aggregated)
		case !s.aggDone && !s.pending[s.agg]:
			s.failover(ctx, s.agg+": "+s.lastReason(s.agg), true)
		}
	case evaluating:
		if len(s.pending) == 0 {
			s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FINISHED, "")
		}
	}
}

// begin starts the first round with the rotation of eligible.
func (s *swarmFlow) begin(ctx actor.Context, eligible []string) {
	s.eligible = eligible
	s.rotation = swarm.NewRotation(s.rec.Job.Nonce, s.eligible)
	for site := range s.rec.Joined {
		s.holds[site] = s.out[site] == "" // everyone makes the initial model
	}
	for h := range s.hosts {
		s.holds[h] = true // an aggregation host too
	}
	s.audit(auditor.Event{Action: "swarm.rotation", JobID: s.id(), Detail: map[string]string{"order": strings.Join(s.rotation, ",")}})
	s.startRound(ctx, 1)
}

// lastReason is the newest reason site was left out for.
func (s *swarmFlow) lastReason(site string) string {
	for i := len(s.reasons) - 1; i >= 0; i-- {
		if r, ok := strings.CutPrefix(s.reasons[i], site+": "); ok {
			return r
		}
	}
	return "no answer"
}

func (s *swarmFlow) startRound(ctx actor.Context, round int64) {
	s.phase, s.round, s.attempt, s.failovers = training, round, 0, nil
	s.missing, s.reasons, s.started = nil, nil, time.Now()
	s.rejoin(ctx)
	s.startAttempt(ctx)
}

// up says why a joined site cannot take part now, "" if it can.
func (s *swarmFlow) up(site string) string {
	switch {
	case s.out[site] != "":
		return "left out: " + s.out[site]
	case s.isHost(site):
	case s.rec.Joined[site] == 0:
		return "not joined"
	case !s.reachable(site):
		return "not connected to the hub"
	}
	return ""
}

// startAttempt asks every site that is up for its part in the round's
// current attempt, skipping aggregators that cannot serve.
func (s *swarmFlow) startAttempt(ctx actor.Context) {
	for ; s.attempt < int64(len(s.rotation)); s.attempt++ {
		agg := s.rotation.Aggregator(s.round, s.attempt)
		why := s.up(agg)
		if why == "" && !s.holds[agg] {
			why = "does not hold the global model"
		}
		if why == "" {
			s.agg = agg
			break
		}
		s.failovers = append(s.failovers, envelope.Clip(agg+": "+why, maxReason))
		s.audit(auditor.Event{Action: "round.skipped", JobID: s.id(), Round: s.round, Peer: agg,
			Detail: map[string]string{"attempt": fmt.Sprint(s.attempt), "reason": why}})
	}
	if s.attempt >= int64(len(s.rotation)) {
		s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: no eligible aggregator could serve: %s",
			s.round, strings.Join(s.failovers, "; ")))
		return
	}
	// The aggregators of the round's earlier attempts trained nothing
	// that counts and are no members now, even one that is up and was not
	// blamed (its holders fell silent): every site checks that a skipped
	// aggregator is no member. They still hold the model the attempt makes.
	skipped := map[string]bool{}
	for a := int64(0); a < s.attempt; a++ {
		skipped[s.rotation.Aggregator(s.round, a)] = true
	}
	s.members, s.holders = nil, nil
	for _, site := range s.sites() {
		if s.up(site) != "" {
			continue
		}
		s.holders = append(s.holders, site)
		if s.holds[site] && !skipped[site] {
			s.members = append(s.members, site)
		}
	}
	if s.isHost(s.agg) { // it holds the model it makes; it trains nothing
		s.holders = append(s.holders, s.agg)
	}
	if len(s.members) < s.manifest.MinSites {
		s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %d sites hold the global model and are up (min_sites %d): %s",
			s.round, len(s.members), s.manifest.MinSites, strings.Join(append(s.failovers, s.outReasons()...), "; ")))
		return
	}
	task := &hearthv1.SwarmTask{JobId: s.id(), Round: s.round, Attempt: s.attempt, Aggregator: s.agg,
		Members: s.members, Holders: s.holders, Eligible: slices.Sorted(slices.Values(s.rotation)),
		Weights: map[string]float64{}, BasisRound: s.basis.round, BasisAttempt: s.basis.attempt,
		Features: s.shapeFeatures, Classes: s.shapeLabels}
	for _, site := range s.holders {
		task.Keys = append(task.Keys, s.keys[site])
	}
	for _, site := range s.members {
		task.Weights[site] = s.weights[site]
	}
	s.pending, s.aggDone, s.trained, s.confirmed, s.sealMicros, s.sealCPUMicros = map[string]bool{}, false, map[string]*hearthv1.SwarmTrained{}, map[string]string{}, 0, 0
	s.refusedHost = nil
	at := roundKey{s.round, s.attempt}
	s.askKey, s.attemptStarted = at, time.Now()
	s.cfg.Log.Info("swarm round", "job", s.id(), "round", s.round, "attempt", s.attempt, "aggregator", s.agg,
		"members", len(s.members), "holders", len(s.holders))
	// One audit event for the attempt's tasks, which every site's record
	// of its task refers to; the aggregator is asked first, so that it is
	// ready when the members' updates come.
	task.AuditEvent = s.audit(auditor.Event{Action: "task.sent", JobID: s.id(), Round: s.round, Peer: s.agg,
		Detail: map[string]string{"attempt": fmt.Sprint(s.attempt), "aggregator": s.agg, "sites": strings.Join(s.holders, ",")}})
	s.askFor(ctx, s.agg, task, at)
	for _, site := range s.holders {
		if site != s.agg {
			s.askFor(ctx, site, task, at)
		}
	}
}

func (s *swarmFlow) outReasons() []string {
	var out []string
	for _, site := range slices.Sorted(maps.Keys(s.out)) {
		out = append(out, site+": "+s.out[site])
	}
	return out
}

// askFor asks site, the answer tied to attempt at (an answer to an older
// attempt is dropped when it comes).
func (s *swarmFlow) askFor(ctx actor.Context, site string, msg proto.Message, at roundKey) {
	s.pending[site] = true
	s.askThen(ctx, site, msg, at.round, func(m proto.Message, err error) {
		s.answered(ctx, &answered{site: site, at: at, msg: m, err: err})
	})
}

func (s *swarmFlow) answered(ctx actor.Context, a *answered) {
	if a.at != s.askKey || !s.pending[a.site] {
		return // an older attempt's, or the site was left out meanwhile
	}
	delete(s.pending, a.site)
	if s.phase == evaluating {
		s.evaluatedSwarm(a)
		s.next(ctx)
		return
	}
	if a.err != nil {
		var remote *bridge.RemoteError
		if errors.As(a.err, &remote) && remote.Code == hearthv1.FailureCode_FAILURE_CODE_ATTESTATION && s.isHost(s.agg) && a.site != s.agg {
			// The site no longer accepts the host's evidence: it sends
			// the host nothing and is left out until it accepts it again
			// (it re-joins and attests). One site's word does not put the
			// host out; the round moves to the next host only when too
			// few of its members still accept this one.
			reason := s.agg + ": " + a.site + " " + remote.Message
			s.miss(a.site, a.err.Error())
			s.out[a.site] = envelope.Clip(remote.Message, maxReason)
			s.refusedHost = append(s.refusedHost, reason)
			if accepting := len(s.members) - len(s.refusedHost); accepting < s.manifest.MinSites {
				s.failover(ctx, fmt.Sprintf("%d of the round's members accept its host's evidence (min_sites %d): %s", accepting, s.manifest.MinSites,
					strings.Join(s.refusedHost, "; ")), false)
				return
			}
			s.next(ctx)
			return
		}
		s.miss(a.site, a.err.Error())
		// Left out until it joins again: a site that is gone or silent (so
		// that later rounds do not wait on it), and an aggregator that
		// failed its attempt. A member whose update did not reach the
		// aggregator stays: the fault may be the aggregator's.
		if !s.reachable(a.site) || a.site == s.agg || errors.Is(a.err, bridge.ErrTimeout) {
			s.out[a.site] = envelope.Clip(a.err.Error(), maxReason)
		}
		s.next(ctx)
		return
	}
	m, ok := a.msg.(*hearthv1.SwarmTrained)
	switch {
	case !ok:
		s.refuse(a.site, "result.refused", fmt.Sprintf("unexpected answer %T", a.msg), "")
	case m.JobId != s.id() || m.Round != s.round || m.Attempt != s.attempt:
		s.refuse(a.site, "result.refused", fmt.Sprintf("an answer for %q round %d attempt %d", clip(m.JobId), m.Round, m.Attempt), m.AuditEvent)
	case m.Aggregated != nil && a.site != s.agg:
		s.refuse(a.site, "result.refused", fmt.Sprintf("claims to have aggregated round %d attempt %d, which is %s's", m.Round, m.Attempt, s.agg), m.AuditEvent)
		s.out[a.site] = "claimed another site's round"
	default:
		if reason := s.checkTrained(a.site, m); reason != "" {
			s.refuse(a.site, "result.refused", reason, m.AuditEvent)
			if a.site != s.agg {
				break
			}
			m.Trained = false // the aggregator's figures do not count; its aggregation may
		}
		if m.Trained {
			s.trained[a.site] = m
		}
		if len(m.ModelSha256) > 0 {
			s.confirmed[a.site] = string(m.ModelSha256)
			if m.SealMicros >= s.sealMicros {
				s.sealMicros, s.sealCPUMicros = m.SealMicros, m.SealCpuMicros
			}
		}
		s.audit(auditor.Event{Action: "result.received", JobID: s.id(), Round: s.round, Peer: a.site, PeerEvent: m.AuditEvent,
			Detail: map[string]string{"attempt": fmt.Sprint(s.attempt)}})
		if a.site == s.agg {
			if reason := s.checkAggregated(m.Aggregated); reason != "" {
				s.refuse(a.site, "result.refused", reason, m.AuditEvent)
				s.out[a.site] = envelope.Clip(reason, maxReason)
				break
			}
			s.aggDone, s.aggregated = true, m.Aggregated
			s.confirmed[a.site] = string(m.Aggregated.ModelSha256)
			// The holders confirm the model as it reaches them; those
			// that have not within the grace are left out of the round.
			self, system, at := ctx.Self(), ctx.ActorSystem(), s.askKey
			time.AfterFunc(confirmGrace(s.manifest.RoundTimeout, time.Since(s.attemptStarted), s.castLag()), func() { system.Root.Send(self, &confirmDue{at: at}) })
		}
	}
	s.next(ctx)
}

// checkTrained checks a member's figures against its commitment.
func (s *swarmFlow) checkTrained(site string, m *hearthv1.SwarmTrained) string {
	if !m.Trained {
		return ""
	}
	c := commitmentOf(s.rec.Info, site)
	switch {
	case c == nil:
		return "no commitment for this site"
	case m.Samples < 1 || m.Samples > c.TrainSamples:
		return fmt.Sprintf("trained on %d samples, committed %d", m.Samples, c.TrainSamples)
	case !finite(m.TrainLoss) || m.TrainLoss < 0 || m.TrainLoss > maxLoss:
		return fmt.Sprintf("training loss %v is out of range", m.TrainLoss)
	case m.TrainMicros < 0 || m.SealMicros < 0 || m.SealCpuMicros < 0:
		return "negative timings"
	}
	return checkMetrics("validation", m.Validation, c.ValSamples)
}

// checkAggregated checks the aggregator's account against the attempt.
func (s *swarmFlow) checkAggregated(g *hearthv1.SwarmAggregated) string {
	if g == nil {
		return "the round's aggregator answered without aggregating"
	}
	if len(g.Contributors) > len(s.members) || len(g.Screened) > len(s.members) || len(g.Refused) > len(s.members) || len(g.Clipped) > len(s.members) {
		return "the aggregator's account lists more sites than the round has members"
	}
	seen := map[string]bool{}
	for _, c := range g.Contributors {
		if !slices.Contains(s.members, c) || seen[c] {
			return fmt.Sprintf("the aggregator counts %q, not a member of the round or twice", clip(c))
		}
		seen[c] = true
	}
	if g.SealMicros < 0 || g.SealCpuMicros < 0 || g.AggregateMicros < 0 {
		return "the aggregator's account has negative timings"
	}
	for site := range g.Screened {
		if !slices.Contains(s.members, site) || slices.Contains(g.Contributors, site) {
			return fmt.Sprintf("the aggregator screened %q, not a member of the round or counted as well", clip(site))
		}
	}
	if n := len(g.Contributors) + len(g.Screened); n < s.manifest.MinSites {
		return fmt.Sprintf("%d updates taken, min_sites %d", n, s.manifest.MinSites)
	}
	if len(g.ModelSha256) != sha256.Size {
		return "the aggregator's account names no model digest"
	}
	return ""
}

// failover gives the round to the next site in the rotation.
func (s *swarmFlow) failover(ctx actor.Context, reason string, blame bool) {
	reason = envelope.Clip(reason, maxReason)
	if blame { // left out until it joins again
		s.out[s.agg] = reason
	}
	s.failovers = append(s.failovers, reason)
	s.audit(auditor.Event{Action: "round.failover", JobID: s.id(), Round: s.round, Peer: s.agg,
		Detail: map[string]string{"attempt": fmt.Sprint(s.attempt), "reason": reason}})
	s.cfg.Log.Warn("swarm aggregator failed; the round moves to the next in the rotation", "job", s.id(), "round", s.round,
		"attempt", s.attempt, "aggregator", s.agg, "reason", reason)
	s.attempt++
	s.startAttempt(ctx)
}

// roundClosed records the closed round and starts the next one.
func (s *swarmFlow) roundClosed(ctx actor.Context, g *hearthv1.SwarmAggregated) {
	var holders, mismatched []string
	sitesHolding := 0 // hosts hold the model too, and count for nothing
	for _, site := range s.holders {
		switch d, ok := s.confirmed[site]; {
		case ok && d == string(g.ModelSha256):
			holders = append(holders, site)
			if !s.isHost(site) {
				sitesHolding++
			}
		case ok:
			mismatched = append(mismatched, site)
			s.audit(auditor.Event{Action: "model.mismatch", JobID: s.id(), Round: s.round, Peer: site,
				Detail: map[string]string{"attempt": fmt.Sprint(s.attempt), "aggregator": s.agg,
					"reason": "the site holds another model than the one its aggregator declared"}})
		}
	}
	if sitesHolding < s.manifest.MinSites {
		// Holders that report another model than it declared convict the
		// aggregator; holders merely silent do not (the fault may be theirs).
		s.failover(ctx, fmt.Sprintf("%s: %d sites confirmed its model (min_sites %d); another model at %v", s.agg, sitesHolding,
			s.manifest.MinSites, mismatched), len(mismatched) > 0)
		return
	}
	s.basis = roundKey{s.round, s.attempt}
	clear(s.holds)
	for _, site := range holders {
		s.holds[site] = true
	}
	for _, m := range []map[string]string{g.Screened, g.Refused, g.Clipped} { // the aggregator's texts, bounded
		for site, why := range m {
			m[site] = envelope.Clip(why, maxReason)
		}
	}
	answered := slices.Sorted(slices.Values(append(slices.Clone(g.Contributors), slices.Collect(maps.Keys(g.Screened))...)))
	sum := &hearthv1.RoundSummary{Round: s.round, Answered: answered, DurationMicros: time.Since(s.started).Microseconds(),
		Aggregator: s.agg, Attempts: s.attempt + 1, Failovers: s.failovers,
		SealMicros: g.SealMicros + s.sealMicros, SealCpuMicros: g.SealCpuMicros + s.sealCPUMicros}
	var loss, weight float64
	var val meanMetrics
	for _, site := range s.members {
		t := s.trained[site]
		if screen := g.Screened[site]; screen != "" {
			s.audit(auditor.Event{Action: "update.screened", JobID: s.id(), Round: s.round, Peer: site, Detail: map[string]string{"reason": screen}})
		}
		if !slices.Contains(answered, site) {
			reason := "update not aggregated"
			if r := g.Refused[site]; r != "" {
				reason = "update refused by the aggregator: " + r
			}
			if t == nil {
				reason = s.lastReason(site)
			}
			sum.Missing = append(sum.Missing, site)
			s.audit(auditor.Event{Action: "update.refused", JobID: s.id(), Round: s.round, Peer: site, Detail: map[string]string{"reason": reason}})
			continue
		}
		if t == nil {
			continue
		}
		w := min(s.weights[site], float64(t.Samples))
		loss += t.TrainLoss * w
		weight += w
		val.add(t.Validation, capMetric(s.valWeights, site, t.Validation))
		sum.MaxTrainMicros = max(sum.MaxTrainMicros, t.TrainMicros)
		eps := t.Epsilon
		if !validEpsilon(eps) {
			eps = 0 // nonsense: not shown as a guarantee
		}
		sum.Sites = append(sum.Sites, &hearthv1.SiteRound{Site: site, Weight: w, TrainLoss: t.TrainLoss, Validation: t.Validation,
			Clipped: cmp.Or(g.Clipped[site], g.Screened[site]), Epsilon: eps})
	}
	if weight > 0 {
		sum.TrainLoss = loss / weight
	}
	sum.Validation = val.mean()
	s.rec.Info.History = append(s.rec.Info.History, sum)
	s.rec.Info.CompletedRounds = s.round
	s.save()
	s.audit(auditor.Event{Action: "round.closed", JobID: s.id(), Round: s.round, Peer: s.agg,
		Detail: map[string]string{"attempt": fmt.Sprint(s.attempt), "contributors": strings.Join(g.Contributors, ","),
			"holders": strings.Join(holders, ","), "model_sha256": hex.EncodeToString(g.ModelSha256)}})
	s.cfg.Log.Info("round closed", "job", s.id(), "round", s.round, "aggregator", s.agg, "attempts", s.attempt+1,
		"contributors", len(g.Contributors), "train_loss", sum.TrainLoss, "val_accuracy", sum.GetValidation().GetAccuracy(), "ms", sum.DurationMicros/1000)
	if s.round < int64(s.manifest.Rounds) {
		s.startRound(ctx, s.round+1)
		return
	}
	s.evaluate(ctx)
}

// evaluate asks every site holding the final model to score it on its
// test data; only metrics come back.
func (s *swarmFlow) evaluate(ctx actor.Context) {
	s.phase, s.pending, s.missing, s.reasons = evaluating, map[string]bool{}, nil, nil
	var at []string
	for _, site := range s.sites() {
		if s.holds[site] {
			at = append(at, site)
		}
	}
	s.rec.Info.ModelLocation = fmt.Sprintf("at the sites, each in its kit's state/swarm/%s/model.pb: %s", s.id(), strings.Join(at, ", "))
	s.evaluated = at
	crossSite := s.manifest.Evaluation.CrossSite
	if crossSite && s.streamed() {
		crossSite = false // local models travel inline only
		s.audit(auditor.Event{Action: "crosssite.skipped", JobID: s.id(), Detail: map[string]string{"reason": "the sites' local models are too large for one envelope"}})
		s.cfg.Log.Warn("cross-site evaluation of local models skipped: models over one envelope", "job", s.id())
	}
	if !s.manifest.Evaluation.Test {
		s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FINISHED, "")
		return
	}
	s.test, s.rec.Info.SiteTest, s.rec.Info.CrossSite = meanMetrics{}, nil, nil
	key := roundKey{s.round + 1, -1} // no attempt's
	s.askKey = key
	for _, site := range at {
		if !s.reachable(site) {
			s.miss(site, "not connected to the hub")
			continue
		}
		t := &hearthv1.SwarmEvaluate{JobId: s.id(), BasisRound: s.basis.round, BasisAttempt: s.basis.attempt,
			AuditEvent: s.audit(auditor.Event{Action: "eval.sent", JobID: s.id(), Peer: site})}
		if crossSite {
			t.CrossSite, t.Sites = true, at
			for _, other := range at {
				t.Keys = append(t.Keys, s.keys[other])
			}
		}
		s.askFor(ctx, site, t, key)
	}
	s.next(ctx)
}

func (s *swarmFlow) evaluatedSwarm(a *answered) {
	if a.err != nil {
		s.miss(a.site, a.err.Error())
		return
	}
	m, ok := a.msg.(*hearthv1.EvaluateResult)
	if !ok || m.Test == nil || m.Test.Samples < 1 {
		s.miss(a.site, "no test metrics")
		return
	}
	c := commitmentOf(s.rec.Info, a.site)
	if c == nil {
		s.refuse(a.site, "result.refused", "no commitment for this site", m.AuditEvent)
		return
	}
	if reason := checkMetrics("test", m.Test, c.TestSamples); reason != "" {
		s.refuse(a.site, "result.refused", reason, m.AuditEvent)
		return
	}
	s.audit(auditor.Event{Action: "result.received", JobID: s.id(), Peer: a.site, PeerEvent: m.AuditEvent})
	s.test.add(m.Test, capMetric(s.testWeights, a.site, m.Test))
	s.rec.Info.Test = s.test.mean()
	s.rec.Info.SiteTest = append(s.rec.Info.SiteTest, &hearthv1.SiteMetrics{Site: a.site, Metrics: m.Test})
	s.rec.Info.CrossSite = append(s.rec.Info.CrossSite, &hearthv1.CrossSiteMetrics{Model: "global", Site: a.site, Metrics: m.Test})
	if s.manifest.Evaluation.CrossSite {
		seen := map[string]bool{}
		for _, row := range m.CrossSite {
			switch {
			case len(seen) >= len(s.evaluated) || row.GetSite() != a.site || !slices.Contains(s.evaluated, row.GetModel()) || seen[row.GetModel()] ||
				row.GetMetrics().GetSamples() < 1:
				s.refuse(a.site, "result.refused", fmt.Sprintf("a cross-site row for model %q at %q", clip(row.GetModel()), clip(row.GetSite())), m.AuditEvent)
				continue
			}
			if reason := checkMetrics("cross-site test", row.Metrics, c.TestSamples); reason != "" {
				s.refuse(a.site, "result.refused", reason, m.AuditEvent)
				continue
			}
			seen[row.Model] = true
			s.rec.Info.CrossSite = append(s.rec.Info.CrossSite, row)
		}
	}
	slices.SortFunc(s.rec.Info.SiteTest, func(x, y *hearthv1.SiteMetrics) int { return strings.Compare(x.Site, y.Site) })
	slices.SortFunc(s.rec.Info.CrossSite, func(x, y *hearthv1.CrossSiteMetrics) int {
		return cmp.Or(strings.Compare(x.Site, y.Site), strings.Compare(x.Model, y.Model))
	})
}

// rejoin asks every site of the job that is left out, or never joined,
// and is connected again to join once more; it takes part from the next
// attempt on, as a holder until it holds the global model.
func (s *swarmFlow) rejoin(ctx actor.Context) {
	for _, site := range s.targets {
		if s.rejoining[site] || s.out[site] == "" && s.rec.Joined[site] != 0 || !s.reachable(site) || s.placedOut[site] {
			continue
		}
		s.rejoining[site] = true
		ev := s.audit(auditor.Event{Action: "site.rejoin", JobID: s.id(), Peer: site})
		s.askThen(ctx, site, &hearthv1.JoinJob{JobId: s.id(), Job: s.rec.Job, AuditEvent: ev}, 0, func(m proto.Message, err error) {
			s.rejoined(ctx, &rejoined{site: site, msg: m, err: err})
		})
	}
}

func (s *swarmFlow) rejoined(ctx actor.Context, r *rejoined) {
	delete(s.rejoining, r.site)
	if s.phase != training {
		return
	}
	m, ok := r.msg.(*hearthv1.JobJoined)
	if r.err != nil || !ok {
		s.cfg.Log.Info("site not back yet", "job", s.id(), "site", r.site, "err", r.err)
		return
	}
	if !s.joinedSwarm(r.site, m, true) {
		return
	}
	if s.manifest.Attested() { // back once it accepts the rotation's hosts
		s.out[r.site] = "attesting the aggregation hosts"
		s.reattest(ctx, r.site)
		return
	}
	delete(s.out, r.site)
	delete(s.holds, r.site) // its job state starts again: it catches up first
	s.audit(auditor.Event{Action: "site.rejoined", JobID: s.id(), Peer: r.site, PeerEvent: m.AuditEvent})
	s.cfg.Log.Info("site rejoined", "job", s.id(), "site", r.site)
}

// finish ends the job and stops the workflow; the server held no model.
func (s *swarmFlow) finish(ctx actor.Context, status hearthv1.JobStatus, reason string) {
	s.end(ctx, status, reason)
	ctx.Stop(ctx.Self())
}
