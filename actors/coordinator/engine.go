package coordinator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// engine is the round bookkeeping every workflow shares, and holds no
// model buffers: the job's record and signed manifest, the sites a phase
// waits on, who was left out and why, the join phase (each site's signed
// commitment, the job's data shape, the aggregation weights), audit and
// storage. A workflow (FedAvg in workflow.go, swarm in swarm.go) embeds it,
// sets next (called whenever a phase may be complete) and drives the
// rounds.
type engine struct {
	cfg      *Config
	rec      *hearthv1.JobRecord
	manifest *job.Manifest
	targets  []string

	phase   phase
	round   int64
	pending map[string]bool
	// Why sites were left out of the phase, in order.
	missing, reasons []string
	// Joining: sites not yet reachable, and until when to wait for them.
	awaiting     []string
	joinDeadline time.Time
	joinEvent    string
	// credentials are the submitter's sealed credentials by site, each
	// handed to its site with the job once and then dropped; never stored.
	credentials map[string]*hearthv1.SealedCredential
	// Joining: each site's reported data shape; then each joined site's
	// aggregation weight (its committed samples, capped), fixed for the
	// job, and the same caps on the weight of each site's validation and
	// test figures in the job's averages.
	shapes  map[string]dataShape
	weights map[string]float64
	// A job with its own trainer: each joined site's initial model's
	// layout, and the model of the first site by name; settled, the one
	// round 0 starts from (initial.go).
	initials                   *initials
	valWeights, testWeights    map[string]float64
	shapeFeatures, shapeLabels int64

	// jobCtx is the job's context: made when the workflow starts, cancelled
	// when it ends (end: abort, failure or finish) or its actor stops.
	// Every store call, stream and goroutine of the job runs under it, so
	// that an abort ends the server's transfers at once, not at a stall
	// timeout.
	jobCtx  context.Context
	stopJob context.CancelFunc
	// ended is set by end: the actor stops only once its children have,
	// and what arrives meanwhile (a pull that the cancelled context ended,
	// a late reply) must not end the job a second time.
	ended bool

	// next moves the workflow on when a phase may be complete; onMiss, if
	// set, hears of each site left out.
	next   func(actor.Context)
	onMiss func(site string)
}

// abortJob stops a workflow; it responds with the final *hearthv1.JobInfo.
type abortJob struct{ reason string }

// retryJoin is the workflow's reminder to look again for sites that were
// not reachable yet.
type retryJoin struct{}

// watchLinks is the workflow's reminder to look for sites it waits on whose
// link to the hub went down (a revoked site's is closed by the hub).
type watchLinks struct{}

// watchEvery is how often a workflow looks for sites it waits on whose
// link went down; such a site is left out at once, not at the timeout.
const watchEvery = 250 * time.Millisecond

type phase int

const (
	joining phase = iota
	training
	closing // waiting for the aggregator
	evaluating
	keying     // an HE job's key setup (he.go)
	revealing  // an HE round's updates revealed against its commitments
	decrypting // an HE round's threshold decryption
	placing    // an attested job's aggregator placed on hosts (placement.go)
)

func (e *engine) id() string { return e.rec.Info.Id }

// ask sends a request to a site through the bridge; the answer comes back
// to this actor as *bridge.Reply or *bridge.Failed.
func (e *engine) ask(ctx actor.Context, site string, msg proto.Message) {
	e.pending[site] = true
	ctx.Request(e.cfg.Bridge, &bridge.Ask{To: site, Msg: msg, JobID: e.id(), Round: e.round, Timeout: e.manifest.RoundTimeout})
}

// askThen asks site through the bridge, within the round timeout, and
// calls then on this actor with its answer, or why there is none.
func (e *engine) askThen(ctx actor.Context, site string, msg proto.Message, round int64, then func(proto.Message, error)) {
	timeout := e.manifest.RoundTimeout
	future := ctx.RequestFuture(e.cfg.Bridge, &bridge.Ask{To: site, Msg: msg, JobID: e.id(), Round: round, Timeout: timeout}, timeout+time.Second)
	ctx.ReenterAfter(future, func(res any, err error) { then(answerOf(res, err)) })
}

// answerOf is a bridge answer as a message, or the error it carries.
func answerOf(res any, err error) (proto.Message, error) {
	switch r := res.(type) {
	case *bridge.Reply:
		return r.Msg, nil
	case *bridge.Failed:
		return nil, r.Err
	}
	if err == nil {
		err = fmt.Errorf("unexpected answer %T", res)
	}
	return nil, err
}

