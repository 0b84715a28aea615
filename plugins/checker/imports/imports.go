// Package imports is a built-in checker (plugins/checker) that refuses a
// job whose Python code imports a module the site's policy does not
// allow, or uses a builtin the policy denies (__import__, exec, eval,
// compile, open, ...). It ships as the plugin binary
// cmd/hearth-checker-imports.
//
// # Configuration
//
// The checker's "config" object in the site's policy:
//
//	{"allow": ["torch", "numpy", "math"], "deny_calls": ["__import__", "exec", "eval", "compile", "open"]}
//	{"deny":  ["socket", "subprocess", "ctypes", "os", "importlib"], "deny_calls": ["__import__", "exec", "eval"]}
//
// Exactly one of allow and deny is given. With allow, a module may be
// imported when it or a package above it is listed ("torch" allows
// torch.nn.functional), when it is __future__, or when it is one of the
// job's own files (helpers.py gives helpers); anything else is refused.
// With deny, a module is refused when it or a package above it is listed
// ("os" refuses os.path), whatever else. "from x import y" asks for x and,
// since y may be a submodule, for x.y: allow lets it in when either is
// allowed, deny refuses it when either is denied. Relative imports
// ("from . import y") name the job's own package and are not judged by
// the lists. Note that "import os.path" binds os itself: allowing os.path
// lets a script reach os.
//
// deny_calls lists names the job's code may not use: a use of the name
// (called or not, so that "f = eval" counts), an import of it ("import
// importlib", "from builtins import exec") and an attribute of builtins
// or __builtins__ by that name are refused; an attribute of anything else
// (re.compile, Image.open), a definition of that name and a keyword
// argument of that name are not uses. Unknown keys are refused.
//
// # What it reads
//
// Every file of the job's code is checked, and each must be a Python
// source (a name ending .py) in UTF-8: a file declaring another encoding
// is refused, unless the file is pure ASCII and the encoding reads ASCII
// as ASCII (latin-1, cp1252, ascii), because a codec such as utf-7 can
// hide a statement from any reader but Python's. The sources are read by
// a tokenizer of Python 3's lexical rules (strings of every prefix and
// quoting, f-strings' replacement fields read as code as Python 3.12
// reads them, comments, line continuations, NFKC-normalized names, so
// that "ｅｖａｌ" is eval), not by matching lines: an import inside a
// string or a comment is not an import, and one spread over lines in
// parentheses or after a backslash is. A source the tokenizer cannot
// read is refused, never guessed at. Every refusal names the file, the
// line and the module or name.
//
// # What it is not
//
// This is a policy check, not a sandbox. A determined script can evade
// any static check: getattr(builtins, "ex" + "ec"), a module loaded by a
// library the site allows (torch.hub, pickle files), code decoded at run
// time. What enforces a site's limits on job code is the PyTorch
// trainer's confinement (Landlock and seccomp: no network, no files
// beyond its own). The check's value is refusing, before anything runs
// and with a clear reason, a job that does what the site's policy
// forbids, so that an honest submitter learns at pre-flight what the site
// does not accept.
package imports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hearthfl/hearth/plugins/checker"
)

// maxEntries bounds each list of a configuration.
const maxEntries = 4096

// Config is the checker's configuration, as JSON.
type Config struct {
	// Allow lists the modules a job may import; nil when Deny is used.
	Allow *[]string `json:"allow,omitempty"`
	// Deny lists the modules a job may not import; nil when Allow is
	// used.
	Deny *[]string `json:"deny,omitempty"`
	// DenyCalls lists the names a job's code may not use.
	DenyCalls []string `json:"deny_calls,omitempty"`
}

// Policy is a parsed configuration: what it decides is in Check.
type Policy struct {
	allow bool            // allow-list mode; else deny-list mode
	mods  map[string]bool // the listed modules
	calls map[string]bool // the denied names
}

// Parse parses a configuration strictly: one JSON object, no unknown
// keys, exactly one of allow and deny, every module a dotted Python name
// and every denied name a Python name.
func Parse(data []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("imports: config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("imports: config: more than one JSON value")
	}
	if (c.Allow == nil) == (c.Deny == nil) {
		return nil, errors.New(`imports: config: give exactly one of "allow" and "deny"`)
	}
	p := &Policy{allow: c.Allow != nil, mods: map[string]bool{}, calls: map[string]bool{}}
	list, key := c.Deny, "deny"
	if p.allow {
		list, key = c.Allow, "allow"
	}
	if len(*list) > maxEntries || len(c.DenyCalls) > maxEntries {
		return nil, fmt.Errorf("imports: config: more than %d entries in a list", maxEntries)
	}
	for _, m := range *list {
		if !validModule(m) {
			return nil, fmt.Errorf("imports: config: %s: %s is not a dotted Python module name", key, strconv.QuoteToASCII(m))
		}
		p.mods[m] = true
	}
	for _, n := range c.DenyCalls {
		if !validName(n) {
			return nil, fmt.Errorf("imports: config: deny_calls: %s is not a Python name", strconv.QuoteToASCII(n))
		}
		p.calls[n] = true
	}
	return p, nil
}

