package ldap

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
)

// Config is the authenticator's configuration, as ParseConfig reads it
// from the site's policy (the package documentation gives the format).
type Config struct {
	URL            string        // url: ldap://host[:port] or ldaps://host[:port]
	StartTLS       bool          // start_tls
	CAPEM          string        // ca_pem: the CA certificates that verify the directory
	CAFile         string        // ca_file: an absolute path to such a PEM file
	ServerName     string        // server_name; the URL's host when empty
	AllowPlaintext bool          // allow_plaintext: ldap:// without start_tls
	UserDN         string        // user_dn, holding {user} once
	GroupBase      string        // group_base
	GroupFilter    string        // group_filter, holding {dn} or {user}
	GroupAttr      string        // group_attr
	Roles          []RoleMapping // roles, in order: the first match wins
	Timeout        time.Duration // timeout
}

// RoleMapping gives members of Group the local Role.
type RoleMapping struct {
	Group string
	Role  pki.Role
}

// Defaults and bounds of the configuration.
const (
	DefaultGroupFilter = "(&(objectClass=groupOfNames)(member={dn}))"
	DefaultGroupAttr   = "cn"
	DefaultTimeout     = 5 * time.Second
	MaxTimeout         = time.Minute
	MaxRoles           = 64      // entries in roles
	MaxGroupName       = 256     // bytes in a group's name, mapped or seen
	maxConfig          = 1 << 20 // bytes of configuration
	maxCAFile          = 1 << 20 // bytes of ca_file
)

// TLS reports whether the configuration talks TLS to the directory
// (ldaps:// or start_tls).
func (c *Config) TLS() bool { return strings.HasPrefix(c.URL, "ldaps://") || c.StartTLS }

// ConfigError is a configuration ParseConfig or Validate refused. Path
// names the offending value (e.g. "roles[1].role"; empty for the whole
// document).
type ConfigError struct {
	Path string
	Msg  string
	Err  error // the underlying error (JSON syntax, PEM, DN), if any
}

// Error renders the error as "ldap config: [path: ]msg".
func (e *ConfigError) Error() string {
	if e.Path == "" {
		return "ldap config: " + e.Msg
	}
	return "ldap config: " + e.Path + ": " + e.Msg
}

// Unwrap returns the underlying error, if any.
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(path string, err error, format string, args ...any) *ConfigError {
	return &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...), Err: err}
}

