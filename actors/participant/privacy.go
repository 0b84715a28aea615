package participant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/dp"
	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/policies/privacy"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
	"google.golang.org/protobuf/proto"
)

// A job that trains with DP-SGD is accounted for at each site: the site's
// own accountant adds every round it trains (actors/learning/dp), its ε so
// far goes with each result, and a round that would take it past its
// budget is refused before it trains, with the reason audited; the job
// goes on without the site, or ends below its quorum.

// jobPrivacy is a joined job's differential privacy at this site.
type jobPrivacy struct {
	accountant dp.Accountant
	delta      float64 // the δ ε is reported at
	// pure is the pure ε the job's SVT filters have spent here (FLARE's
	// ledger, summed), composed with the accountant's (ε, δ) by addition.
	pure float64
	// last is the newest released round: asked again from the same global
	// model (a resumed job repeats a round), the site sends it again
	// instead of training and spending anew.
	mu   sync.Mutex
	last *releasedRound
}

type releasedRound struct {
	round  int64
	digest []byte // swarm.Digest of the global model it was trained from
	result *hearthv1.TrainResult
}

// released keeps a round's result for resending; nil pr keeps nothing.
func (pr *jobPrivacy) released(round int64, global *model.Model, res *hearthv1.TrainResult) {
	if pr == nil {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.last = &releasedRound{round: round, digest: swarm.Digest(global), result: proto.Clone(res).(*hearthv1.TrainResult)}
}

// resend is the result released for round from global before, nil if
// there is none.
func (pr *jobPrivacy) resend(round int64, global *model.Model) *hearthv1.TrainResult {
	if pr == nil {
		return nil
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if l := pr.last; l != nil && l.round == round && bytes.Equal(l.digest, swarm.Digest(global)) {
		return proto.Clone(l.result).(*hearthv1.TrainResult)
	}
	return nil
}

// spend records one release's cost durably in the site's ledger, then
// adds it: a re-join or a restart of the site starts from what was spent,
// never from zero (restoreSpend).
func (p *Participant) spend(j *joined, s Spend) error {
	if err := p.cfg.Ledger.RecordSpend(j.nonce, j.id, s); err != nil {
		return fmt.Errorf("privacy: the spend not recorded, so not released: %w", err)
	}
	return j.privacy.add(s)
}

func (pr *jobPrivacy) add(s Spend) error {
	if s.Pure > 0 {
		pr.pure += s.Pure
		return nil
	}
	return pr.accountant.Add(dp.Mechanism{SamplingRate: s.SamplingRate, NoiseMultiplier: s.NoiseMultiplier, Steps: s.Steps})
}

// restoreSpend gives a joined job what this site spent in it before (the
// ledger's record, across re-joins and restarts).
func (p *Participant) restoreSpend(j *joined) error {
	past := p.cfg.Ledger.Spent(j.nonce)
	if len(past) == 0 {
		return nil
	}
	if j.privacy == nil {
		j.privacy = &jobPrivacy{delta: job.DefaultDelta}
	}
	for _, s := range past {
		if err := j.privacy.add(s); err != nil {
			return fmt.Errorf("privacy: what this site spent in the job before does not load: %w", err)
		}
	}
	return nil
}

// spentSoFar is the site's ε in the job at its δ: the accountant's and the
// pure ε of its SVT filters, added.
func (pr *jobPrivacy) spentSoFar(delta float64) (float64, error) {
	g, err := pr.accountant.Epsilon(delta)
	if err != nil {
		return 0, err
	}
	return g.Epsilon + pr.pure, nil
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
	if j.privacy == nil {
		j.privacy = &jobPrivacy{delta: d.ReportDelta()}
	}
	j.privacy.delta = d.ReportDelta()
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
		j.budgets = append(j.budgets, dp.Guarantee{Epsilon: d.Epsilon, Delta: j.privacy.delta}) // the job's own promise
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
	if pr != nil && spec.DP != nil {
		next, err := trainer.DPMechanism(spec, data.Rows())
		if err != nil {
			return nil, trainer.Result{}, 0, err
		}
		for _, b := range j.budgets { // the site's scope's and the job's own
			exceed, g, err := pr.accountant.WouldExceed(b.Epsilon-pr.pure, b.Delta, next)
			if exceed || err != nil {
				reason := fmt.Sprintf("round %d would bring this site's ε to %.3f at δ %g, beyond its budget of %g", round, g.Epsilon, b.Delta, b.Epsilon)
				if err != nil {
					reason = err.Error()
				}
				p.audit(auditor.Event{Action: "privacy.budget.refused", JobID: jobID, Round: round, Detail: map[string]string{"reason": reason}})
				return nil, trainer.Result{}, 0, fmt.Errorf("%w: %s", errBudget, reason)
			}
		}
	}
	update, r, err := trainer.Train(ctx, spec, global, data)
	if err != nil || r.DP == nil || pr == nil {
		return update, r, 0, err
	}
	r.Loss = 0 // measured on the private samples, and no part of the guarantee: not sent
	if err := p.spend(j, Spend{SamplingRate: r.DP.SamplingRate, NoiseMultiplier: r.DP.NoiseMultiplier, Steps: r.DP.Steps}); err != nil {
		return nil, trainer.Result{}, 0, err
	}
	g, err := pr.accountant.Epsilon(pr.delta)
	if err != nil {
		return nil, trainer.Result{}, 0, err
	}
	g.Epsilon += pr.pure
	p.audit(auditor.Event{Action: "privacy.spent", JobID: jobID, Round: round, Detail: map[string]string{
		"epsilon": fmt.Sprintf("%.4f", g.Epsilon), "delta": fmt.Sprint(pr.delta), "order": fmt.Sprint(g.Order),
		"noise_multiplier": fmt.Sprintf("%.4f", r.DP.NoiseMultiplier), "sampling_rate": fmt.Sprintf("%.5f", r.DP.SamplingRate),
		"steps": fmt.Sprint(r.DP.Steps), "clip_norm": fmt.Sprint(spec.DP.ClipNorm)}})
	return update, r, g.Epsilon, nil
}

// setupScope puts a joined job in its privacy scope at this site (the
// site's local/privacy.json): a scope the site does not have refuses the
// job; the scope's filters on what leaves the site run first, the job's
// own after; a scope with a DP budget takes only jobs that train with
// differential privacy, and bounds what they spend here.
func (p *Participant) setupScope(j *joined) error {
	m := j.manifest
	pol := p.cfg.Privacy
	if pol == nil {
		if m.PrivacyScope != "" || len(m.ResultFilters) > 0 {
			return errors.New("privacy: this site has no privacy policy, and the job names a scope or filters")
		}
		return nil
	}
	scope, err := pol.Scope(m.PrivacyScope)
	if err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	chains, err := privacy.Chain(scope, m.ResultFilters, nil)
	if err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	filters, err := privacy.Build(chains.Result, p.cfg.FilterPlugins)
	if err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	incoming, err := privacy.Build(chains.Data, p.cfg.FilterPlugins)
	if err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	j.scope, j.chain, j.filters, j.dataChain, j.dataFilters = scope.Name(), chains.Result, filters, chains.Data, incoming
	for _, l := range chains.Result {
		if l.Name == filter.NameGaussianPrivacy || l.Name == filter.NameSVTPrivacy { // they spend ε: accounted here
			j.privacy = &jobPrivacy{delta: job.DefaultDelta}
			if b, ok := scope.Budget(); ok {
				j.privacy.delta = b.Delta
			}
			break
		}
	}
	if b, ok := scope.Budget(); ok {
		if m.Trainer.DP == nil && j.privacy == nil {
			return fmt.Errorf("privacy: scope %q spends at most ε %g at δ %g here, and the job trains without differential privacy (trainer.dp, or a gaussian or SVT filter)", scope.Name(), b.Epsilon, b.Delta)
		}
		j.budgets = append(j.budgets, dp.Guarantee{Epsilon: b.Epsilon, Delta: b.Delta})
	}
	return nil
}

// filterIncoming runs the job's chain on task data (the global model)
// entering the site, each filter audited.
func (p *Participant) filterIncoming(j *joined, jobID string, round int64, global *model.Model) (*model.Model, error) {
	if len(j.dataFilters) == 0 {
		return global, nil
	}
	out, rep, err := filter.RunChain(j.dataFilters, nil, global)
	p.auditFilters(j, j.dataChain, j.dataFilters, rep, jobID, round, "in")
	if err != nil {
		p.auditRefusal(j, jobID, round, "in", err)
		return nil, fmt.Errorf("privacy filter on the global model: %w", err)
	}
	return out, nil
}

// filterUpdate runs the job's chain on a trained update before it leaves:
// each filter audited with its parameters, where it came from and what it
// did (only what no noise needs to protect). What the chain's gaussian and
// SVT filters spend is accounted, and an update whose release would take
// the site past a budget is not released (errBudget).
func (p *Participant) filterUpdate(j *joined, jobID string, round int64, global, update *model.Model) (*model.Model, error) {
	out, _, err := p.filterUpdateExcluding(j, jobID, round, global, update)
	return out, err
}

// filterUpdateExcluding is filterUpdate, and names the tensors the chain
// excluded (FLARE's exclude_vars): they hold the global model's values, and
// the server's FedAvg leaves this site out of their average.
func (p *Participant) filterUpdateExcluding(j *joined, jobID string, round int64, global, update *model.Model) (*model.Model, []string, error) {
	if len(j.filters) == 0 {
		return update, nil, nil
	}
	out, rep, err := filter.RunChain(j.filters, global, update)
	if err := p.releaseFiltered(j, jobID, round, rep, err); err != nil {
		return nil, nil, err
	}
	return out, rep.Excluded, nil
}

// filterUpdateInto is filterUpdate writing the filtered update into dst,
// a model with update's layout that shares no memory with the inputs (the
// buffer the update streams from): a plugin filter at the end of the chain
// writes its checked answer there, with no copy in between. On error
// nothing in dst may leave.
func (p *Participant) filterUpdateInto(j *joined, jobID string, round int64, global, update, dst *model.Model) error {
	rep, err := filter.RunChainInto(j.filters, global, update, dst)
	return p.releaseFiltered(j, jobID, round, rep, err)
}

// releaseFiltered audits what the chain on an update did (err: the
// chain's refusal) and accounts what its gaussian and SVT filters spend;
// an error means the update may not leave: the chain refused it, or its
// release would take the site past a budget (errBudget).
func (p *Participant) releaseFiltered(j *joined, jobID string, round int64, rep filter.ChainReport, err error) error {
	p.auditFilters(j, j.chain, j.filters, rep, jobID, round, "out")
	if err != nil {
		p.auditRefusal(j, jobID, round, "out", err)
		// The server hears that, not why: a filter's reason (a plugin's
		// own text above all) could carry what the filter saw of the
		// update. The reason is in this site's audit.
		return fmt.Errorf("privacy filter: the update was refused by filter %d of the chain (the reason is in %s's audit)", len(rep.Reports), p.cfg.Self.Name)
	}
	pr := j.privacy
	if pr == nil {
		return nil
	}
	for _, r := range rep.Reports {
		s := r.Privacy
		if s == nil {
			continue
		}
		for _, b := range j.budgets {
			var over bool
			if sp := spendOf(s); sp.Pure == 0 {
				exceed, _, err := pr.accountant.WouldExceed(b.Epsilon-pr.pure, b.Delta, dp.Mechanism{SamplingRate: sp.SamplingRate, NoiseMultiplier: sp.NoiseMultiplier, Steps: sp.Steps})
				over = exceed || err != nil
			} else {
				so, err := pr.spentSoFar(b.Delta)
				over = err != nil || so+s.Epsilon > b.Epsilon
			}
			if over {
				reason := fmt.Sprintf("round %d's %s filter would take this site past its budget of ε %g at δ %g", round, r.Filter, b.Epsilon, b.Delta)
				p.audit(auditor.Event{Action: "privacy.budget.refused", JobID: jobID, Round: round, Detail: map[string]string{"reason": reason}})
				return fmt.Errorf("%w: %s", errBudget, reason)
			}
		}
		if err := p.spend(j, spendOf(s)); err != nil {
			return err
		}
	}
	return nil
}

// spendOf is what a filter's release costs: an SVT's pure ε, or a
// gaussian filter's step, counted at half its noise multiplier: the site's
// own update, clipped to C, moves by up to 2C when its data are replaced
// (the filter states sensitivity C, for a site added or removed).
func spendOf(s *filter.Privacy) Spend {
	if s.Mechanism == nil {
		return Spend{Pure: s.Epsilon}
	}
	return Spend{SamplingRate: s.Mechanism.SamplingRate, NoiseMultiplier: s.Mechanism.NoiseMultiplier / 2, Steps: s.Mechanism.Steps}
}

// epsilonOf is the site's ε in the job so far, 0 for a job that spends
// none.
func epsilonOf(j *joined) float64 {
	if j.privacy == nil {
		return 0
	}
	e, err := j.privacy.spentSoFar(j.privacy.delta)
	if err != nil {
		return 0
	}
	return e
}

// maxRefusal bounds a filter refusal's reason in the audit: it can
// carry what a plugin wrote.
const maxRefusal = 1024

// auditRefusal audits a chain that refused (a filter's error, a plugin
// that crashed, hung or answered outside its contract): nothing it was
// given leaves.
func (p *Participant) auditRefusal(j *joined, jobID string, round int64, direction string, err error) {
	reason := err.Error()
	if len(reason) > maxRefusal {
		reason = reason[:maxRefusal] + "...[clipped]"
	}
	p.audit(auditor.Event{Action: "privacy.filter.refused", JobID: jobID, Round: round,
		Detail: map[string]string{"scope": j.scope, "direction": direction, "reason": reason}})
}

// auditFilters audits each filter a chain ran (a chain that stopped at
// a refusal: up to the filter that refused).
func (p *Participant) auditFilters(j *joined, chain []privacy.Link, filters []filter.Filter, rep filter.ChainReport, jobID string, round int64, direction string) {
	for i, r := range rep.Reports {
		link := chain[i]
		detail := map[string]string{"filter": link.Name, "from": link.Origin.String(), "scope": j.scope, "index": fmt.Sprint(link.Index), "direction": direction}
		for k, v := range filters[i].Params() {
			detail["arg."+k] = v
		}
		s := r.Shareable()
		if s.Zeroed > 0 {
			detail["zeroed"] = fmt.Sprint(s.Zeroed)
		}
		if s.NoiseStd > 0 {
			detail["noise_std"] = fmt.Sprintf("%g", s.NoiseStd)
		}
		if len(s.Excluded) > 0 {
			detail["excluded"] = strings.Join(s.Excluded, ",")
		}
		p.audit(auditor.Event{Action: "privacy.filtered", JobID: jobID, Round: round, Detail: detail})
	}
}
