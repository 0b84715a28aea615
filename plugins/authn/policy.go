package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/plugins"
)

// PolicyFormatVersion is the only authentication.json format_version that
// ParsePolicy accepts.
const PolicyFormatVersion = "1.0"

// The bounds of a policy's call timeout, and its default.
const (
	DefaultTimeout = 5 * time.Second
	MinTimeout     = 100 * time.Millisecond
	MaxTimeout     = 60 * time.Second
)

// maxPolicySize bounds the policy file.
const maxPolicySize = 1 << 20

// Policy is a parsed local/authentication.json: which plugin binary the
// site runs (pinned by its hash), the deadline of each call, the commands
// that need authentication, and the plugin's own configuration. The file:
//
//	{
//	  "format_version": "1.0",
//	  "plugin": {"path": "bin/hearth-authn-ldap", "sha256": "<64 hex digits>"},
//	  "timeout": "5s",
//	  "commands": ["submit", "abort"],
//	  "config": {...}
//	}
//
// format_version and plugin, with both its keys, are required. A relative path is
// relative to the kit's folder. timeout is a Go duration from 100ms to
// 60s, 5s when absent. commands, when present, is a non-empty list of
// distinct commands that a site decides (Command.DecidedAtSite: submit,
// preflight, site.status, site.resources, site.logs, site.audit,
// site.shutdown; abort, download and status are the server's alone and
// refused here); when it is absent, every one of them needs
// authentication. A dry run (preflight) is authenticated whenever submit
// is, so that it answers as the job would be.
// config, when present, is a JSON object handed verbatim to the plugin's
// Configure (absent, the plugin is handed {}). Any other key, a
// duplicate key or a value of another type is refused.
type Policy struct {
	// PluginPath is the plugin's path as written.
	PluginPath string
	// SHA256 is the binary's pinned hash.
	SHA256 [32]byte
	// Timeout is the deadline of each call.
	Timeout time.Duration
	// Commands lists the commands that need authentication; nil means
	// all of them.
	Commands []Command
	// Config is the plugin's configuration, a JSON object, verbatim.
	Config []byte
}

// Requires reports whether cmd needs authentication at the site.
func (p *Policy) Requires(cmd Command) bool {
	if p.Commands == nil {
		return cmd.DecidedAtSite()
	}
	for _, c := range p.Commands {
		if c == cmd {
			return true
		}
	}
	return false
}

// Pin is the policy's plugin pin, a relative path resolved against
// kitDir (which a relative path then needs).
func (p *Policy) Pin(kitDir string) (plugins.Pin, error) {
	path := p.PluginPath
	if !filepath.IsAbs(path) {
		if kitDir == "" {
			return plugins.Pin{}, fmt.Errorf("authn: plugin path %q is relative, and no kit folder was given", path)
		}
		abs, err := filepath.Abs(filepath.Join(kitDir, path))
		if err != nil {
			return plugins.Pin{}, fmt.Errorf("authn: plugin path: %w", err)
		}
		path = abs
	}
	return plugins.Pin{Path: filepath.Clean(path), SHA256: p.SHA256}, nil
}

// ParseError is a policy that ParsePolicy refused. Path names the
// offending value (e.g. "plugin.sha256"; empty for the document) and File
// the file it came from, when read by ParsePolicyFile.
type ParseError struct {
	File string
	Path string
	Msg  string
	Err  error // the underlying JSON error, if any
}

// Error reads "authn: [file: ][path: ]msg".
func (e *ParseError) Error() string {
	s := "authn: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	return s + e.Msg
}

// Unwrap returns the underlying JSON error, if any.
func (e *ParseError) Unwrap() error { return e.Err }

// ParsePolicyFile reads and parses the policy at path (a kit's
// local/authentication.json). A refused policy is a *ParseError naming the
// file; a missing one is an error wrapping fs.ErrNotExist.
func ParsePolicyFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("authn: read policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("authn: read policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = path
		}
		return nil, err
	}
	return p, nil
}

