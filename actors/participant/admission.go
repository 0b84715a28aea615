package participant

import (
	"errors"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies/components"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// What a site decides of a job before anything of it is built or loaded
// here, beside its authorization (participant.go's admit): the job's
// components and code, and its resources.

// checkComponents decides, before anything of the job is built here,
// whether its components may run at this site: a job's own code needs the
// submitter's byoc right here (FLARE's, decided by this site's own
// authorization.json) and must be what the signed manifest pins; every
// trainer, workflow, filter and script must be in the site's allow-list;
// and the site must run job code at all (Config.StartCode).
func (p *Participant) checkComponents(v *job.Verified, who pki.Identity, code []*hearthv1.JobFile) error {
	m := v.Manifest
	if m.Trainer.Custom() {
		if allowed, reason := p.cfg.Policy.Allow("byoc", who, nil); !allowed {
			return errors.New("site policy: byoc: " + reason)
		}
	}
	if err := job.CheckCode(m, code); err != nil {
		return err
	}
	allow := p.cfg.Components
	if allow == nil {
		allow = components.Builtins()
	}
	c := components.Job{Trainer: m.Trainer.Kind, Workflow: m.Workflow, ScriptSHA256: m.Trainer.ScriptSHA256}
	for _, f := range m.ResultFilters {
		c.Filters = append(c.Filters, f.Name)
	}
	if d := allow.Check(c); !d.Allowed {
		return errors.New(d.Reason)
	}
	if m.Trainer.Custom() && p.cfg.StartCode == nil {
		return errNoCodeRunner
	}
	return nil
}

// checkResources decides a job's resource spec against what the site
// offers and what other jobs hold of it: each GPU serves one job at a time.
func (p *Participant) checkResources(m *job.Manifest, jobID string) error {
	r := m.Resources
	if r == nil {
		return nil
	}
	inUse := 0
	for id, n := range p.gpus {
		if id != jobID { // a job joined again keeps its own
			inUse += n
		}
	}
	if d := p.cfg.Resources.Admit(*r, inUse); !d.Allowed {
		return errors.New(d.Reason)
	}
	return nil
}
