package privacy

import (
	"errors"
	"fmt"

	"github.com/hearthfl/hearth/actors/learning/filter"
)

// Origin is where a filter of a chain came from, for the audit.
type Origin int

// The origins of a chain's filters.
const (
	OriginSite Origin = iota + 1 // the site's privacy scope
	OriginJob                    // the job's manifest
)

// String is "site" or "job".
func (o Origin) String() string {
	switch o {
	case OriginSite:
		return "site"
	case OriginJob:
		return "job"
	}
	return fmt.Sprintf("Origin(%d)", int(o))
}

// Link is one filter of a chain and where it came from: the site's scope
// (Scope) or the job, and its place in that list (Index).
type Link struct {
	FilterSpec
	Origin Origin
	Scope  string // the scope the chain is for
	Index  int    // position in the scope's or the job's list
}

// String reads e.g. `site scope "private" [0] percentile_privacy{...}` or
// `job [1] quantize{codec=float16}`.
func (l Link) String() string {
	if l.Origin == OriginSite {
		return fmt.Sprintf("site scope %q [%d] %s", l.Scope, l.Index, l.FilterSpec)
	}
	return fmt.Sprintf("%s [%d] %s", l.Origin, l.Index, l.FilterSpec)
}

// Chains are the filter chains a job runs under at a site: on task data
// entering the site and on task results leaving it, each the scope's
// filters first, in the scope's order, then the job's own.
type Chains struct {
	Scope  string
	Data   []Link
	Result []Link
}

// Chain builds a job's chains in scope: the site's filters first, in the
// order the site wrote them, then the job's (jobResult on task results,
// jobData on task data), appended. Nothing a job gives can remove,
// reorder or replace the site's filters; a job's filter runs on what the
// site's have already made of the data, so it cannot undo them either.
// Every job filter is checked again (a known name, a valid
// configuration) so that a FilterSpec not made by ParseFilters is refused
// too.
func Chain(scope *Scope, jobResult, jobData []FilterSpec) (Chains, error) {
	if scope == nil {
		return Chains{}, errors.New("privacy: chain: no scope (Policy.Scope decides it)")
	}
	c := Chains{Scope: scope.name}
	var err error
	if c.Data, err = links(scope, jobData, "task data"); err != nil {
		return Chains{}, err
	}
	if c.Result, err = links(scope, jobResult, "task result"); err != nil {
		return Chains{}, err
	}
	return c, nil
}

func links(scope *Scope, job []FilterSpec, which string) ([]Link, error) {
	site := scope.data
	if which == "task result" {
		site = scope.result
	}
	if len(job) > MaxFilters {
		return nil, fmt.Errorf("privacy: the job's %s filters: %d, at most %d", which, len(job), MaxFilters)
	}
	out := make([]Link, 0, len(site)+len(job))
	for i, f := range cloneSpecs(site) {
		out = append(out, Link{FilterSpec: f, Origin: OriginSite, Scope: scope.name, Index: i})
	}
	for i, f := range cloneSpecs(job) {
		if f.Plugin != nil {
			return nil, fmt.Errorf("privacy: the job's %s filter %d: %s", which, i, errJobPlugin)
		}
		name, known := resolve(f.Path)
		if !known || name != f.Name || f.Config == nil || f.Config.Name() != f.Name {
			return nil, fmt.Errorf("privacy: the job's %s filter %d: not a filter ParseFilters made (%s)", which, i, bounded(f.String()))
		}
		if err := f.Config.Validate(); err != nil {
			return nil, fmt.Errorf("privacy: the job's %s filter %d: %w", which, i, err)
		}
		out = append(out, Link{FilterSpec: f, Origin: OriginJob, Scope: scope.name, Index: i})
	}
	return out, nil
}

// ErrNoPluginHost: a chain holds a site's plugin filter and Build was
// given nothing that runs plugins.
var ErrNoPluginHost = errors.New("the site runs no plugin filters")

// PluginFilters turns a chain's plugin link (a site's own filter, Plugin
// set) into the filter that runs it; plugins/filter's Site is one. It
// answers an error when the plugin cannot run (its binary refused, say).
type PluginFilters interface {
	Filter(l Link) (filter.Filter, error)
}

// Build makes the filters of a chain, in its order: filter.New on each
// built-in link's configuration, with opts, and plugins.Filter on each
// plugin link. A chain with a plugin link and a nil plugins is refused
// (ErrNoPluginHost).
func Build(chain []Link, plugins PluginFilters, opts ...filter.Option) ([]filter.Filter, error) {
	fs := make([]filter.Filter, len(chain))
	for i, l := range chain {
		if l.Plugin != nil {
			if l.Origin != OriginSite {
				return nil, fmt.Errorf("privacy: %s: %s", l, errJobPlugin)
			}
			if plugins == nil {
				return nil, fmt.Errorf("privacy: %s: %w", l, ErrNoPluginHost)
			}
			f, err := plugins.Filter(l)
			if err != nil {
				return nil, fmt.Errorf("privacy: %s: %w", l, err)
			}
			fs[i] = f
			continue
		}
		f, err := filter.New(l.Config, opts...)
		if err != nil {
			return nil, fmt.Errorf("privacy: %s: %w", l, err)
		}
		fs[i] = f
	}
	return fs, nil
}