// ParsePolicy parses an authentication.json document strictly (see
// Policy): anything not in the format is a *ParseError, and no partial
// Policy is ever returned.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > maxPolicySize {
		return nil, &ParseError{Msg: fmt.Sprintf("larger than %d bytes", maxPolicySize)}
	}
	top, err := object(data, "")
	if err != nil {
		return nil, err
	}
	p := &Policy{Timeout: DefaultTimeout, Config: []byte("{}")}
	var version string
	for _, m := range top {
		key, raw := m.key, m.raw
		switch key {
		case "format_version":
			err = str(raw, key, &version)
			if err == nil && version != PolicyFormatVersion {
				err = fail(key, "format_version %q (want %q)", version, PolicyFormatVersion)
			}
		case "plugin":
			err = parsePlugin(raw, p)
		case "timeout":
			err = parseTimeout(raw, p)
		case "commands":
			err = parseCommands(raw, p)
		case "config":
			if _, err = object(raw, key); err == nil {
				p.Config = bytes.Clone(raw)
			}
		default:
			err = fail("", "unknown key %q (want format_version, plugin, timeout, commands, config)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	if !has(top, "format_version") {
		return nil, fail("", "missing format_version (want %q)", PolicyFormatVersion)
	}
	if !has(top, "plugin") {
		return nil, fail("", "missing plugin")
	}
	return p, nil
}

// parsePlugin reads the plugin pin: {"path": ..., "sha256": ...}.
func parsePlugin(raw json.RawMessage, p *Policy) error {
	obj, err := object(raw, "plugin")
	if err != nil {
		return err
	}
	var sum string
	for _, m := range obj {
		key, v := m.key, m.raw
		switch key {
		case "path":
			err = str(v, "plugin.path", &p.PluginPath)
			if err == nil && p.PluginPath == "" {
				err = fail("plugin.path", "empty")
			}
		case "sha256":
			err = str(v, "plugin.sha256", &sum)
			if err == nil {
				if p.SHA256, err = plugins.ParseSHA256(sum); err != nil {
					err = fail("plugin.sha256", "want the binary's SHA-256 in 64 hex digits")
				}
			}
		default:
			err = fail("plugin", "unknown key %q (want path, sha256)", key)
		}
		if err != nil {
			return err
		}
	}
	if !has(obj, "path") {
		return fail("plugin", "missing path")
	}
	if !has(obj, "sha256") {
		return fail("plugin", "missing sha256")
	}
	return nil
}

// parseTimeout reads the call timeout, within its bounds.
func parseTimeout(raw json.RawMessage, p *Policy) error {
	var s string
	if err := str(raw, "timeout", &s); err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fail("timeout", "%q is not a duration (e.g. \"5s\")", s)
	}
	if d < MinTimeout || d > MaxTimeout {
		return fail("timeout", "%v is outside %v..%v", d, MinTimeout, MaxTimeout)
	}
	p.Timeout = d
	return nil
}

// parseCommands reads the commands that need authentication.
func parseCommands(raw json.RawMessage, p *Policy) error {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return fail("commands", "want a list of commands")
	}
	if len(list) == 0 {
		return fail("commands", "empty; leave commands out to authenticate every command")
	}
	p.Commands = make([]Command, 0, len(list))
	for i, v := range list {
		path := fmt.Sprintf("commands[%d]", i)
		var s string
		if err := str(v, path, &s); err != nil {
			return err
		}
		c := Command(s)
		if !c.Known() {
			return fail(path, "unknown command %q", s)
		}
		if !c.DecidedAtSite() {
			return fail(path, "%q is decided by the server alone (the site never receives it), so a site cannot authenticate it", s)
		}
		if p.Requires(c) {
			return fail(path, "%q listed twice", s)
		}
		p.Commands = append(p.Commands, c)
	}
	return nil
}

// member is one key of a JSON object and its value, verbatim.
type member struct {
	key string
	raw json.RawMessage
}

// has reports whether members hold key.
func has(members []member, key string) bool {
	for _, m := range members {
		if m.key == key {
			return true
		}
	}
	return false
}

// object reads a JSON object's members in order, refusing anything else,
// a duplicate key and trailing data.
func object(data []byte, path string) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	want := "want an object"
	if path == "" {
		want = "want a JSON object"
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, &ParseError{Path: path, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fail(path, "%s", want)
	}
	var members []member
	seen := map[string]bool{} // not has: quadratic in a hostile file's keys
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &ParseError{Path: path, Msg: "invalid JSON: " + err.Error(), Err: err}
		}
		key := tok.(string) // object keys are strings
		if seen[key] {
			return nil, fail(join(path, key), "duplicate key")
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, &ParseError{Path: join(path, key), Msg: "invalid JSON: " + err.Error(), Err: err}
		}
		members = append(members, member{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, &ParseError{Path: path, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail(path, "trailing data after the object")
	}
	return members, nil
}

// str reads a JSON string.
func str(raw json.RawMessage, path string, s *string) error {
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, s) != nil {
		return fail(path, "want a string")
	}
	return nil
}

// join is a dotted path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fail is a ParseError at path.
func fail(path, format string, args ...any) error {
	return &ParseError{Path: path, Msg: fmt.Sprintf(format, args...)}
}