func (e *engine) join(ctx actor.Context) {
	e.phase, e.pending, e.missing, e.reasons = joining, map[string]bool{}, nil, nil
	if e.rec.Joined == nil {
		e.rec.Joined = map[string]int64{}
	}
	clear(e.rec.Joined)
	e.rec.Info.Commitments, e.shapes, e.initials = nil, map[string]dataShape{}, nil
	e.joinEvent = e.audit(auditor.Event{Action: "job.started", JobID: e.id(), Detail: map[string]string{"sites": strings.Join(e.targets, ",")}})
	e.awaiting, e.joinDeadline = slices.Clone(e.targets), time.Now().Add(e.manifest.RoundTimeout)
	e.tryJoin(ctx)
}

// tryJoin asks every awaited site that is reachable now to join; the others
// are looked for again shortly, until the round timeout has passed.
func (e *engine) tryJoin(ctx actor.Context) {
	e.awaiting = slices.DeleteFunc(e.awaiting, func(s string) bool {
		if !e.reachable(s) {
			return false
		}
		e.ask(ctx, s, &hearthv1.JoinJob{JobId: e.id(), Job: e.rec.Job, AuditEvent: e.joinEvent, Credential: e.credentials[s]})
		delete(e.credentials, s)
		return true
	})
	if len(e.awaiting) == 0 {
		return
	}
	if time.Now().After(e.joinDeadline) {
		for _, s := range e.awaiting {
			e.miss(s, "not connected to the hub within the round timeout")
		}
		e.awaiting = nil
		e.next(ctx)
		return
	}
	self, system := ctx.Self(), ctx.ActorSystem()
	time.AfterFunc(100*time.Millisecond, func() { system.Root.Send(self, &retryJoin{}) })
}

func (e *engine) reachable(site string) bool {
	return e.cfg.Reachable == nil || e.cfg.Reachable(site)
}

func (e *engine) failed(ctx actor.Context, f *bridge.Failed) {
	if !e.pending[f.To] {
		return
	}
	delete(e.pending, f.To)
	if e.phase == joining { // a site's refusal of the job, in its words (bounded), beside the site's own record
		e.audit(auditor.Event{Action: "join.failed", JobID: e.id(), Peer: f.To, PeerEvent: e.joinEvent,
			Detail: map[string]string{"reason": envelope.Clip(f.Err.Error(), maxReason)}})
	}
	e.miss(f.To, f.Err.Error())
	e.next(ctx)
}

// maxReason bounds a site's reason as the job keeps it: sites write them
// (a failure's message), and the job's record and list must stay small.
const maxReason = 256

// maxJobReason bounds why a job ended, which joins its sites' reasons.
const maxJobReason = 4096

func (e *engine) miss(site, reason string) {
	reason = envelope.Clip(reason, maxReason)
	e.missing = append(e.missing, site)
	e.reasons = append(e.reasons, site+": "+reason)
	e.cfg.Log.Warn("site left out", "job", e.id(), "round", e.round, "site", site, "reason", reason)
	if e.onMiss != nil {
		e.onMiss(site)
	}
}

// joined takes a site's signed commitment: its sample counts and its
// data's shape, checked for plausibility here; the shape is decided once
// every site has answered (settleJoined).
func (e *engine) joined(_ actor.Context, site string, m *hearthv1.JobJoined) {
	if reason := checkCommitment(m); reason != "" {
		e.refuse(site, "join.refused", reason, m.AuditEvent)
		return
	}
	if err := e.takeInitial(site, m.LayoutSha256); err != nil {
		e.refuse(site, "join.refused", err.Error(), m.AuditEvent)
		return
	}
	e.rec.Joined[site] = m.TrainSamples
	e.shapes[site] = dataShape{m.Features, m.Classes}
	e.rec.Info.Commitments = append(e.rec.Info.Commitments, &hearthv1.SiteCommitment{Site: site, TrainSamples: m.TrainSamples,
		ValSamples: m.ValSamples, TestSamples: m.TestSamples, Features: m.Features, Classes: m.Classes})
	e.audit(auditor.Event{Action: "site.joined", JobID: e.id(), Peer: site, PeerEvent: m.AuditEvent, Detail: map[string]string{
		"train_samples": fmt.Sprint(m.TrainSamples), "val_samples": fmt.Sprint(m.ValSamples), "test_samples": fmt.Sprint(m.TestSamples),
		"features": fmt.Sprint(m.Features), "classes": fmt.Sprint(m.Classes)}})
}

// unjoin leaves out a site that joined, before the job starts: its
// commitment dropped, the reason audited.
func (e *engine) unjoin(site, reason string) {
	delete(e.rec.Joined, site)
	e.rec.Info.Commitments = slices.DeleteFunc(e.rec.Info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == site })
	e.refuse(site, "join.refused", reason, "")
}

// refuse leaves a site out for what it sent, with the reason audited.
func (e *engine) refuse(site, action, reason, peerEvent string) {
	reason = envelope.Clip(reason, maxReason)
	e.miss(site, reason)
	e.audit(auditor.Event{Action: action, JobID: e.id(), Round: e.round, Peer: site, PeerEvent: peerEvent,
		Detail: map[string]string{"reason": reason}})
}

