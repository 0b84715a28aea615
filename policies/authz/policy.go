package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FormatVersion is the only authorization.json format_version Parse accepts.
const FormatVersion = "1.0"

// role is one role's part of a policy.
type role struct {
	// all is the role's one control for every right, when the policy gives
	// the role a condition or a list of them rather than an object.
	all *control
	// rights are the controls the role's object lists, by folded right:
	// categories and commands as written, not expanded.
	rights map[Right]*control
	// overrides are, by category, the commands of it that rights lists
	// on their own, sorted.
	overrides map[Right][]Right
}

// Policy is a parsed authorization.json: for each role, by its folded
// name, the control under which it holds each right at this site. A
// Policy is immutable once parsed and safe for concurrent use. The zero
// Policy grants nothing.
type Policy struct {
	roles map[string]*role
}

// ParseError is a policy Parse refused. Path names the offending JSON value
// (e.g. "permissions.lead.submit_job"; empty for the document itself) and
// File the file it came from, when read by ParseFile.
type ParseError struct {
	File string // set by ParseFile
	Path string // dotted path of the offending value; "" for the document
	Msg  string // what is wrong, e.g. `unknown condition "o:nobody" (...)`
	Err  error  // underlying JSON syntax error, if any
}

// Error renders the error as "authz: [file: ][path: ]msg".
func (e *ParseError) Error() string {
	s := "authz: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	return s + e.Msg
}

// Unwrap returns the underlying JSON syntax error, if any.
func (e *ParseError) Unwrap() error { return e.Err }