// finding is one thing the policy refuses.
type finding struct {
	file string
	line int
	what string // e.g. "imports socket, which this site's allow-list does not hold"
}

// Check decides j: refused with the first finding (by file, then line)
// and how many others there are, or allowed, saying what was checked.
func (p *Policy) Check(j checker.Job) checker.Decision {
	own := map[string]bool{}
	for _, f := range j.Code {
		if mod, ok := strings.CutSuffix(f.Name, ".py"); ok && validModule(mod) {
			own[mod] = true
		}
	}
	var found []finding
	imports := 0
	for _, f := range j.Code {
		n, fs := p.checkFile(f, own)
		imports += n
		found = append(found, fs...)
	}
	if len(found) == 0 {
		return checker.Decision{Allowed: true, Reason: fmt.Sprintf("imports checker: nothing this site's policy refuses (files: %d, imports: %d)", len(j.Code), imports)}
	}
	first := found[0]
	reason := fmt.Sprintf("%s line %d: %s", first.file, first.line, first.what)
	if first.line == 0 { // the whole file
		reason = first.file + ": " + first.what
	}
	if len(found) > 1 {
		reason += fmt.Sprintf(" (and %d more)", len(found)-1)
	}
	return checker.Decision{Reason: reason}
}

// checkFile reads one file and judges what it imports and uses; it
// returns how many modules it imports and what is refused, in line order.
func (p *Policy) checkFile(f checker.File, own map[string]bool) (int, []finding) {
	name := show(f.Name)
	refuse := func(what string) (int, []finding) {
		return 0, []finding{{file: name, line: 0, what: what}}
	}
	if !strings.HasSuffix(f.Name, ".py") {
		return refuse("not a Python source (a name ending .py): this checker cannot read it")
	}
	src, err := source(f.Data)
	if err != nil {
		return refuse(err.Error())
	}
	toks, err := tokenize(src)
	var s scanned
	if err == nil {
		s, err = scan(toks, func(name string) bool { return p.calls[name] })
	}
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return 0, []finding{{file: name, line: se.line, what: se.what}}
		}
		return refuse(err.Error())
	}
	var found []finding
	for _, im := range s.imports {
		if what := p.judgeImport(im, s.imports, own); what != "" {
			found = append(found, finding{file: name, line: im.line, what: what})
		}
	}
	for _, r := range s.refs {
		if p.calls[r.name] {
			verb := "refers to"
			if r.call {
				verb = "calls"
			}
			found = append(found, finding{file: name, line: r.line, what: fmt.Sprintf("%s %s, which this site's policy denies", verb, show(r.name))})
		}
	}
	slices.SortStableFunc(found, func(a, b finding) int { return a.line - b.line })
	modules := 0
	for _, im := range s.imports {
		if im.name == "" {
			modules++
		}
	}
	return modules, found
}

// judgeImport says what is wrong with one imported module, "" if
// nothing. all is the file's imports: a from-import's names are judged
// with their statement's module.
func (p *Policy) judgeImport(im imported, all []imported, own map[string]bool) string {
	first, _, _ := strings.Cut(im.module, ".")
	switch {
	case im.name != "" && p.calls[im.name]:
		return fmt.Sprintf("imports %s, which this site's policy denies", show(im.name))
	case im.name == "" && p.calls[first]:
		return fmt.Sprintf("imports %s, which this site's policy denies", show(im.module))
	case im.level > 0:
		return "" // the job's own package
	}
	if !p.allow {
		if im.name != "" {
			if _, ok := p.listed(strings.TrimSuffix(im.module, "."+im.name)); ok {
				return "" // reported with its statement's module
			}
		}
		if m, ok := p.listed(im.module); ok {
			return fmt.Sprintf("imports %s, which this site's policy denies (%s)", show(im.module), show(m))
		}
		return ""
	}
	if im.name != "" {
		return "" // judged with its statement's module, below
	}
	if p.allowed(im.module, own) {
		return ""
	}
	// A from-import's module not allowed by itself: each name it takes
	// must be (from os import path, with os.path allowed).
	var names []imported
	for _, o := range all {
		if o.stmt == im.stmt && o.name != "" {
			names = append(names, o)
		}
	}
	bad := im.module
	if i := slices.IndexFunc(names, func(o imported) bool { return !p.allowed(o.module, own) }); i >= 0 {
		bad = names[i].module
	} else if len(names) > 0 {
		return ""
	}
	return fmt.Sprintf("imports %s, which is not in this site's allow-list", show(bad))
}