// settleJoined decides the job's data shape (the manifest's, or the
// majority's), leaves out only the sites whose data differs, and fixes the
// joined sites' FedAvg weights. It fails the job (an error) only when no
// shape can be decided.
func (e *engine) settleJoined() error {
	if len(e.shapes) == 0 {
		return nil // nobody joined: the quorum check says so
	}
	shape, ok := decideShape(e.manifest.Data, e.shapes)
	if !ok {
		var seen []string
		for _, site := range sorted(mapKeys(e.shapes)) {
			seen = append(seen, fmt.Sprintf("%s: %v", site, e.shapes[site]))
		}
		return fmt.Errorf("the joined sites disagree on the data's shape and no shape has a majority (the manifest names none): %s",
			strings.Join(seen, "; "))
	}
	for site, s := range e.shapes {
		if s != shape {
			e.unjoin(site, fmt.Sprintf("local data has %v; the job's data has %v", s, shape))
		}
	}
	e.shapeFeatures, e.shapeLabels = shape.features, shape.classes
	if err := e.settleInitial(); err != nil {
		return err
	}
	e.weights = aggregator.CappedWeights(e.rec.Joined, e.maxShare())
	val, test := map[string]int64{}, map[string]int64{}
	for _, c := range e.rec.Info.Commitments {
		if c.ValSamples > 0 {
			val[c.Site] = c.ValSamples
		}
		if c.TestSamples > 0 {
			test[c.Site] = c.TestSamples
		}
	}
	e.valWeights, e.testWeights = aggregator.CappedWeights(val, e.maxShare()), aggregator.CappedWeights(test, e.maxShare())
	sort.Slice(e.rec.Info.Commitments, func(i, j int) bool { return e.rec.Info.Commitments[i].Site < e.rec.Info.Commitments[j].Site })
	return nil
}

// maxShare is the job's cap on one joined site's share of the FedAvg
// weight.
func (e *engine) maxShare() float64 { return e.manifest.Aggregation.ShareCap(len(e.rec.Joined)) }

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sites are the joined sites, in name order.
func (e *engine) sites() []string {
	out := make([]string, 0, len(e.rec.Joined))
	for s := range e.rec.Joined {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (e *engine) save() {
	if err := e.cfg.Store.Put(e.jobCtx, e.rec); err != nil {
		e.cfg.Log.Error("job state not stored", "job", e.id(), "err", err)
	}
}

func (e *engine) audit(ev auditor.Event) string { return record(*e.cfg, ev) }

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// dropUnreachable leaves out at once every site the phase waits on whose
// link to the hub is down, and says whether there was one.
func (e *engine) dropUnreachable() bool {
	lost := false
	for site := range e.pending {
		if !e.reachable(site) {
			delete(e.pending, site)
			e.miss(site, "its link to the hub went down")
			e.audit(auditor.Event{Action: "site.dropped", JobID: e.id(), Round: e.round, Peer: site,
				Detail: map[string]string{"reason": "link to the hub down while the workflow waited on it"}})
			lost = true
		}
	}
	return lost
}

// end records how the job ended and tells its sites; the workflow then
// releases what it holds and stops.
func (e *engine) end(ctx actor.Context, status hearthv1.JobStatus, reason string) {
	e.ended = true
	if reason == "" && status == hearthv1.JobStatus_JOB_STATUS_FINISHED && len(e.missing) > 0 {
		reason = "test evaluation missed: " + strings.Join(e.reasons, "; ")
	}
	reason = envelope.Clip(reason, maxJobReason) // many sites' reasons, each bounded
	e.rec.Info.Status, e.rec.Info.Reason, e.rec.Info.FinishedUnixNano = status, reason, e.cfg.Now().UnixNano()
	e.save()
	// Every site asked to join hears it, not only those that did: one
	// left out after it joined (late, or refused here) may still hold
	// what it made for the job, a job's own trainer among it.
	told := map[string]bool{}
	for _, site := range append(slices.Collect(maps.Keys(e.rec.Joined)), e.targets...) {
		if !told[site] {
			told[site] = true
			ctx.Request(e.cfg.Bridge, &bridge.Send{To: site, Msg: &hearthv1.LeaveJob{JobId: e.id(), Status: status, Reason: reason}, JobID: e.id()})
		}
	}
	e.audit(auditor.Event{Action: "job.finished", JobID: e.id(), Detail: map[string]string{"status": status.String(), "reason": reason}})
	log := e.cfg.Log.Info
	if status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		log = e.cfg.Log.Warn
	}
	log("job ended", "job", e.id(), "status", status.String(), "reason", reason, "rounds", e.rec.Info.CompletedRounds)
	e.pending = map[string]bool{}
	e.stopJob()
}
