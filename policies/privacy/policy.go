package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Bounds on a policy document.
const (
	MaxPolicyBytes = 1 << 20 // the file's size
	MaxScopes      = 256     // scopes in one policy
	MaxScopeName   = 128     // bytes in a scope's name
)

// Policy is a parsed privacy.json: the site's scopes, by name, and its
// default scope. It is immutable once parsed and safe for concurrent
// use. A nil Policy has no scopes: every Scope call refuses.
type Policy struct {
	scopes       []*Scope // in the document's order
	byName       map[string]*Scope
	defaultScope string // "" when the policy names none
}

// Scope is one of a site's privacy scopes: its name, its filters on task
// data entering the site and on task results leaving it (in the order the
// site wrote them), its DP budget if it sets one, and its other
// properties, kept as written. A Scope is immutable.
type Scope struct {
	name       string
	data       []FilterSpec
	result     []FilterSpec
	budget     *Budget
	properties []member // other than dp_budget, in the document's order
}

// Budget is a scope's differential privacy budget for each job in the
// scope, the "dp_budget" property: the ε a site may spend at δ. Epsilon
// is finite and positive, Delta in (0, 1).
type Budget struct {
	Epsilon float64
	Delta   float64
}

// Name is the scope's name.
func (s *Scope) Name() string { return s.name }

// DataFilters are the scope's task_data_filters, in order (a fresh slice).
func (s *Scope) DataFilters() []FilterSpec { return cloneSpecs(s.data) }

// ResultFilters are the scope's task_result_filters, in order (a fresh
// slice).
func (s *Scope) ResultFilters() []FilterSpec { return cloneSpecs(s.result) }

// Budget is the scope's DP budget, and whether it sets one.
func (s *Scope) Budget() (Budget, bool) {
	if s.budget == nil {
		return Budget{}, false
	}
	return *s.budget, true
}

// PropertyNames lists the scope's properties other than dp_budget, in the
// document's order.
func (s *Scope) PropertyNames() []string {
	names := make([]string, len(s.properties))
	for i, p := range s.properties {
		names[i] = p.key
	}
	return names
}

// Property is the value of one of the scope's properties other than
// dp_budget, as compact JSON (numbers as written), and whether it is set.
// Hearth does not read these; FLARE allows any.
func (s *Scope) Property(name string) (json.RawMessage, bool) {
	for _, p := range s.properties {
		if p.key == name {
			var b bytes.Buffer
			encode(&b, p.value)
			return b.Bytes(), true
		}
	}
	return nil, false
}

// String reads e.g. `private: data=[] result=[percentile_privacy{gamma=0.02
// percentile=10 steps=1}] dp_budget={epsilon=8 delta=1e-05}
// properties=[train_dataset]`, the last two only when set.
func (s *Scope) String() string {
	var b strings.Builder
	b.WriteString(s.name)
	b.WriteString(": data=")
	writeSpecs(&b, s.data)
	b.WriteString(" result=")
	writeSpecs(&b, s.result)
	if s.budget != nil {
		fmt.Fprintf(&b, " dp_budget={epsilon=%s delta=%s}", formatFloat(s.budget.Epsilon), formatFloat(s.budget.Delta))
	}
	if len(s.properties) > 0 {
		b.WriteString(" properties=[" + strings.Join(s.PropertyNames(), " ") + "]")
	}
	return b.String()
}

func writeSpecs(b *strings.Builder, specs []FilterSpec) {
	b.WriteByte('[')
	for i, f := range specs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.String())
	}
	b.WriteByte(']')
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ScopeNames lists the policy's scopes in the document's order.
func (p *Policy) ScopeNames() []string {
	if p == nil {
		return nil
	}
	names := make([]string, len(p.scopes))
	for i, s := range p.scopes {
		names[i] = s.name
	}
	return names
}

// DefaultScope is the name of the policy's default_scope, "" when it has
// none.
func (p *Policy) DefaultScope() string {
	if p == nil {
		return ""
	}
	return p.defaultScope
}

