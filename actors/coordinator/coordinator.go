// Package coordinator is the server's job actor: it takes admin requests
// (submit, list, status, abort, download), keeps every job in JetStream,
// and runs each job's workflow (FedAvg) as a child actor that sends tasks
// to the sites through the bridge, folds their updates in the aggregator,
// checkpoints the global model after every round, and resumes running jobs
// after a restart from their last completed round.
package coordinator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/jetstore"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Recorder records audit events; *auditor.Log is one.
type Recorder interface {
	Append(auditor.Event) (auditor.Record, error)
}

// Authorizer decides by the server's own policy whether requester may
// exercise right ("submit_job", "view", "manage_job", "download_job");
// submitter is the job's submitter for rights over an existing job. Each
// site decides for itself again before it takes part.
type Authorizer interface {
	Allow(right string, requester pki.Identity, submitter *pki.Identity) (allowed bool, reason string)
}

// Config is what the coordinator needs.
type Config struct {
	Self  pki.Identity
	Trust *pki.Trust
	Sites []string // the project's sites
	// Hosts are the project's aggregation hosts (participants of kind
	// aggregator), the only names a job's placement may list.
	Hosts  []string
	Policy Authorizer
	Store  *Store
	Bridge *actor.PID
	// Reachable reports whether a site's leaf link is up (nil: assume so).
	// A site that is not is left out of a round at once instead of costing
	// the round timeout; at the start of a job, sites get up to one round
	// timeout to (re)connect.
	Reachable func(site string) bool
	// Streams moves models too large for one envelope (nil: such jobs
	// fail). Models larger than SpillAbove bytes are kept in file
	// mappings in SpillDir rather than memory.
	Streams    Streams
	SpillDir   string
	SpillAbove int64
	Audit      Recorder
	Log        *slog.Logger
	Now        func() time.Time
	// Limits bound what one submitter can hold on the server.
	Limits Limits
}

// Limits bound what one submitter can hold on the server; zero fields take
// the defaults.
type Limits struct {
	// JobsPerSubmitter is how many jobs one admin may have running at once
	// (default 4); a submission past it is refused.
	JobsPerSubmitter int
	// CheckpointsPerSubmitter is how many ended jobs of one admin keep their
	// final model (default 16); past it the oldest ones' are dropped.
	CheckpointsPerSubmitter int
	// CheckpointRetention is how long an ended job's final model is kept
	// (default 30 days; negative: for ever).
	CheckpointRetention time.Duration
}

// Defaults of Limits.
const (
	DefaultJobsPerSubmitter        = 4
	DefaultCheckpointsPerSubmitter = 16
	DefaultCheckpointRetention     = 30 * 24 * time.Hour
)

func (l Limits) withDefaults() Limits {
	l.JobsPerSubmitter = cmp.Or(l.JobsPerSubmitter, DefaultJobsPerSubmitter)
	l.CheckpointsPerSubmitter = cmp.Or(l.CheckpointsPerSubmitter, DefaultCheckpointsPerSubmitter)
	l.CheckpointRetention = cmp.Or(l.CheckpointRetention, DefaultCheckpointRetention)
	return l
}

// Messages are the admin requests the coordinator handles, for bridge routes.
func Messages() []proto.Message {
	return []proto.Message{&hearthv1.SubmitJob{}, &hearthv1.ListJobs{}, &hearthv1.GetJob{}, &hearthv1.AbortJob{}, &hearthv1.DownloadJob{},
		&hearthv1.GetCredentialKeys{}, &hearthv1.SignedSiteCommand{}, &hearthv1.GetConnections{}}
}

// Coordinator is the actor. Create it with New.
type Coordinator struct {
	cfg       Config
	workflows map[string]*actor.PID // running jobs
	running   map[string]string     // running job -> its submitter
}

// New makes a coordinator.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Trust == nil || cfg.Policy == nil || cfg.Store == nil || cfg.Bridge == nil || cfg.Audit == nil {
		return nil, errors.New("coordinator: trust, policy, store, bridge and audit are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limits.JobsPerSubmitter < 0 || cfg.Limits.CheckpointsPerSubmitter < 0 {
		return nil, fmt.Errorf("coordinator: limits %+v: negative counts", cfg.Limits)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	return &Coordinator{cfg: cfg, workflows: map[string]*actor.PID{}, running: map[string]string{}}, nil
}