// ParseFile reads and parses the authorization policy at path, typically a
// kit's local/authorization.json. A refused policy is a *ParseError naming
// the file.
func ParseFile(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authz: read policy: %w", err)
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

// Parse parses an authorization.json document strictly: anything not in
// the format (see the package documentation) is a *ParseError, and no
// partial Policy is ever returned.
func Parse(data []byte) (*Policy, error) {
	if !utf8.Valid(data) {
		return nil, &ParseError{Msg: "the policy is not valid UTF-8 text"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	ps := &parser{dec: dec}
	p := &Policy{}
	var sawVersion, sawPermissions bool
	err := ps.object("", "the policy document", func(key string) error {
		switch key {
		case "format_version":
			sawVersion = true
			return ps.version()
		case "permissions":
			sawPermissions = true
			return ps.permissions(p)
		}
		return ps.fail("", "unknown top-level key %q (want format_version and permissions)", key)
	})
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ps.fail("", "trailing data after the policy document")
	}
	if !sawVersion {
		return nil, ps.fail("", "missing format_version (want %q)", FormatVersion)
	}
	if !sawPermissions {
		return nil, ps.fail("", "missing permissions")
	}
	return p, nil
}

// parser walks the JSON token stream, so that it can refuse duplicate keys
// and name the path of every error.
type parser struct {
	dec *json.Decoder
}

func (ps *parser) fail(path, format string, args ...any) error {
	return &ParseError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// token reads the next token, turning syntax errors and a premature end
// into ParseErrors. A string holding U+FFFD is refused: the decoder puts
// it in place of a lone surrogate escape, which would then compare equal
// to other text.
func (ps *parser) token(path string) (json.Token, error) {
	tok, err := ps.dec.Token()
	if err == io.EOF {
		return nil, &ParseError{Path: path, Msg: "unexpected end of input", Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		msg := "invalid JSON: " + err.Error()
		var se *json.SyntaxError
		if errors.As(err, &se) && (strings.Contains(se.Error(), "'#'") || strings.Contains(se.Error(), "'/'")) {
			msg += " (authorization.json is plain JSON, without comments, as FLARE reads it)"
		}
		return nil, &ParseError{Path: path, Msg: msg, Err: err}
	}
	if s, ok := tok.(string); ok && strings.ContainsRune(s, utf8.RuneError) {
		return nil, ps.fail(path, "%+q holds U+FFFD or a lone surrogate escape: not a name", s)
	}
	return tok, nil
}

// object reads a JSON object at path, calling value for each key; value
// must consume the key's value. Duplicate keys are refused; same names
// for keys that fold alike (role and right names). what describes the
// object for the error when the value is not an object.
func (ps *parser) object(path, what string, value func(key string) error) error {
	tok, err := ps.token(path)
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return ps.fail(path, "want %s as a JSON object, got %s", what, kindOf(tok))
	}
	return ps.members(path, value)
}

// members reads an object's members up to its closing '}', its '{'
// already consumed.
func (ps *parser) members(path string, value func(key string) error) error {
	seen := map[string]bool{}
	for ps.dec.More() {
		tok, err := ps.token(path)
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok { // cannot happen: the decoder only yields strings as keys
			return ps.fail(path, "want a key, got %s", kindOf(tok))
		}
		if seen[key] {
			return ps.fail(path, "duplicate key %q", key)
		}
		seen[key] = true
		if err := value(key); err != nil {
			return err
		}
	}
	_, err := ps.token(path) // the closing '}'
	return err
}

func (ps *parser) version() error {
	const path = "format_version"
	tok, err := ps.token(path)
	if err != nil {
		return err
	}
	v, ok := tok.(string)
	if !ok {
		return ps.fail(path, "want the string %q, got %s", FormatVersion, kindOf(tok))
	}
	if v != FormatVersion {
		return ps.fail(path, "unsupported version %q (want %q)", v, FormatVersion)
	}
	return nil
}

// permissions reads the roles. Any role name is accepted, as FLARE accepts
// custom roles; names are folded, so two keys that fold alike are the
// same role twice.
func (ps *parser) permissions(p *Policy) error {
	const path = "permissions"
	p.roles = map[string]*role{}
	written := map[string]string{} // folded name -> key as written
	err := ps.object(path, "permissions", func(key string) error {
		name := fold(key)
		if name == "" {
			return ps.fail(path, "role %q has no name", key)
		}
		if first, dup := written[name]; dup {
			return ps.fail(path, "duplicate role %q (%q and %q are one role: names are not case-sensitive)", name, first, key)
		}
		written[name] = key
		r, err := ps.role(path + "." + key)
		if err != nil {
			return err
		}
		p.roles[name] = r
		return nil
	})
	if err != nil {
		return err
	}
	if len(p.roles) == 0 {
		return ps.fail(path, "no roles (list each role, with \"none\" for a role that holds nothing)")
	}
	return nil
}

// role reads one role's value: a condition or a list of conditions for
// every right, or an object of right -> control.
func (ps *parser) role(path string) (*role, error) {
	tok, err := ps.token(path)
	if err != nil {
		return nil, err
	}
	if tok == json.Delim('{') {
		return ps.rights(path)
	}
	c, err := ps.control(path, tok, "a condition or a list of conditions for every right, or an object of rights")
	if err != nil {
		return nil, err
	}
	return &role{all: c}, nil
}

// rights reads the rest of a role's object, its '{' already consumed.
func (ps *parser) rights(path string) (*role, error) {
	r := &role{rights: map[Right]*control{}}
	written := map[Right]string{}
	err := ps.members(path, func(key string) error {
		right := Right(fold(key))
		if first, dup := written[right]; dup {
			return ps.fail(path, "duplicate right %q (%q and %q are one right: names are not case-sensitive)", right, first, key)
		}
		written[right] = key
		if !right.Valid() {
			return ps.fail(path, "unknown right %q (want one of FLARE's rights: a command category, "+
				"manage_job, view, operate, shell_commands or download_job, one of their commands, "+
				"or submit_job, clone_job or byoc; see the package documentation)", key)
		}
		rpath := path + "." + key
		tok, err := ps.token(rpath)
		if err != nil {
			return err
		}
		c, err := ps.control(rpath, tok, "a condition or a list of conditions")
		if err != nil {
			return err
		}
		r.rights[right] = c
		if cat := right.Category(); cat != "" && cat != right {
			if r.overrides == nil {
				r.overrides = map[Right][]Right{}
			}
			r.overrides[cat] = append(r.overrides[cat], right)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, cmds := range r.overrides {
		slices.Sort(cmds)
	}
	return r, nil
}

// control turns a token, and for a list the tokens up to its ']', into a
// control; want describes what was expected, for the error when the token
// is of the wrong type. A list holds at least one condition.
func (ps *parser) control(path string, tok json.Token, want string) (*control, error) {
	c := &control{}
	if tok != json.Delim('[') {
		cond, err := ps.condition(path, tok, want)
		if err != nil {
			return nil, err
		}
		c.add(cond)
		return c, nil
	}
	for i := 0; ps.dec.More(); i++ {
		ipath := path + "[" + strconv.Itoa(i) + "]"
		tok, err := ps.token(ipath)
		if err != nil {
			return nil, err
		}
		cond, err := ps.condition(ipath, tok, "a condition")
		if err != nil {
			return nil, err
		}
		c.add(cond)
	}
	if _, err := ps.token(path); err != nil { // the closing ']'
		return nil, err
	}
	if len(c.conds) == 0 {
		return nil, ps.fail(path, "empty list of conditions (FLARE refuses it too; write \"none\" for no one)")
	}
	return c, nil
}

// condition turns a token into one condition.
func (ps *parser) condition(path string, tok json.Token, want string) (condition, error) {
	switch v := tok.(type) {
	case bool:
		if v {
			return condition{kind: condAny}, nil
		}
		return condition{kind: condNone}, nil
	case string:
		c, msg := parseCondition(v)
		if msg != "" {
			return condition{}, ps.fail(path, "%s", msg)
		}
		return c, nil
	}
	return condition{}, ps.fail(path, "want %s, got %s", want, kindOf(tok))
}

// kindOf names a token's JSON type for error messages.
func kindOf(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "object"
		case '[':
			return "array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}