// Reasons Scope refuses. The list only grows.
var (
	// ErrNoPolicy: Scope was asked of a nil Policy.
	ErrNoPolicy = errors.New("no privacy policy")
	// ErrUnknownScope: the job names a scope the site does not have.
	ErrUnknownScope = errors.New("the site has no such privacy scope")
	// ErrNoDefaultScope: the job names no scope and the site's policy has
	// no default_scope.
	ErrNoDefaultScope = errors.New("the job names no privacy scope and the site has no default_scope")
)

// Scope decides the scope a job runs in at this site: the scope the job
// names, or the default_scope when it names none (""). A job naming a
// scope the site does not have (ErrUnknownScope), or naming none where the
// site has no default_scope (ErrNoDefaultScope), is refused: FLARE's rule,
// which a site enforces when a job joins. Names compare exactly. The
// error says why, quoting the job's name bounded in length; it does not
// list the site's scopes (ScopeNames does, for those allowed to see them).
func (p *Policy) Scope(name string) (*Scope, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("privacy: %w", ErrNoPolicy)
	case name == "" && p.defaultScope == "":
		return nil, fmt.Errorf("privacy: %w", ErrNoDefaultScope)
	case name == "":
		name = p.defaultScope
	}
	s, ok := p.byName[name]
	if !ok {
		return nil, fmt.Errorf("privacy: scope %q: %w", bounded(name), ErrUnknownScope)
	}
	return s, nil
}

// ParseError is a policy or a filter list that Parse, ParseFile or
// ParseFilters refused. Path names the offending JSON value (e.g.
// "scopes[1].task_result_filters[0].args.gamma"; empty for the document
// itself) and File the file it came from, when read by ParseFile.
type ParseError struct {
	File string // set by ParseFile
	Path string // the offending value's path; "" for the document
	Msg  string // what is wrong
	Err  error  // the underlying error (a JSON syntax error, a *filter.ArgError), if any
}

// Error renders the error as "privacy: [file: ][path: ]msg".
func (e *ParseError) Error() string {
	s := "privacy: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	return s + e.Msg
}

// Unwrap returns the underlying error, if any.
func (e *ParseError) Unwrap() error { return e.Err }

func fail(path, format string, args ...any) error {
	return &ParseError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// ParseFile reads and parses the privacy policy at path, typically a
// kit's local/privacy.json. A refused policy is a *ParseError naming the
// file.
func ParseFile(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("privacy: read policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = path
		}
		return nil, err
	}
	return p, nil
}

// Parse parses a privacy.json document strictly: anything outside the
// format (see the package documentation) is a *ParseError, and no partial
// Policy is ever returned.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fail("", "the policy is %d bytes, more than %d", len(data), MaxPolicyBytes)
	}
	doc, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	top, ok := doc.(*object)
	if !ok {
		return nil, fail("", "want the policy document as a JSON object, got %s", kindOf(doc))
	}
	p := &Policy{byName: map[string]*Scope{}}
	var sawScopes, sawDefault bool
	for _, m := range top.members {
		switch m.key {
		case "scopes":
			sawScopes = true
			if err := p.parseScopes(m.value); err != nil {
				return nil, err
			}
		case "default_scope":
			sawDefault = true
			name, ok := m.value.(string)
			if !ok || name == "" {
				return nil, fail("default_scope", "want a scope's name, got %s (leave default_scope out for no default)", describe(m.value))
			}
			p.defaultScope = name
		case "components":
			return nil, fail("components", "components are not supported: a filter is named by its path in the scope that runs it")
		default:
			return nil, fail(field("", m.key), "unknown top-level key (want scopes and default_scope)")
		}
	}
	if !sawScopes {
		return nil, fail("", "missing scopes (FLARE applies no privacy control at all without them; Hearth refuses the file)")
	}
	if sawDefault {
		if _, ok := p.byName[p.defaultScope]; !ok {
			return nil, fail("default_scope", "%q is not one of the scopes", bounded(p.defaultScope))
		}
	}
	return p, nil
}

// describe names a value for a message: a string quoted, else its type.
func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(bounded(s))
	}
	return kindOf(v)
}

