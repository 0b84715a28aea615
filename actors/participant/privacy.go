package participant

import (
	"context"
	"errors"
	"fmt"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
)

// A job that trains with DP-SGD is accounted for at each site: the site's
// own accountant adds every round it trains (actors/learning/dp), its ε so
// far goes with each result, and a round that would take it past its
// budget is refused before it trains, with the reason audited; the job
// goes on without the site, or ends below its quorum.

// jobPrivacy is a joined job's differential privacy at this site.
type jobPrivacy struct {
	accountant dp.Accountant
	delta      float64 // the δ ε is reported and budgeted at
	// budget is the ε this site will not exceed in the job (0: none); the
	// job's own target, when it names one.
	budget float64
}

// errBudget is a round refused for the site's privacy budget.
var errBudget = errors.New("privacy budget")

// setupPrivacy prepares a joined job's DP-SGD: for a target ε, this site's
// own noise multiplier, the smallest that keeps all the job's rounds
// within the target for its number of records, and the target as its
// budget.
func (p *Participant) setupPrivacy(j *joined) error {
	d := j.manifest.Trainer.DP
	if d == nil {
		return nil
	}
	j.privacy = &jobPrivacy{delta: d.ReportDelta()}
	spec := j.spec
	dpSpec := *spec.DP
	spec.DP = &dpSpec
	if d.Epsilon > 0 {
		round, err := trainer.DPMechanism(spec, j.train.Rows())
		if err != nil {
			return err
		}
		sigma, err := dp.NoiseMultiplier(d.Epsilon, j.privacy.delta, round.SamplingRate, round.Steps*int64(j.manifest.Rounds))
		if err != nil {
			return fmt.Errorf("privacy: no noise keeps %d rounds within ε %v here: %w", j.manifest.Rounds, d.Epsilon, err)
		}
		dpSpec.NoiseMultiplier = sigma
		j.privacy.budget = d.Epsilon
	}
	j.spec = spec
	return nil
}

// trainPrivately trains one round of a job, checking its privacy budget
// first and accounting what DP-SGD spent after; eps is the site's ε in
// the job so far (0 without DP). A round refused for the budget is an
// error wrapping errBudget, audited.
func (p *Participant) trainPrivately(ctx context.Context, j *joined, jobID string, round int64, spec trainer.Spec, global *model.Model, data *dataset.Set) (*model.Model, trainer.Result, float64, error) {
	pr := j.privacy
	if pr != nil && pr.budget > 0 && spec.DP != nil {
		next, err := trainer.DPMechanism(spec, data.Rows())
		if err != nil {
			return nil, trainer.Result{}, 0, err
		}
		exceed, g, err := pr.accountant.WouldExceed(pr.budget, pr.delta, next)
		if exceed || err != nil {
			reason := fmt.Sprintf("round %d would bring this site's ε to %.3f at δ %g, beyond its budget of %g", round, g.Epsilon, pr.delta, pr.budget)
			if err != nil {
				reason = err.Error()
			}
			p.audit(auditor.Event{Action: "privacy.budget.refused", JobID: jobID, Round: round, Detail: map[string]string{"reason": reason}})
			return nil, trainer.Result{}, 0, fmt.Errorf("%w: %s", errBudget, reason)
		}
	}
	update, r, err := trainer.Train(ctx, spec, global, data)
	if err != nil || r.DP == nil || pr == nil {
		return update, r, 0, err
	}
	if err := pr.accountant.Add(*r.DP); err != nil {
		return nil, trainer.Result{}, 0, err
	}
	g, err := pr.accountant.Epsilon(pr.delta)
	if err != nil {
		return nil, trainer.Result{}, 0, err
	}
	p.audit(auditor.Event{Action: "privacy.spent", JobID: jobID, Round: round, Detail: map[string]string{
		"epsilon": fmt.Sprintf("%.4f", g.Epsilon), "delta": fmt.Sprint(pr.delta), "order": fmt.Sprint(g.Order),
		"noise_multiplier": fmt.Sprintf("%.4f", r.DP.NoiseMultiplier), "sampling_rate": fmt.Sprintf("%.5f", r.DP.SamplingRate),
		"steps": fmt.Sprint(r.DP.Steps), "clip_norm": fmt.Sprint(spec.DP.ClipNorm)}})
	return update, r, g.Epsilon, nil
}