// Props makes the actor's props.
func (c *Coordinator) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return c })
}

// Receive implements actor.Actor.
func (c *Coordinator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.resume(ctx)
		c.sweepCheckpoints()
		c.sweepLater(ctx)
	case *sweep:
		c.sweepCheckpoints()
		c.sweepLater(ctx)
	case *actor.Terminated:
		for id, pid := range c.workflows {
			if pid.Equal(m.Who) {
				delete(c.workflows, id)
				delete(c.running, id)
			}
		}
		c.sweepCheckpoints()
	case *hearthv1.SubmitJob:
		if res := c.submit(ctx, m); res != nil { // nil: a dry run answers when its sites have
			ctx.Respond(res)
		}
	case *hearthv1.ListJobs:
		ctx.Respond(c.list(ctx))
	case *hearthv1.GetJob:
		ctx.Respond(c.get(ctx, m.JobId))
	case *hearthv1.AbortJob:
		c.abort(ctx, m.JobId)
	case *hearthv1.DownloadJob:
		if res := c.download(ctx, m.JobId); res != nil {
			ctx.Respond(res)
		}
	case *hearthv1.GetCredentialKeys:
		c.credentialKeys(ctx, m)
	case *hearthv1.SignedSiteCommand:
		c.siteCommand(ctx, m)
	case *hearthv1.GetConnections:
		ctx.Respond(c.connections(ctx))
	}
}

// requester is the verified admin behind an admin request, with the
// command audited.
func (c *Coordinator) requester(ctx actor.Context, command, jobID string) (pki.Identity, *hearthv1.Failure) {
	o, ok := bridge.OriginOf(ctx)
	if !ok || o.Sender.Kind != pki.KindAdmin {
		return pki.Identity{}, failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, "admin commands come from admin consoles only")
	}
	c.audit(auditor.Event{Action: "admin.command", JobID: jobID, Peer: o.Sender.Name, Detail: map[string]string{"command": command}})
	return o.Sender, nil
}

// authorize decides by the server's policy; a denial is audited.
func (c *Coordinator) authorize(right string, who pki.Identity, submitter *pki.Identity, jobID string) *hearthv1.Failure {
	if ok, reason := c.cfg.Policy.Allow(right, who, submitter); !ok {
		c.audit(auditor.Event{Action: "admin.refused", JobID: jobID, Peer: who.Name, Detail: map[string]string{"right": right, "reason": reason}})
		return failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, reason)
	}
	return nil
}

