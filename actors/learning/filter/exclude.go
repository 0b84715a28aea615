package filter

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Bounds on exclude_vars' arguments.
const (
	MaxExcludeNames   = 1 << 14 // names in the list
	MaxExcludeNameLen = 1 << 10 // bytes in one name
	MaxPatternLen     = 1 << 12 // bytes in the regular expression
)

// ExcludeVars configures exclude_vars: the tensors it keeps from leaving
// the site, named by a list (Names, exact names) or by a regular
// expression (Pattern, Go RE2 syntax, matched anywhere in the name as
// Python's re.search does). Exactly one of the two is set; an empty list
// or pattern is refused, for a filter that excludes nothing must not look
// like protection.
type ExcludeVars struct {
	Names   []string
	Pattern string
}

// Name returns "exclude_vars".
func (ExcludeVars) Name() string { return NameExcludeVars }

// Validate checks that exactly one of Names and Pattern is given, that
// every name is non-empty and unique, and that the pattern compiles.
func (c ExcludeVars) Validate() error {
	_, err := c.compile()
	return err
}

func (c ExcludeVars) compile() (*regexp.Regexp, error) {
	fail := func(msg string, args ...any) error {
		return &ArgError{Filter: NameExcludeVars, Arg: "exclude_vars", Msg: fmt.Sprintf(msg, args...)}
	}
	switch {
	case c.Names != nil && c.Pattern != "":
		return nil, fail("give a list of names or a regular expression, not both")
	case c.Pattern != "":
		if len(c.Pattern) > MaxPatternLen {
			return nil, fail("the regular expression is longer than %d bytes", MaxPatternLen)
		}
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			return nil, fail("%v (Go RE2 syntax: no backreferences or lookaround; see the package documentation)", err)
		}
		return re, nil
	case len(c.Names) == 0:
		return nil, fail("names nothing to exclude (give a list of tensor names or a regular expression)")
	case len(c.Names) > MaxExcludeNames:
		return nil, fail("%d names, at most %d", len(c.Names), MaxExcludeNames)
	}
	seen := make(map[string]bool, len(c.Names))
	for i, n := range c.Names {
		if n == "" || len(n) > MaxExcludeNameLen {
			return nil, fail("name %d is empty or longer than %d bytes", i, MaxExcludeNameLen)
		}
		if seen[n] {
			return nil, fail("name %q is listed twice", n)
		}
		seen[n] = true
	}
	return nil, nil
}

// Params are {"exclude_vars": the list as JSON, "match": "names"} or
// {"exclude_vars": the pattern, "match": "regexp"}.
func (c ExcludeVars) Params() map[string]string {
	if c.Pattern != "" {
		return map[string]string{"exclude_vars": c.Pattern, "match": "regexp"}
	}
	b, _ := json.Marshal(c.Names) // strings always marshal
	return map[string]string{"exclude_vars": string(b), "match": "names"}
}

func (c ExcludeVars) build(*options) (Filter, error) {
	re, err := c.compile()
	if err != nil {
		return nil, err
	}
	f := &excludeFilter{cfg: ExcludeVars{Names: slices.Clone(c.Names), Pattern: c.Pattern}, re: re}
	if re == nil {
		f.names = make(map[string]bool, len(c.Names))
		for _, n := range c.Names {
			f.names[n] = true
		}
	}
	return f, nil
}

var (
	_ Config = ExcludeVars{}
	_ Filter = (*excludeFilter)(nil)
)

type excludeFilter struct {
	cfg   ExcludeVars
	re    *regexp.Regexp  // Pattern compiled, or nil
	names map[string]bool // Names, or nil
}

func (f *excludeFilter) Name() string              { return NameExcludeVars }
func (f *excludeFilter) Params() map[string]string { return f.cfg.Params() }

// Apply returns local with every excluded tensor holding the global's
// values (zeros for a nil global), and the mask in the Report.
func (f *excludeFilter) Apply(global, local *model.Model) (*model.Model, Report, error) {
	rep := Report{Filter: NameExcludeVars}
	if err := CheckInputs(NameExcludeVars, global, local); err != nil {
		return nil, rep, err
	}
	rep.Values = local.NumParams()
	rep.Mask = make([]bool, len(local.Tensors))
	out := newLike(local)
	matched := map[string]bool{}
	for i, t := range local.Tensors {
		if f.excludes(t.Name) {
			rep.Mask[i] = true
			rep.Excluded = append(rep.Excluded, t.Name)
			rep.Zeroed += len(t.Data)
			matched[t.Name] = true
			setGlobal(out, global, i)
			continue
		}
		copy(out.Tensors[i].Data, t.Data)
	}
	switch {
	case f.re != nil && len(matched) == 0:
		rep.Unmatched = []string{f.cfg.Pattern}
	case f.re == nil:
		for _, n := range f.cfg.Names {
			if !matched[n] {
				rep.Unmatched = append(rep.Unmatched, n)
			}
		}
	}
	return out, rep, nil
}

func (f *excludeFilter) excludes(name string) bool {
	if f.re != nil {
		return f.re.MatchString(name)
	}
	return f.names[name]
}
