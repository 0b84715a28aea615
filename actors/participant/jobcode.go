package participant

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/plugins"
	codetrainer "github.com/hearthfl/hearth/plugins/trainer"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A job that brings its own trainer (a PyTorch script) runs it at this
// site through a trainer plugin (plugins/trainer): started when the site
// joins the job, after every check of admission.go passed, off the actor
// (Python and PyTorch take seconds to start); its Prepare gives the
// model's layout, whose digest goes to the server in JobJoined, the layout
// itself when the server asks (GetLayout), the values never; each round's
// training and every evaluation are its calls; it ends with the job here.

// JobCode is a job's own trainer as the site is to run it: its kind, the
// script the signed manifest pins (already checked against the pin), the
// arguments the manifest gives it, and the site's data folder.
type JobCode struct {
	JobID   string
	Kind    string
	Name    string // the script's file name
	Script  []byte
	SHA256  [sha256.Size]byte
	Args    []byte // a JSON object (job.Manifest.Arguments)
	DataDir string
}

// CodeTrainer is a job's own trainer, running (plugins/trainer's Client).
type CodeTrainer interface {
	Prepare(ctx context.Context) (*model.Model, error)
	Train(ctx context.Context, round int, global *model.Model) (*model.Model, codetrainer.Result, error)
	Evaluate(ctx context.Context, m *model.Model, split codetrainer.Split) (codetrainer.Metrics, error)
	Close() error
}

// StartCode starts a job's own trainer under the site's limits; ctx
// bounds the start. cmd/hearth makes it from the site's
// local/components.json (job_code).
type StartCode func(ctx context.Context, c JobCode) (CodeTrainer, error)

// prepareTimeout bounds a job's own trainer's start and Prepare together,
// as the participant waits for them.
const prepareTimeout = 5 * time.Minute

// prepared is a job's own trainer, started and prepared off the actor.
type prepared struct {
	code    CodeTrainer
	initial *model.Model
	err     error
}

// joinWithCode starts the job's own trainer and has it prepare the
// initial model, off the actor, then joins the job with that model in the
// answer (its layout's digest: the model's values stay here); a trainer
// that does not start or prepare refuses the job. It answers the server
// itself, and returns nil.
func (p *Participant) joinWithCode(ctx actor.Context, m *hearthv1.JoinJob, j *joined, out *hearthv1.JobJoined, enter func(*joined, *hearthv1.JobJoined) any, from bridge.Origin, received string) any {
	args, err := j.manifest.Arguments()
	if err != nil {
		return p.refuseJob(m.JobId, from, received, err.Error(), false)
	}
	a, done, err := p.admitOffActor(m.JobId, prepareTimeout)
	if err != nil {
		return p.refuseJob(m.JobId, from, received, err.Error(), false)
	}
	code := JobCode{JobID: m.JobId, Kind: j.manifest.Trainer.Kind, Name: m.Job.Code[0].Name, Script: m.Job.Code[0].Data,
		SHA256: sha256.Sum256(m.Job.Code[0].Data), Args: args, DataDir: p.cfg.DataDir}
	prior, held := p.gpus[m.JobId] // its GPUs are the job's while its trainer starts: no other job is admitted to them meanwhile
	if r := j.manifest.Resources; r != nil && r.GPUs > 0 {
		p.gpus[m.JobId] = r.GPUs
	}
	release := func() {
		if held {
			p.gpus[m.JobId] = prior
		} else {
			delete(p.gpus, m.JobId)
		}
	}
	reply, system := ctx.Sender(), ctx.ActorSystem()
	future := actor.NewFuture(system, prepareTimeout+10*time.Second)
	start := time.Now()
	go func() { // its context ends before the future does, so that the trainer it started always reaches the actor (and is closed there if unwanted)
		pctx := a.ctx // ended by a LeaveJob too
		c, err := p.cfg.StartCode(pctx, code)
		var initial *model.Model
		if err == nil {
			if initial, err = c.Prepare(pctx); err != nil {
				c.Close()
			}
		}
		system.Root.Send(future.PID(), &prepared{code: c, initial: initial, err: err})
	}()
	ctx.ReenterAfter(future, func(res any, err error) {
		wanted := done()
		pr, _ := res.(*prepared)
		switch {
		case !wanted: // the server left it meanwhile (LeaveJob released what the job held)
			held = false
			if err == nil && pr != nil && pr.err == nil {
				pr.code.Close()
			}
			err = errors.New("the server left the job while its trainer started")
		case err != nil:
			err = fmt.Errorf("its trainer did not start within %v: %w", prepareTimeout, err)
		case pr == nil:
			err = fmt.Errorf("its trainer's start answered %T", res)
		case pr.err != nil:
			err = p.codeFailed(m.JobId, 0, "start", pr.err)
		case model.LayoutBytes(model.LayoutOf(pr.initial)) > job.InlineLimit:
			err = fmt.Errorf("its trainer's initial model is %d bytes; a job's own trainer's models travel inline, at most %d bytes in this version",
				model.LayoutBytes(model.LayoutOf(pr.initial)), job.InlineLimit)
			pr.code.Close()
		}
		if err != nil {
			release()
			ctx.Send(reply, p.refuseJob(m.JobId, from, received, err.Error(), false))
			return
		}
		p.cfg.Log.Info("job trainer prepared", "job", m.JobId, "kind", code.Kind, "params", pr.initial.NumParams(), "took", time.Since(start))
		j.code, j.codeLayout = pr.code, model.LayoutOf(pr.initial) // its values never leave the site
		digest := job.LayoutDigest(j.codeLayout)
		out.LayoutSha256 = digest[:]
		res = enter(j, out)
		if _, joinedIt := res.(*hearthv1.JobJoined); !joinedIt {
			pr.code.Close()
			release()
		}
		ctx.Send(reply, res)
	})
	return nil
}

