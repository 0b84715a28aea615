package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hearthfl/hearth/bus/pki"
)

// FormatVersion is the only authorization.json format_version Parse accepts.
const FormatVersion = "1.0"

// Right is something an admin may be allowed to do at a site, named as in
// FLARE's authorization.json.
type Right string

// The rights a policy can grant.
const (
	// RightSubmitJob is submitting a new job.
	RightSubmitJob Right = "submit_job"
	// RightCloneJob is cloning an existing job.
	RightCloneJob Right = "clone_job"
	// RightManageJob is aborting or deleting an existing job.
	RightManageJob Right = "manage_job"
	// RightDownloadJob is downloading an existing job and its results.
	RightDownloadJob Right = "download_job"
	// RightView is viewing status, jobs and other read-only information.
	RightView Right = "view"
	// RightOperate is operating the site: starting, stopping, restarting.
	RightOperate Right = "operate"
	// RightShellCommands is running shell commands at the site.
	RightShellCommands Right = "shell_commands"
	// RightBYOC is running a job that brings its own (custom) code.
	RightBYOC Right = "byoc"
)

const numRights = 8 // the rights above; rightIndex numbers them

// Valid reports whether r is one of the eight known rights.
func (r Right) Valid() bool {
	_, ok := rightIndex(r)
	return ok
}

func rightIndex(r Right) (int, bool) {
	switch r {
	case RightSubmitJob:
		return 0, true
	case RightCloneJob:
		return 1, true
	case RightManageJob:
		return 2, true
	case RightDownloadJob:
		return 3, true
	case RightView:
		return 4, true
	case RightOperate:
		return 5, true
	case RightShellCommands:
		return 6, true
	case RightBYOC:
		return 7, true
	}
	return 0, false
}

const numRoles = 4 // pki's admin roles; roleIndex numbers them

func roleIndex(r pki.Role) (int, bool) {
	switch r {
	case pki.RoleProjectAdmin:
		return 0, true
	case pki.RoleOrgAdmin:
		return 1, true
	case pki.RoleLead:
		return 2, true
	case pki.RoleMember:
		return 3, true
	}
	return 0, false
}

// condition is a parsed condition; the zero value means "not granted".
type condition uint8

const (
	condUnset condition = iota // right not listed for the role
	condAny
	condNone
	condOrgSite
	condOrgSubmitter
	condNameSubmitter
)

// String is the condition as written in authorization.json.
func (c condition) String() string {
	switch c {
	case condAny:
		return "any"
	case condNone:
		return "none"
	case condOrgSite:
		return "o:site"
	case condOrgSubmitter:
		return "o:submitter"
	case condNameSubmitter:
		return "n:submitter"
	}
	return "unset"
}

func parseCondition(s string) (condition, bool) {
	switch s {
	case "any":
		return condAny, true
	case "none":
		return condNone, true
	case "o:site":
		return condOrgSite, true
	case "o:submitter":
		return condOrgSubmitter, true
	case "n:submitter":
		return condNameSubmitter, true
	}
	return condUnset, false
}

// rolePerms is one role's conditions, indexed by rightIndex.
type rolePerms struct {
	listed bool // the role appears in the policy
	rights [numRights]condition
}

// Policy is a parsed authorization.json: for each role, the condition under
// which it holds each right at this site. A Policy is immutable once parsed
// and safe for concurrent use. The zero Policy grants nothing.
type Policy struct {
	roles [numRoles]rolePerms
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
// into ParseErrors.
func (ps *parser) token(path string) (json.Token, error) {
	tok, err := ps.dec.Token()
	if err == io.EOF {
		return nil, &ParseError{Path: path, Msg: "unexpected end of input", Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		return nil, &ParseError{Path: path, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	return tok, nil
}

// object reads a JSON object at path, calling value for each key; value
// must consume the key's value. Duplicate keys are refused. what describes
// the object for the error when the value is not an object.
func (ps *parser) object(path, what string, value func(key string) error) error {
	tok, err := ps.token(path)
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return ps.fail(path, "want %s as a JSON object, got %s", what, kindOf(tok))
	}
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
	_, err = ps.token(path) // the closing '}'
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

func (ps *parser) permissions(p *Policy) error {
	const path = "permissions"
	n := 0
	err := ps.object(path, "permissions", func(key string) error {
		i, ok := roleIndex(pki.Role(key))
		if !ok {
			return ps.fail(path, "unknown role %q (want project_admin, org_admin, lead or member)", key)
		}
		n++
		p.roles[i].listed = true
		return ps.role(path+"."+key, &p.roles[i])
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return ps.fail(path, "no roles (list each role, with \"none\" for a role that holds nothing)")
	}
	return nil
}

// role reads one role's value: a single condition for every right, or an
// object of right -> condition.
func (ps *parser) role(path string, rp *rolePerms) error {
	tok, err := ps.token(path)
	if err != nil {
		return err
	}
	if tok == json.Delim('{') {
		return ps.rights(path, rp)
	}
	c, err := ps.condition(path, tok, "a condition for every right, or an object of rights")
	if err != nil {
		return err
	}
	for i := range rp.rights {
		rp.rights[i] = c
	}
	return nil
}

// rights reads the rest of a role's object, its '{' already consumed.
func (ps *parser) rights(path string, rp *rolePerms) error {
	seen := map[string]bool{}
	for ps.dec.More() {
		tok, err := ps.token(path)
		if err != nil {
			return err
		}
		key, _ := tok.(string) // the decoder only yields strings as keys
		if seen[key] {
			return ps.fail(path, "duplicate right %q", key)
		}
		seen[key] = true
		i, ok := rightIndex(Right(key))
		if !ok {
			return ps.fail(path, "unknown right %q (want submit_job, clone_job, manage_job, download_job, view, operate, shell_commands or byoc)", key)
		}
		rpath := path + "." + key
		tok, err = ps.token(rpath)
		if err != nil {
			return err
		}
		c, err := ps.condition(rpath, tok, "a condition")
		if err != nil {
			return err
		}
		rp.rights[i] = c
	}
	_, err := ps.token(path) // the closing '}'
	return err
}

// condition turns a token into a condition; want describes what was
// expected, for the error when the token is of the wrong type.
func (ps *parser) condition(path string, tok json.Token, want string) (condition, error) {
	switch v := tok.(type) {
	case bool:
		if v {
			return condAny, nil
		}
		return condNone, nil
	case string:
		c, ok := parseCondition(v)
		if !ok {
			return condUnset, ps.fail(path, "unknown condition %q (want any, none, o:site, o:submitter, n:submitter, true or false)", v)
		}
		return c, nil
	}
	return condUnset, ps.fail(path, "want %s, got %s", want, kindOf(tok))
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
