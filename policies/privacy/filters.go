package privacy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hearthfl/hearth/actors/learning/filter"
)

// MaxFilters bounds the filters in one list: a scope's task_data_filters
// or task_result_filters, or one of a job's lists.
const MaxFilters = 64

// FilterSpec is one filter of a chain as a policy or a job names it: the
// built-in filter's canonical name, the path as written (the name itself,
// or a FLARE class path mapped to it) and its validated configuration,
// which filter.New builds. A site's own filter, a plugin binary, has
// Name NamePlugin, Path the binary's path as written, no Config, and
// Plugin set.
type FilterSpec struct {
	Name   string
	Path   string
	Config filter.Config
	Plugin *PluginFilter
}

// String reads e.g. "percentile_privacy{gamma=0.01 percentile=10 steps=1}".
func (f FilterSpec) String() string {
	if f.Plugin != nil {
		return f.Plugin.String()
	}
	if f.Config == nil {
		return f.Name + "{?}"
	}
	return f.Name + "{" + filter.ParamsString(f.Config.Params()) + "}"
}

// cloneSpecs copies specs deeply enough that nothing of a Scope can be
// changed through the copy (exclude_vars' list of names is a slice).
func cloneSpecs(specs []FilterSpec) []FilterSpec {
	out := slices.Clone(specs)
	for i, f := range out {
		if f.Plugin != nil {
			out[i].Plugin = f.Plugin.Clone()
		}
		if ev, ok := f.Config.(filter.ExcludeVars); ok {
			ev.Names = slices.Clone(ev.Names)
			out[i].Config = ev
		}
	}
	return out
}

// flarePaths maps FLARE's class paths of its privacy filters (the module
// path and the package's re-export) to the built-in filters.
var flarePaths = map[string]string{
	"nvflare.app_common.filters.exclude_vars.ExcludeVars":             filter.NameExcludeVars,
	"nvflare.app_common.filters.ExcludeVars":                          filter.NameExcludeVars,
	"nvflare.app_common.filters.percentile_privacy.PercentilePrivacy": filter.NamePercentilePrivacy,
	"nvflare.app_common.filters.PercentilePrivacy":                    filter.NamePercentilePrivacy,
	"nvflare.app_common.filters.svt_privacy.SVTPrivacy":               filter.NameSVTPrivacy,
	"nvflare.app_common.filters.SVTPrivacy":                           filter.NameSVTPrivacy,
}

// KnownPaths lists every filter path a policy or a job may name: the
// built-in names, then FLARE's class paths, sorted.
func KnownPaths() []string {
	paths := filter.Names()
	flare := make([]string, 0, len(flarePaths))
	for p := range flarePaths {
		flare = append(flare, p)
	}
	slices.Sort(flare)
	return append(paths, flare...)
}

// resolve maps a filter path to a built-in filter's name.
func resolve(path string) (string, bool) {
	if slices.Contains(filter.Names(), path) {
		return path, true
	}
	name, ok := flarePaths[path]
	return name, ok
}

// ParseFilters parses a job's own filter list, as its manifest gives it:
// a value decoded from YAML or JSON into `any` (a list of maps, each
// {"path": ..., "args": {...}}; numbers as int, float64 or json.Number),
// in the format of a scope's filter lists without "direction". where is
// the list's place in the manifest, the prefix of every error's Path
// (e.g. "filters.task_result_filters"). v must be a list (an empty list
// is no filter); whether a manifest may leave the list out is the
// manifest parser's to say.
func ParseFilters(where string, v any) ([]FilterSpec, error) {
	parsed, err := fromGo(where, v, 0)
	if err != nil {
		return nil, err
	}
	return parseFilterList(where, parsed, "")
}

// parseFilterList reads a list of filters. direction is the one a site's
// list has ("in" for task data, "out" for task results), which its
// entries may repeat; "" for a job's list, whose entries name none.
func parseFilterList(path string, v any, direction string) ([]FilterSpec, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fail(path, `want a list of filters ({"path": ..., "args": {...}}), got %s`, kindOf(v))
	}
	if len(list) > MaxFilters {
		return nil, fail(path, "%d filters, at most %d", len(list), MaxFilters)
	}
	specs := make([]FilterSpec, 0, len(list))
	for i, fv := range list {
		f, err := parseFilter(index(path, i), fv, direction)
		if err != nil {
			return nil, err
		}
		specs = append(specs, f)
	}
	return specs, nil
}