// submit takes a signed job. Everything that needs no content comes first
// (the requester's right, the size), so that an admin who may not submit
// never reaches the signature check or the parser; then the signature,
// and only then the (linear, bounded) manifest parser; then freshness, the
// submitter's limits and the nonce, which is claimed last, in JetStream, so
// that the same signed job never starts twice, across restarts too.
func (c *Coordinator) submit(ctx actor.Context, m *hearthv1.SubmitJob) proto.Message {
	who, f := c.requester(ctx, "submit", "")
	if f != nil {
		return f
	}
	if f := c.authorize("submit_job", who, nil, ""); f != nil {
		return f
	}
	refuse := func(reason string) *hearthv1.Failure {
		c.audit(auditor.Event{Action: "job.refused", Peer: who.Name, Detail: map[string]string{"reason": reason}})
		return failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason)
	}
	if n := len(m.GetJob().GetManifest()); n > job.MaxManifestBytes {
		return refuse(fmt.Sprintf("manifest of %d bytes, more than the %d allowed", n, job.MaxManifestBytes))
	}
	now := c.cfg.Now()
	verify := job.Verify
	if m.DryRun {
		verify = job.VerifyPreflight // a dry run's job is signed as one, and never runs
	}
	v, err := verify(m.Job, c.cfg.Trust, now)
	if err != nil {
		return refuse(err.Error())
	}
	if v.Submitter.Name != who.Name {
		return refuse(fmt.Sprintf("job signed by %s, submitted by %s: submit your own jobs", v.Submitter.Name, who.Name))
	}
	if err := v.Fresh(now); err != nil {
		return refuse(err.Error())
	}
	if v.Manifest.Trainer.Custom() { // the job brings its own code: FLARE's byoc right, here and at every site
		if f := c.authorize("byoc", who, nil, ""); f != nil {
			f.Message = "byoc: " + f.Message
			return f
		}
	}
	if err := job.CheckCode(v.Manifest, m.Job.Code); err != nil {
		return refuse(err.Error())
	}
	for _, s := range v.Manifest.Sites {
		if s != job.AllSites && !slices.Contains(c.cfg.Sites, s) {
			return refuse(fmt.Sprintf("job names site %q, which is not in this project", s))
		}
	}
	if p := v.Manifest.Placement; p != nil {
		for _, h := range p.Hosts {
			if !slices.Contains(c.cfg.Hosts, h) {
				return refuse(fmt.Sprintf("job places its aggregator on %q, which is no aggregation host of this project", h))
			}
		}
	}
	creds, err := c.credentials(m.Credentials)
	if err != nil {
		return refuse(err.Error())
	}
	if n := c.runningOf(who.Name); n >= c.cfg.Limits.JobsPerSubmitter {
		return refuse(fmt.Sprintf("%s has %d jobs running, the most one submitter may (%d)", who.Name, n, c.cfg.Limits.JobsPerSubmitter))
	}
	if m.DryRun {
		c.preflight(ctx, m.Job, v.Manifest, creds, who)
		return nil
	}
	id, err := job.NewID()
	if err != nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	if err := c.cfg.Store.ClaimNonce(context.Background(), v.Nonce, id, v.NotAfter); err != nil {
		if errors.Is(err, ErrNonceUsed) {
			return refuse(err.Error())
		}
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	rec := &hearthv1.JobRecord{Job: m.Job, Info: &hearthv1.JobInfo{
		Id: id, Name: v.Manifest.Name, Status: hearthv1.JobStatus_JOB_STATUS_SUBMITTED, Submitter: who.Name,
		SubmitterOrg: who.Org, Rounds: int64(v.Manifest.Rounds), SubmittedUnixNano: c.cfg.Now().UnixNano(), Workflow: v.Manifest.Workflow,
	}}
	if err := c.cfg.Store.Put(context.Background(), rec); err != nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	c.audit(auditor.Event{Action: "job.submitted", JobID: id, Peer: who.Name, Detail: map[string]string{"name": v.Manifest.Name}})
	c.cfg.Log.Info("job submitted", "job", id, "name", v.Manifest.Name, "submitter", who.Name, "rounds", v.Manifest.Rounds)
	c.startWorkflow(ctx, rec, v.Manifest, nil, false, creds)
	return &hearthv1.JobAccepted{JobId: id}
}