// ParseConfig reads a configuration strictly, fills in the defaults and
// validates it. It reads no file: ca_file is read by Configure.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > maxConfig {
		return nil, configErr("", nil, "%d bytes, more than %d", len(data), maxConfig)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	p := &parser{dec: dec}
	c := &Config{}
	var timeout string
	fields := map[string]func(path string) error{
		"url":             func(path string) error { return p.str(path, &c.URL) },
		"start_tls":       func(path string) error { return p.boolean(path, &c.StartTLS) },
		"ca_pem":          func(path string) error { return p.str(path, &c.CAPEM) },
		"ca_file":         func(path string) error { return p.str(path, &c.CAFile) },
		"server_name":     func(path string) error { return p.str(path, &c.ServerName) },
		"allow_plaintext": func(path string) error { return p.boolean(path, &c.AllowPlaintext) },
		"user_dn":         func(path string) error { return p.str(path, &c.UserDN) },
		"group_base":      func(path string) error { return p.str(path, &c.GroupBase) },
		"group_filter":    func(path string) error { return p.str(path, &c.GroupFilter) },
		"group_attr":      func(path string) error { return p.str(path, &c.GroupAttr) },
		"timeout":         func(path string) error { return p.str(path, &timeout) },
		"roles": func(path string) error {
			return p.array(path, MaxRoles, func(path string) error {
				var m RoleMapping
				var role string
				err := p.object(path, "group and role", map[string]func(string) error{
					"group": func(path string) error { return p.str(path, &m.Group) },
					"role":  func(path string) error { return p.str(path, &role) },
				})
				m.Role = pki.Role(role)
				c.Roles = append(c.Roles, m)
				return err
			})
		},
	}
	if err := p.object("", "url, start_tls, ca_pem, ca_file, server_name, allow_plaintext, user_dn, group_base, group_filter, group_attr, roles and timeout", fields); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, configErr("", nil, "trailing data after the configuration object")
	}
	if c.GroupFilter == "" {
		c.GroupFilter = DefaultGroupFilter
	}
	if c.GroupAttr == "" {
		c.GroupAttr = DefaultGroupAttr
	}
	c.Timeout = DefaultTimeout
	if timeout != "" {
		d, err := time.ParseDuration(timeout)
		if err != nil {
			return nil, configErr("timeout", err, "%q is not a duration (e.g. \"5s\")", timeout)
		}
		c.Timeout = d
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// attrPattern is an attribute description: a name or an OID.
var attrPattern = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]{0,63}|[0-9]+(\.[0-9]+){0,31})$`)

// probe stands for the user's name where Validate checks the templates.
const probe = "hearth-probe"

// Validate checks that c is complete and consistent; the error is a
// *ConfigError naming the offending key.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return configErr("url", nil, "missing (ldap://host[:port] or ldaps://host[:port])")
	case err != nil:
		return configErr("url", err, "not a URL")
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		return configErr("url", nil, "scheme %q: want ldap or ldaps", u.Scheme)
	case u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return configErr("url", nil, "want ldap://host[:port] or ldaps://host[:port] and nothing else")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return configErr("url", err, "port %q is not a TCP port", port)
		}
	}
	switch {
	case c.StartTLS && u.Scheme == "ldaps":
		return configErr("start_tls", nil, "is for ldap:// URLs; ldaps:// is TLS from the start")
	case !c.TLS() && !c.AllowPlaintext:
		return configErr("url", nil, "ldap:// without start_tls sends passwords in clear: set start_tls, use ldaps://, or set allow_plaintext for a link protected otherwise")
	case c.TLS() && c.AllowPlaintext:
		return configErr("allow_plaintext", nil, "set, but TLS is configured (ldaps:// or start_tls)")
	case c.TLS() && c.CAPEM == "" && c.CAFile == "":
		return configErr("ca_pem", nil, "TLS needs the CA that verifies the directory: set ca_pem or ca_file")
	case c.CAPEM != "" && c.CAFile != "":
		return configErr("ca_file", nil, "set with ca_pem: give one of them")
	case !c.TLS() && (c.CAPEM != "" || c.CAFile != "" || c.ServerName != ""):
		return configErr("url", nil, "ca_pem, ca_file and server_name are for TLS, which this ldap:// URL without start_tls does not use")
	case c.CAFile != "" && !filepath.IsAbs(c.CAFile):
		return configErr("ca_file", nil, "%q is not an absolute path", c.CAFile)
	}
	if c.CAPEM != "" {
		if _, err := parseCA([]byte(c.CAPEM)); err != nil {
			return configErr("ca_pem", err, "%v", err)
		}
	}

	switch n := strings.Count(c.UserDN, "{user}"); {
	case c.UserDN == "":
		return configErr("user_dn", nil, "missing (e.g. \"uid={user},ou=people,dc=example,dc=org\")")
	case n != 1:
		return configErr("user_dn", nil, "holds {user} %d times, want once", n)
	}
	if _, err := goldap.ParseDN(userDN(c.UserDN, probe)); err != nil {
		return configErr("user_dn", err, "not a DN: %v", err)
	}
	if c.GroupBase == "" {
		return configErr("group_base", nil, "missing (e.g. \"ou=groups,dc=example,dc=org\")")
	}
	if dn, err := goldap.ParseDN(c.GroupBase); err != nil || len(dn.RDNs) == 0 {
		return configErr("group_base", err, "not a DN")
	}
	if !strings.Contains(c.GroupFilter, "{dn}") && !strings.Contains(c.GroupFilter, "{user}") {
		return configErr("group_filter", nil, "holds neither {dn} nor {user}: it would find the same groups for everyone")
	}
	if _, err := goldap.CompileFilter(groupFilter(c.GroupFilter, userDN(c.UserDN, probe), probe)); err != nil {
		return configErr("group_filter", err, "not an LDAP filter: %v", err)
	}
	if !attrPattern.MatchString(c.GroupAttr) {
		return configErr("group_attr", nil, "%q is not an attribute name", c.GroupAttr)
	}

	switch {
	case len(c.Roles) == 0:
		return configErr("roles", nil, "missing: map at least one group to a role")
	case len(c.Roles) > MaxRoles:
		return configErr("roles", nil, "%d entries, more than %d", len(c.Roles), MaxRoles)
	}
	for i, m := range c.Roles {
		path := fmt.Sprintf("roles[%d]", i)
		switch {
		case m.Group == "":
			return configErr(path+".group", nil, "missing")
		case len(m.Group) > MaxGroupName:
			return configErr(path+".group", nil, "longer than %d bytes", MaxGroupName)
		case authn.ValidRole(string(m.Role)) != nil:
			return configErr(path+".role", nil, "%v", authn.ValidRole(string(m.Role)))
		}
		for j, o := range c.Roles[:i] {
			if strings.EqualFold(o.Group, m.Group) {
				return configErr(path+".group", nil, "group %q is mapped already by roles[%d]", m.Group, j)
			}
		}
	}
	if c.Timeout <= 0 || c.Timeout > MaxTimeout {
		return configErr("timeout", nil, "%v: want more than 0 and at most %v", c.Timeout, MaxTimeout)
	}
	return nil
}

// userDN is template's DN for user, escaped as a DN value.
func userDN(template, user string) string {
	return strings.Replace(template, "{user}", goldap.EscapeDN(user), 1)
}

// groupFilter is template's filter for the user's DN and name, each
// escaped as a filter value.
func groupFilter(template, dn, user string) string {
	return strings.NewReplacer("{dn}", goldap.EscapeFilter(dn), "{user}", goldap.EscapeFilter(user)).Replace(template)
}

// parseCA parses PEM CA certificates into a pool; anything else in the
// PEM is refused.
func parseCA(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bytes.TrimSpace(data); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("not PEM after %d certificates", n)
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	return pool, nil
}

// parser walks the JSON token stream, so that it can refuse unknown and
// repeated keys and name the path of every error.
type parser struct {
	dec *json.Decoder
}

func (p *parser) token(path string) (json.Token, error) {
	tok, err := p.dec.Token()
	if err == io.EOF {
		return nil, configErr(path, io.ErrUnexpectedEOF, "unexpected end of input")
	}
	if err != nil {
		return nil, configErr(path, err, "invalid JSON: %v", err)
	}
	return tok, nil
}

// object reads an object at path whose keys are fields' (want lists them
// for the error); each field's function reads its value.
func (p *parser) object(path, want string, fields map[string]func(path string) error) error {
	tok, err := p.token(path)
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return configErr(path, nil, "want an object, got %s", kindOf(tok))
	}
	seen := map[string]bool{}
	for p.dec.More() {
		tok, err := p.token(path)
		if err != nil {
			return err
		}
		key, _ := tok.(string) // the decoder yields only strings as keys
		field, ok := fields[key]
		if !ok {
			return configErr(path, nil, "unknown key %q (want %s)", key, want)
		}
		if seen[key] {
			return configErr(path, nil, "duplicate key %q", key)
		}
		seen[key] = true
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if err := field(sub); err != nil {
			return err
		}
	}
	_, err = p.token(path) // the closing '}'
	return err
}

// array reads an array of at most max elements at path, calling elem
// for each element.
func (p *parser) array(path string, max int, elem func(path string) error) error {
	tok, err := p.token(path)
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		return configErr(path, nil, "want an array, got %s", kindOf(tok))
	}
	for i := 0; p.dec.More(); i++ {
		if i == max {
			return configErr(path, nil, "more than %d entries", max)
		}
		if err := elem(fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	_, err = p.token(path) // the closing ']'
	return err
}

func (p *parser) str(path string, v *string) error {
	tok, err := p.token(path)
	if err != nil {
		return err
	}
	s, ok := tok.(string)
	if !ok {
		return configErr(path, nil, "want a string, got %s", kindOf(tok))
	}
	*v = s
	return nil
}

func (p *parser) boolean(path string, v *bool) error {
	tok, err := p.token(path)
	if err != nil {
		return err
	}
	b, ok := tok.(bool)
	if !ok {
		return configErr(path, nil, "want true or false, got %s", kindOf(tok))
	}
	*v = b
	return nil
}

// kindOf names a token's JSON type for errors.
func kindOf(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		if v == '[' {
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a number"
}