func (p *Policy) parseScopes(v any) error {
	const path = "scopes"
	list, ok := v.([]any)
	if !ok {
		return fail(path, "want a list of scopes, got %s", kindOf(v))
	}
	if len(list) == 0 {
		return fail(path, "no scopes (FLARE applies no privacy control at all then; Hearth refuses the file)")
	}
	if len(list) > MaxScopes {
		return fail(path, "%d scopes, at most %d", len(list), MaxScopes)
	}
	first := map[string]int{}
	for i, sv := range list {
		s, err := parseScope(index(path, i), sv)
		if err != nil {
			return err
		}
		if j, dup := first[s.name]; dup {
			return fail(index(path, i)+".name", "duplicate scope %q (also scopes[%d]): each scope's name is unique", bounded(s.name), j)
		}
		first[s.name] = i
		p.scopes = append(p.scopes, s)
		p.byName[s.name] = s
	}
	return nil
}

func parseScope(path string, v any) (*Scope, error) {
	o, ok := v.(*object)
	if !ok {
		return nil, fail(path, "want a scope as an object, got %s", kindOf(v))
	}
	s := &Scope{}
	var sawName bool
	for _, m := range o.members {
		mpath := field(path, m.key)
		var err error
		switch m.key {
		case "name":
			sawName = true
			s.name, err = scopeName(mpath, m.value)
		case "properties":
			err = s.parseProperties(mpath, m.value)
		case "task_data_filters":
			s.data, err = parseFilterList(mpath, m.value, "in")
		case "task_result_filters":
			s.result, err = parseFilterList(mpath, m.value, "out")
		default:
			err = fail(mpath, "unknown key in a scope (want name, properties, task_data_filters and task_result_filters)")
		}
		if err != nil {
			return nil, err
		}
	}
	if !sawName {
		return nil, fail(path, "the scope has no name")
	}
	return s, nil
}

// scopeName checks a scope's name: non-empty, at most MaxScopeName bytes,
// printable.
func scopeName(path string, v any) (string, error) {
	name, ok := v.(string)
	if !ok {
		return "", fail(path, "want the scope's name as a string, got %s", kindOf(v))
	}
	if name == "" || len(name) > MaxScopeName {
		return "", fail(path, "a scope's name is 1 to %d bytes", MaxScopeName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return "", fail(path, "%+q holds a character that does not print", bounded(name))
		}
	}
	return name, nil
}

func (s *Scope) parseProperties(path string, v any) error {
	o, ok := v.(*object)
	if !ok {
		return fail(path, "want the scope's properties as an object, got %s", kindOf(v))
	}
	for _, m := range o.members {
		if m.key != "dp_budget" {
			s.properties = append(s.properties, m)
			continue
		}
		b, err := parseBudget(field(path, m.key), m.value)
		if err != nil {
			return err
		}
		s.budget = b
	}
	return nil
}

// parseBudget reads {"epsilon": E, "delta": D}, both required.
func parseBudget(path string, v any) (*Budget, error) {
	o, ok := v.(*object)
	if !ok {
		return nil, fail(path, `want {"epsilon": E, "delta": D}, got %s`, kindOf(v))
	}
	b := &Budget{}
	var sawEps, sawDelta bool
	for _, m := range o.members {
		mpath := field(path, m.key)
		n, isNum := m.value.(number)
		switch {
		case m.key != "epsilon" && m.key != "delta":
			return nil, fail(mpath, "unknown key in dp_budget (want epsilon and delta)")
		case !isNum:
			return nil, fail(mpath, "want a number, got %s", kindOf(m.value))
		case m.key == "epsilon":
			if !(n.f > 0) || math.IsInf(n.f, 1) {
				return nil, fail(mpath, "%s is not a finite positive number", n.text)
			}
			b.Epsilon, sawEps = n.f, true
		default:
			if !(n.f > 0 && n.f < 1) {
				return nil, fail(mpath, "%s is not a number above 0 and below 1", n.text)
			}
			b.Delta, sawDelta = n.f, true
		}
	}
	if !sawEps || !sawDelta {
		return nil, fail(path, `want both epsilon and delta: {"epsilon": E, "delta": D}`)
	}
	return b, nil
}