// allowed says whether the allow-list lets module in.
func (p *Policy) allowed(module string, own map[string]bool) bool {
	first, _, _ := strings.Cut(module, ".")
	if _, ok := p.listed(module); ok {
		return true
	}
	return first == "__future__" || own[first]
}

// listed is the entry of the list that holds module or a package above
// it.
func (p *Policy) listed(module string) (string, bool) {
	for m := module; ; {
		if p.mods[m] {
			return m, true
		}
		i := strings.LastIndexByte(m, '.')
		if i < 0 {
			return "", false
		}
		m = m[:i]
	}
}

// codingLine is PEP 263's encoding declaration.
var codingLine = regexp.MustCompile(`^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`)

// source is f's bytes as the text Python reads: UTF-8 (a byte order
// mark dropped), no NUL, and an encoding declaration, if any, for UTF-8,
// or for an ASCII-compatible encoding when the file is pure ASCII.
func source(data []byte) (string, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if bytes.IndexByte(data, 0) >= 0 {
		return "", errors.New("holds a NUL byte")
	}
	if !utf8.Valid(data) {
		return "", errors.New("is not UTF-8")
	}
	lines := bytes.SplitN(data, []byte("\n"), 3)
	for _, line := range lines[:min(2, len(lines))] {
		m := codingLine.FindSubmatch(line)
		if m == nil {
			continue
		}
		enc := strings.ReplaceAll(strings.ToLower(string(m[1])), "_", "-")
		switch {
		case enc == "utf-8" || enc == "utf8" || strings.HasPrefix(enc, "utf-8-"):
		case asciiCompatible[enc] && isASCII(data):
		default:
			return "", fmt.Errorf("declares the source encoding %s, which this checker does not read (want UTF-8)", show(string(m[1])))
		}
	}
	return string(data), nil
}

// asciiCompatible are encodings that read ASCII bytes as ASCII, as
// declared in a coding line (lower case, '-' for '_').
var asciiCompatible = map[string]bool{
	"ascii": true, "us-ascii": true, "latin-1": true, "latin1": true, "iso-8859-1": true, "iso8859-1": true,
	"iso-latin-1": true, "cp1252": true, "windows-1252": true, "iso-8859-15": true,
}

// isASCII says whether data is pure ASCII.
func isASCII(data []byte) bool {
	for _, c := range data {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// validName says whether s is an ASCII Python name.
func validName(s string) bool {
	if s == "" || keywords[s] {
		return false
	}
	for i, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validModule says whether s is a dotted Python module name.
func validModule(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if !validName(part) {
			return false
		}
	}
	return true
}

// show is s fit for a reason: as it is when it is a short printable
// ASCII name, else quoted in ASCII, clipped either way.
func show(s string) string {
	const max = 96
	plain := len(s) > 0
	for _, c := range []byte(s) {
		if !(c == '_' || c == '.' || c == '-' || c == '/' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	if !plain {
		s = strconv.QuoteToASCII(s)
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// Checker is the imports checker as a checker.Checker: Configure parses
// the policy, Check decides with it. The zero value is unconfigured; it is
// safe for concurrent use.
type Checker struct {
	mu  sync.RWMutex
	pol *Policy
}

var _ checker.Checker = (*Checker)(nil)

// New returns an unconfigured imports checker, the value a plugin's main
// serves: checker.Serve(imports.New()).
func New() *Checker { return &Checker{} }

// Configure parses config (Parse).
func (c *Checker) Configure(_ context.Context, config []byte) error {
	p, err := Parse(config)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pol = p
	c.mu.Unlock()
	return nil
}

// Check decides j with the configured policy.
func (c *Checker) Check(_ context.Context, j checker.Job) (checker.Decision, error) {
	c.mu.RLock()
	p := c.pol
	c.mu.RUnlock()
	if p == nil {
		return checker.Decision{}, errors.New("imports: not configured")
	}
	return p.Check(j), nil
}