func (c *Coordinator) list(ctx actor.Context) proto.Message {
	who, f := c.requester(ctx, "list", "")
	if f != nil {
		return f
	}
	if f := c.authorize("list_jobs", who, nil, ""); f != nil {
		return f
	}
	recs, err := c.cfg.Store.List(context.Background())
	if err != nil {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	slices.SortFunc(recs, func(a, b *hearthv1.JobRecord) int {
		return cmp.Compare(a.Info.SubmittedUnixNano, b.Info.SubmittedUnixNano)
	})
	out := &hearthv1.JobList{}
	if n := len(recs); n > maxListed {
		out.More, recs = int64(n-maxListed), recs[n-maxListed:]
	}
	for _, r := range recs {
		info := proto.Clone(r.Info).(*hearthv1.JobInfo)
		info.History, info.SiteTest, info.Commitments = nil, nil, nil
		out.Jobs = append(out.Jobs, info)
	}
	return out
}

// connections answers which of the project's sites and aggregation hosts
// have their leaf connection up, from the hub's own interest table
// (Config.Reachable): no site is asked. Authorized as check_status
// (category view); without a Reachable every participant counts as
// connected, as the workflows assume.
func (c *Coordinator) connections(ctx actor.Context) proto.Message {
	who, f := c.requester(ctx, "connections", "")
	if f != nil {
		return f
	}
	if f := c.authorize("check_status", who, nil, ""); f != nil {
		return f
	}
	out := &hearthv1.Connections{}
	for _, p := range append(slices.Clone(c.cfg.Sites), c.cfg.Hosts...) {
		if c.cfg.Reachable == nil || c.cfg.Reachable(p) {
			out.Connected = append(out.Connected, p)
		} else {
			out.Disconnected = append(out.Disconnected, p)
		}
	}
	return out
}

// maxListed bounds a job list, so that its answer fits one envelope
// however many jobs the server keeps (a listed job is a few hundred bytes
// without its history).
const maxListed = 1000

// job reads a job for a request, refusing unknown and malformed ids
// alike (before any store lookup).
func (c *Coordinator) job(id string) (*hearthv1.JobRecord, *hearthv1.Failure) {
	if !job.ValidID(id) {
		return nil, failure(hearthv1.FailureCode_FAILURE_CODE_NOT_FOUND, fmt.Sprintf("%v: %q", ErrNoJob, clip(id)))
	}
	rec, err := c.cfg.Store.Get(context.Background(), id)
	if errors.Is(err, ErrNoJob) {
		return nil, failure(hearthv1.FailureCode_FAILURE_CODE_NOT_FOUND, err.Error())
	}
	if err != nil {
		return nil, failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	return rec, nil
}

func (c *Coordinator) get(ctx actor.Context, id string) proto.Message {
	who, f := c.requester(ctx, "status", id)
	if f != nil {
		return f
	}
	if f := c.authorize("get_job_meta", who, nil, ""); f != nil {
		return f
	}
	rec, f := c.job(id)
	if f != nil {
		return f
	}
	return rec.Info
}

func (c *Coordinator) abort(ctx actor.Context, id string) {
	who, f := c.requester(ctx, "abort", id)
	if f != nil {
		ctx.Respond(f)
		return
	}
	rec, f := c.job(id)
	if f != nil {
		ctx.Respond(f)
		return
	}
	sub := submitterOf(rec)
	if f := c.authorize("abort_job", who, &sub, id); f != nil {
		ctx.Respond(f)
		return
	}
	pid := c.workflows[id]
	if pid == nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_NOT_RUNNING, fmt.Sprintf("job %s is %s", id, rec.Info.Status)))
		return
	}
	future := ctx.RequestFuture(pid, &abortJob{reason: "aborted by " + who.Name}, 30*time.Second)
	ctx.ReenterAfter(future, func(res any, err error) {
		if info, ok := res.(*hearthv1.JobInfo); ok && err == nil {
			ctx.Respond(info)
			return
		}
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, fmt.Sprintf("abort of %s: %v", id, err)))
	})
}

func (c *Coordinator) download(ctx actor.Context, id string) proto.Message {
	who, f := c.requester(ctx, "download", id)
	if f != nil {
		return f
	}
	rec, f := c.job(id)
	if f != nil {
		return f
	}
	sub := submitterOf(rec)
	if f := c.authorize("download_job", who, &sub, id); f != nil {
		return f
	}
	res := &hearthv1.JobResult{Info: rec.Info}
	if rec.Info.CompletedRounds == 0 || rec.Info.Workflow == job.WorkflowSwarm {
		return res // a swarm job's model never reaches the server: Info says where it is
	}
	if rec.Info.ModelDropped {
		return failure(hearthv1.FailureCode_FAILURE_CODE_EXPIRED, fmt.Sprintf("job %s's model is no longer kept (retention or its submitter's checkpoint limit)", id))
	}
	m, err := c.cfg.Store.Model(context.Background(), id, rec.Info.CompletedRounds)
	if err == nil {
		res.Model = m
		return res
	}
	if !errors.Is(err, jetstore.ErrNotFound) {
		return failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error())
	}
	// A large model: offered to the admin as a stream, answered once it is
	// loaded and hashed (nil: the answer comes from there).
	c.offerModel(ctx, who.Name, rec.Info.CompletedRounds, res)
	return nil
}