func parseFilter(path string, v any, direction string) (FilterSpec, error) {
	o, ok := v.(*object)
	if !ok {
		return FilterSpec{}, fail(path, `want a filter as an object ({"path": ..., "args": {...}}), got %s`, kindOf(v))
	}
	var spec FilterSpec
	var args *object
	var sawPath, sawTimeout bool
	for _, m := range o.members {
		mpath := field(path, m.key)
		switch m.key {
		case "path":
			sawPath = true
			p, ok := m.value.(string)
			if !ok {
				return FilterSpec{}, fail(mpath, "want the filter's path as a string, got %s", kindOf(m.value))
			}
			name, known := resolve(p)
			if !known {
				return FilterSpec{}, fail(mpath, "unknown filter %q: Hearth runs only its built-in filters: %s; and a site's own plugin filters (\"plugin\": {...}, in the site's privacy.json only)",
					bounded(p), strings.Join(KnownPaths(), ", "))
			}
			spec.Name, spec.Path = name, p
		case "plugin":
			if direction == "" {
				return FilterSpec{}, fail(mpath, "%s", errJobPlugin)
			}
			spec.Plugin = &PluginFilter{Timeout: DefaultPluginTimeout, Direction: direction}
			if err := parsePlugin(mpath, m.value, &spec); err != nil {
				return FilterSpec{}, err
			}
		case "timeout":
			if direction == "" {
				return FilterSpec{}, fail(mpath, "%s", errJobPlugin)
			}
			sawTimeout = true
		case "args":
			if args, ok = m.value.(*object); !ok {
				return FilterSpec{}, fail(mpath, "want the filter's arguments as an object, got %s", kindOf(m.value))
			}
		case "direction":
			d, ok := m.value.(string)
			switch {
			case direction == "":
				return FilterSpec{}, fail(mpath, "a job's filter names no direction")
			case !ok || !strings.EqualFold(d, direction):
				return FilterSpec{}, fail(mpath, "want %q (or leave it out): a site applies this list only in that direction", direction)
			}
		default:
			return FilterSpec{}, fail(mpath, "unknown key in a filter (want path and args, or plugin, timeout and args)")
		}
	}
	switch {
	case sawPath && spec.Plugin != nil:
		return FilterSpec{}, fail(path, "a filter is either a built-in (path) or a plugin binary (plugin), not both")
	case spec.Plugin != nil:
		if sawTimeout {
			d, err := parseTimeout(field(path, "timeout"), memberValue(o, "timeout"))
			if err != nil {
				return FilterSpec{}, err
			}
			spec.Plugin.Timeout = d
		}
		a, err := pluginArgs(field(path, "args"), args)
		if err != nil {
			return FilterSpec{}, err
		}
		spec.Name, spec.Path, spec.Plugin.Args = NamePlugin, spec.Plugin.Path, a
		return spec, nil
	case !sawPath:
		return FilterSpec{}, fail(path, "the filter has no path")
	}
	if err := checkPluginOnly(path, spec, sawTimeout); err != nil {
		return FilterSpec{}, err
	}
	cfg, err := parseArgs(field(path, "args"), spec.Name, args)
	if err != nil {
		return FilterSpec{}, err
	}
	spec.Config = cfg
	return spec, nil
}

// memberValue is the value of o's member key, nil if it has none.
func memberValue(o *object, key string) any {
	for _, m := range o.members {
		if m.key == key {
			return m.value
		}
	}
	return nil
}

// argsOf reads one filter's arguments. Its methods return the default
// when an argument is absent and fail on a value of the wrong type;
// check refuses arguments the filter does not take.
type argsOf struct {
	path   string
	filter string
	o      *object // nil: no arguments
}

// notTaken are FLARE's arguments of the same filters that Hearth does not
// take, with why.
var notTaken = map[string]string{
	"data_kinds":        "Hearth's filters always work on the update's diff (local - global)",
	"epsilon_threshold": "Hearth runs SVT's standard budget split only",
	"epsilon_query":     "Hearth runs SVT's standard budget split only",
	"epsilon_release":   "Hearth runs SVT's standard budget split only (the release budget is c*noise_var)",
}

func (a argsOf) check(known ...string) error {
	if a.o == nil {
		return nil
	}
	for _, m := range a.o.members {
		if slices.Contains(known, m.key) {
			continue
		}
		msg := fmt.Sprintf("%s takes no argument %q (it takes %s)", a.filter, bounded(m.key), strings.Join(known, ", "))
		if why, ok := notTaken[m.key]; ok {
			msg += ": " + why
		}
		return fail(field(a.path, m.key), "%s", msg)
	}
	return nil
}