// layout answers the server's GetLayout: the names and shapes of the
// job's own trainer's model, when the digest asked for is the one this
// site reported.
func (p *Participant) layout(ctx actor.Context, m *hearthv1.GetLayout) {
	if _, ok := p.fromServer(ctx); !ok {
		return
	}
	j := p.jobs[m.JobId]
	switch {
	case j == nil:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site has not joined job "+m.JobId))
	case j.code == nil:
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "job "+m.JobId+" runs a built-in trainer here"))
	default:
		if d := job.LayoutDigest(j.codeLayout); !bytes.Equal(d[:], m.LayoutSha256) {
			ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, "this site's trainer has another layout than the one asked for"))
			return
		}
		ctx.Respond(job.LayoutToWire(j.codeLayout))
	}
}

// trainLocally trains one round from global on the site's data: through
// the job's own trainer, or the built-in one with the site's privacy
// accounting (privacy.go).
func (p *Participant) trainLocally(j *joined, round int64, spec trainer.Spec, global *model.Model) (*model.Model, trainer.Result, float64, error) {
	if j.code == nil {
		return p.trainPrivately(j.ctx, j, j.id, round, spec, global, j.train)
	}
	update, r, err := j.code.Train(j.ctx, int(round-1), global)
	if err != nil {
		return nil, trainer.Result{}, 0, p.codeFailed(j.id, round, "train", err)
	}
	if r.Samples > j.train.Rows() { // the commitment this site made when it joined
		return nil, trainer.Result{}, 0, fmt.Errorf("its trainer reports %d samples trained, more than the %d this site has", r.Samples, j.train.Rows())
	}
	p.audit(auditor.Event{Action: "trainer.round", JobID: j.id, Round: round, Detail: codeFigures(r)})
	return update, trainer.Result{Samples: r.Samples, Loss: coarse(r.Loss)}, 0, nil
}

// coarse rounds a figure a job's own code chose to 4 significant digits
// before it leaves the site: enough to follow a job, and a narrower
// channel for a script that would hide its site's data in it.
func coarse(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	scale := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}

// codeFailed records at the site why the job's own trainer failed (its
// text is the script's, or names the site's folders) and is the error the
// server hears: what kind of failure, and where to find why.
func (p *Participant) codeFailed(jobID string, round int64, op string, err error) error {
	id := p.audit(auditor.Event{Action: "trainer.failed", JobID: jobID, Round: round, Detail: map[string]string{"call": op, "reason": err.Error()}})
	kind := "failed"
	switch {
	case errors.Is(err, codetrainer.ErrMemoryLimit):
		kind = "reached its memory limit"
	case errors.Is(err, plugins.ErrDeadline):
		kind = "did not answer before its deadline"
	case errors.Is(err, plugins.ErrExited):
		kind = "exited"
	case errors.Is(err, codetrainer.ErrContract), errors.Is(err, codetrainer.ErrNonFinite), errors.Is(err, model.ErrLayout):
		kind = "answered outside the trainer contract"
	case errors.Is(err, context.Canceled):
		kind = "was stopped: the site left the job"
	case errors.Is(err, codetrainer.ErrSandbox):
		kind = "could not be confined (see the site's local/components.json job_code.sandbox)"
	case errors.Is(err, plugins.ErrStart):
		kind = "did not start"
	}
	return fmt.Errorf("its trainer %s in %s (why: %s's audit log, event %s)", kind, op, p.cfg.Self.Name, id)
}

// codeFigures are a job trainer's round figures for the site's audit log.
func codeFigures(r codetrainer.Result) map[string]string {
	out := map[string]string{"samples": fmt.Sprint(r.Samples), "loss": fmt.Sprintf("%.4f", r.Loss)}
	for k, v := range r.Metrics { // bounded by the trainer contract: at most 32, names of at most 64 bytes
		out["metric."+k] = fmt.Sprintf("%.6g", v)
	}
	return out
}

// evaluateOn measures m on the site's split of the job's data: through
// the job's own trainer, which reads the same files, or the built-in one.
func (p *Participant) evaluateOn(j *joined, m *model.Model, split codetrainer.Split) (trainer.Metrics, error) {
	data := j.val
	if split == codetrainer.Test {
		data = j.test
	}
	if j.code == nil {
		return trainer.Evaluate(j.spec, m, data)
	}
	mt, err := j.code.Evaluate(j.ctx, m, split)
	if err != nil {
		return trainer.Metrics{}, p.codeFailed(j.id, 0, "evaluate "+split.String(), err)
	}
	if data == nil || mt.Samples > data.Rows() {
		return trainer.Metrics{}, fmt.Errorf("its trainer reports %d %s samples, more than the %d this site has", mt.Samples, split, rows(data))
	}
	return trainer.Metrics{Samples: mt.Samples, Loss: coarse(mt.Loss), Accuracy: coarse(mt.Accuracy)}, nil
}

// closeCode ends a job's own trainer here, if it has one (a call in
// flight ends with an error: the job's context is cancelled first).
func (p *Participant) closeCode(j *joined) {
	if j.code == nil {
		return
	}
	if err := j.code.Close(); err != nil {
		p.cfg.Log.Warn("job trainer closed with an error", "job", j.id, "err", err)
	}
}

// errNoCodeRunner is why a site without a runner refuses a job's code.
var errNoCodeRunner = errors.New("this site runs no job code: its start-up set no runner for it")