// offerModel loads a job's large checkpoint after round, offers it to the
// admin console as a stream and answers the download with its manifest;
// the model's buffer is released once the console has pulled it (or the
// stream failed).
func (c *Coordinator) offerModel(ctx actor.Context, admin string, round int64, res *hearthv1.JobResult) {
	reply, system, id := ctx.Sender(), ctx.ActorSystem(), res.Info.Id
	go func() {
		fail := func(err error) {
			system.Root.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_INTERNAL, err.Error()))
		}
		if c.cfg.Streams == nil {
			fail(errors.New("this server streams nothing"))
			return
		}
		wl, r, err := c.cfg.Store.Raw(context.Background(), id, round)
		if err != nil {
			fail(err)
			return
		}
		defer r.Close()
		layout, size, err := job.LayoutFromWire(wl)
		if err != nil {
			fail(err)
			return
		}
		f, err := model.NewFlat(layout, c.cfg.spill(size))
		if err != nil {
			fail(err)
			return
		}
		if _, err := io.ReadFull(r, f.Bytes()); err != nil {
			f.Close()
			fail(fmt.Errorf("checkpoint of round %d: %w", round, err))
			return
		}
		payload, err := c.cfg.Streams.Prepare(context.Background(), f.Bytes())
		var out *stream.Outgoing
		if err == nil {
			out, err = c.cfg.Streams.OfferPayload(context.Background(), admin, payload)
		}
		if err != nil {
			f.Close()
			fail(err)
			return
		}
		res.ModelStream, res.Layout = out.Manifest, wl
		system.Root.Send(reply, res)
		if err := out.Wait(context.Background()); err != nil {
			c.cfg.Log.Warn("model download failed", "job", id, "admin", admin, "err", err)
		}
		f.Close()
	}()
}

// resume restarts the workflows of jobs that were running when the server
// stopped, from their last completed round.
func (c *Coordinator) resume(ctx actor.Context) {
	recs, err := c.cfg.Store.List(context.Background())
	if err != nil {
		c.cfg.Log.Error("cannot list jobs to resume", "err", err)
		return
	}
	for _, rec := range recs {
		st := rec.Info.Status
		if st != hearthv1.JobStatus_JOB_STATUS_SUBMITTED && st != hearthv1.JobStatus_JOB_STATUS_RUNNING {
			continue
		}
		v, err := job.Verify(rec.Job, c.cfg.Trust, c.cfg.Now())
		if err == nil && v.Manifest.Workflow == job.WorkflowSwarm {
			err = errors.New("a swarm job does not resume after a server restart yet (its model is at the sites; submit it again)")
		}
		if err != nil {
			c.cfg.Log.Error("stored job no longer verifies; not resumed", "job", rec.Info.Id, "err", err)
			rec.Info.Status, rec.Info.Reason = hearthv1.JobStatus_JOB_STATUS_FAILED, "not resumed: "+err.Error()
			_ = c.cfg.Store.Put(context.Background(), rec)
			continue
		}
		var global *hearthv1.Model
		big := false
		if rec.Info.CompletedRounds > 0 || len(rec.Joined) > 0 {
			global, err = c.cfg.Store.Model(context.Background(), rec.Info.Id, rec.Info.CompletedRounds)
			if err != nil {
				if _, r, rerr := c.cfg.Store.Raw(context.Background(), rec.Info.Id, rec.Info.CompletedRounds); rerr == nil {
					r.Close()
					big = true
				} else {
					c.cfg.Log.Warn("no checkpoint to resume from; starting the job over", "job", rec.Info.Id, "err", err)
					rec.Info.CompletedRounds, rec.Info.History = 0, nil
				}
			}
		}
		c.cfg.Log.Info("resuming job", "job", rec.Info.Id, "completed_rounds", rec.Info.CompletedRounds)
		c.audit(auditor.Event{Action: "job.resumed", JobID: rec.Info.Id, Detail: map[string]string{"completed_rounds": fmt.Sprint(rec.Info.CompletedRounds)}})
		c.startWorkflow(ctx, rec, v.Manifest, global, big, nil) // the sites know the job: no credentials
	}
}