func (a argsOf) get(key string) (any, bool) {
	if a.o == nil {
		return nil, false
	}
	for _, m := range a.o.members {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

func (a argsOf) number(key string, def float64) (float64, error) {
	v, ok := a.get(key)
	if !ok {
		return def, nil
	}
	n, ok := v.(number)
	if !ok {
		return 0, fail(field(a.path, key), "want a number, got %s", kindOf(v))
	}
	return n.f, nil
}

func (a argsOf) integer(key string, def int) (int, error) {
	v, ok := a.get(key)
	if !ok {
		return def, nil
	}
	n, ok := v.(number)
	if !ok || n.f != math.Trunc(n.f) || math.Abs(n.f) > 1<<53 {
		return 0, fail(field(a.path, key), "want a whole number, got %s", describeNumber(v))
	}
	return int(n.f), nil
}

func (a argsOf) boolean(key string, def bool) (bool, error) {
	v, ok := a.get(key)
	if !ok {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fail(field(a.path, key), "want true or false, got %s", kindOf(v))
	}
	return b, nil
}

func (a argsOf) str(key string) (string, error) {
	v, ok := a.get(key)
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fail(field(a.path, key), "want a string, got %s", kindOf(v))
	}
	return s, nil
}

func describeNumber(v any) string {
	if n, ok := v.(number); ok {
		return n.text
	}
	return kindOf(v)
}

// parseArgs reads a filter's arguments into its configuration and
// validates it; a range error names the argument's path.
func parseArgs(path, name string, o *object) (filter.Config, error) {
	a := argsOf{path: path, filter: name, o: o}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var ae *filter.ArgError
		if errors.As(err, &ae) {
			p := path
			if ae.Arg != "" {
				p = field(path, ae.Arg)
			}
			return nil, &ParseError{Path: p, Msg: ae.Msg, Err: err}
		}
		return nil, &ParseError{Path: path, Msg: err.Error(), Err: err}
	}
	return cfg, nil
}

func (a argsOf) config() (filter.Config, error) {
	var err error
	num := func(key string, def float64, dst *float64) {
		if err == nil {
			*dst, err = a.number(key, def)
		}
	}
	whole := func(key string, def int, dst *int) {
		if err == nil {
			*dst, err = a.integer(key, def)
		}
	}
	switch a.filter {
	case filter.NameExcludeVars:
		if err := a.check("exclude_vars"); err != nil {
			return nil, err
		}
		return a.excludeVars()
	case filter.NamePercentilePrivacy:
		if err := a.check("percentile", "gamma", "steps"); err != nil {
			return nil, err
		}
		c := filter.DefaultPercentile()
		num("percentile", c.Percentile, &c.Percentile)
		num("gamma", c.Gamma, &c.Gamma)
		whole("steps", c.Steps, &c.Steps)
		return c, err
	case filter.NameSVTPrivacy:
		if err := a.check("fraction", "epsilon", "noise_var", "gamma", "tau", "replace", "steps"); err != nil {
			return nil, err
		}
		c := filter.DefaultSVT()
		num("fraction", c.Fraction, &c.Fraction)
		num("epsilon", c.Epsilon, &c.Epsilon)
		num("noise_var", c.NoiseVar, &c.NoiseVar)
		num("gamma", c.Gamma, &c.Gamma)
		num("tau", c.Tau, &c.Tau)
		whole("steps", c.Steps, &c.Steps)
		if err == nil {
			c.Replace, err = a.boolean("replace", c.Replace)
		}
		return c, err
	case filter.NameGaussianPrivacy:
		if err := a.check("noise_multiplier", "clip_norm"); err != nil {
			return nil, err
		}
		for _, k := range []string{"noise_multiplier", "clip_norm"} {
			if _, ok := a.get(k); !ok {
				return nil, fail(field(a.path, k), "missing: gaussian_privacy needs noise_multiplier and clip_norm (no default guarantee)")
			}
		}
		var c filter.Gaussian
		num("noise_multiplier", 0, &c.NoiseMultiplier)
		num("clip_norm", 0, &c.ClipNorm)
		return c, err
	case filter.NameQuantize:
		if err := a.check("codec"); err != nil {
			return nil, err
		}
		if _, ok := a.get("codec"); !ok {
			return nil, fail(field(a.path, "codec"), "missing: quantize needs a codec")
		}
		codec, err := a.str("codec")
		return filter.Quantize{Codec: codec}, err
	}
	return nil, fail(a.path, "no arguments for filter %q", a.filter) // cannot happen: resolve knows only these
}

// excludeVars reads exclude_vars: a list of names or a regular expression.
func (a argsOf) excludeVars() (filter.Config, error) {
	path := field(a.path, "exclude_vars")
	v, ok := a.get("exclude_vars")
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil, fail(path, "an empty regular expression (FLARE would exclude nothing)")
		}
		return filter.ExcludeVars{Pattern: v}, nil
	case []any:
		names := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fail(index(path, i), "want a tensor's name, got %s", kindOf(e))
			}
			names[i] = s
		}
		return filter.ExcludeVars{Names: names}, nil
	}
	if !ok {
		return nil, fail(path, "missing: exclude_vars needs a list of tensor names or a regular expression (FLARE would exclude nothing)")
	}
	return nil, fail(path, "want a list of tensor names or a regular expression, got %s", kindOf(v))
}