// startWorkflow runs a job; creds are the submitter's sealed credentials
// by site, which the workflow hands each site with the job and keeps in
// memory only.
func (c *Coordinator) startWorkflow(ctx actor.Context, rec *hearthv1.JobRecord, m *job.Manifest, checkpoint *hearthv1.Model, resumeBig bool,
	creds map[string]*hearthv1.SealedCredential) {
	targets := c.cfg.Sites
	if m.Sites[0] != job.AllSites {
		targets = m.Sites
	}
	var flow actor.Actor
	if m.Workflow == job.WorkflowSwarm {
		s := newSwarmFlow(&c.cfg, rec, m, targets)
		s.credentials, flow = creds, s
	} else {
		w := newFedAvg(&c.cfg, rec, m, targets, checkpoint, resumeBig)
		w.credentials, flow = creds, w
	}
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return flow }), rec.Info.Id)
	if err != nil {
		c.cfg.Log.Error("cannot start job workflow", "job", rec.Info.Id, "err", err)
		return
	}
	c.workflows[rec.Info.Id] = pid
	c.running[rec.Info.Id] = rec.Info.Submitter
}

// sweep is the coordinator's reminder to expire checkpoints (sweepEvery).
type sweep struct{}

// sweepEvery is how often checkpoints are expired besides at start and
// whenever a job ends, so that an idle server expires them too.
const sweepEvery = time.Hour

func (c *Coordinator) sweepLater(ctx actor.Context) {
	self, system := ctx.Self(), ctx.ActorSystem()
	time.AfterFunc(sweepEvery, func() { system.Root.Send(self, &sweep{}) })
}

// runningOf counts the jobs submitter has running.
func (c *Coordinator) runningOf(submitter string) int {
	n := 0
	for _, s := range c.running {
		if s == submitter {
			n++
		}
	}
	return n
}

// sweepCheckpoints drops the final models of ended jobs past the
// retention, and of each submitter's ended jobs past the newest
// CheckpointsPerSubmitter, so that no submitter can fill the server's
// storage. The jobs' records and histories stay.
func (c *Coordinator) sweepCheckpoints() {
	recs, err := c.cfg.Store.List(context.Background())
	if err != nil {
		c.cfg.Log.Warn("checkpoint sweep: cannot list jobs", "err", err)
		return
	}
	now, lim := c.cfg.Now(), c.cfg.Limits
	kept := map[string]int{}
	slices.SortFunc(recs, func(a, b *hearthv1.JobRecord) int {
		return cmp.Compare(b.Info.FinishedUnixNano, a.Info.FinishedUnixNano)
	})
	for _, r := range recs {
		info := r.Info
		if c.workflows[info.Id] != nil || info.ModelDropped || info.FinishedUnixNano == 0 {
			continue
		}
		kept[info.Submitter]++
		age := now.Sub(time.Unix(0, info.FinishedUnixNano))
		why := ""
		switch {
		case lim.CheckpointRetention > 0 && age > lim.CheckpointRetention:
			why = fmt.Sprintf("ended %v ago, retention %v", age.Round(time.Second), lim.CheckpointRetention)
		case kept[info.Submitter] > lim.CheckpointsPerSubmitter:
			why = fmt.Sprintf("%s's ended jobs past the newest %d", info.Submitter, lim.CheckpointsPerSubmitter)
		default:
			continue
		}
		c.cfg.Store.DropCheckpoint(context.Background(), info.Id, info.CompletedRounds)
		info.ModelDropped = true
		if err := c.cfg.Store.Put(context.Background(), r); err != nil {
			c.cfg.Log.Warn("checkpoint sweep: job not updated", "job", info.Id, "err", err)
		}
		c.audit(auditor.Event{Action: "checkpoint.dropped", JobID: info.Id, Detail: map[string]string{"reason": why}})
	}
}

func (c *Coordinator) audit(e auditor.Event) string { return record(c.cfg, e) }

func record(cfg Config, e auditor.Event) string {
	r, err := cfg.Audit.Append(e)
	if err != nil {
		cfg.Log.Error("audit append failed", "action", e.Action, "job", e.JobID, "err", err)
		return ""
	}
	return r.ID
}

func submitterOf(rec *hearthv1.JobRecord) pki.Identity {
	return pki.Identity{Name: rec.Info.Submitter, Org: rec.Info.SubmitterOrg, Kind: pki.KindAdmin}
}

// clip bounds a text that came from elsewhere before it is kept or
// echoed: at most 64 bytes, cut at a character.
func clip(s string) string { return envelope.Clip(s, 64) }

func failure(code hearthv1.FailureCode, msg string) *hearthv1.Failure {
	return &hearthv1.Failure{Kind: code, Message: msg}
}
