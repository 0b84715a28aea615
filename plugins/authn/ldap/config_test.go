package ldap_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/plugins/authn/ldap"
)

// baseConfig is the smallest accepted configuration, trusting ca.
func baseConfig(ca string) map[string]any {
	return map[string]any{
		"url":        "ldaps://ldap.example.org",
		"ca_pem":     ca,
		"user_dn":    "uid={user},ou=people,dc=example,dc=org",
		"group_base": "ou=groups,dc=example,dc=org",
		"roles":      []any{map[string]any{"group": "fl-leads", "role": "lead"}},
	}
}

// TestParseConfig reads configurations strictly: each refusal names the
// offending key.
func TestParseConfig(t *testing.T) {
	ca := string(pki.EncodeCert(pkitest.New(t).CA.Cert))
	base, err := json.Marshal(baseConfig(ca))
	if err != nil {
		t.Fatal(err)
	}
	// set changes base: a nil value deletes the key.
	set := func(kv ...any) string {
		c := baseConfig(ca)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// add appends raw keys to base.
	add := func(raw string) string { return strings.TrimSuffix(string(base), "}") + ", " + raw + "}" }
	plain := func(kv ...any) string {
		return set(append([]any{"url", "ldap://ldap.example.org", "ca_pem", nil}, kv...)...)
	}
	role := func(group, role string) map[string]any { return map[string]any{"group": group, "role": role} }
	tests := []struct {
		name     string
		config   string
		wantPath string
		wantMsg  string // in the message; "" for success
	}{
		{name: "minimal", config: string(base)},
		{name: "every key", config: set("server_name", "ldap", "group_filter", "(member={dn})", "group_attr", "cn", "timeout", "2s")},
		{name: "start_tls", config: set("url", "ldap://ldap.example.org", "start_tls", true)},
		{name: "plaintext allowed", config: plain("allow_plaintext", true)},
		{name: "ca_file", config: set("ca_pem", nil, "ca_file", "/etc/ldap/ca.pem")},

		{name: "not an object", config: `[]`, wantMsg: "want an object, got an array"},
		{name: "invalid JSON", config: `{"url": }`, wantPath: "url", wantMsg: "invalid JSON"},
		{name: "cut short", config: `{"url": "ldap://x"`, wantMsg: "unexpected end of input"},
		{name: "trailing data", config: string(base) + ` {}`, wantMsg: "trailing data"},
		{name: "unknown key", config: add(`"bind_dn": "cn=x"`), wantMsg: `unknown key "bind_dn"`},
		{name: "duplicate key", config: add(`"url": "ldaps://other"`), wantMsg: `duplicate key "url"`},
		{name: "string of the wrong type", config: set("timeout", 5), wantPath: "timeout", wantMsg: "want a string, got a number"},
		{name: "boolean of the wrong type", config: set("start_tls", "yes"), wantPath: "start_tls", wantMsg: "want true or false"},
		{name: "null", config: add(`"server_name": null`), wantPath: "server_name", wantMsg: "want a string, got null"},
		{name: "too large", config: set("server_name", strings.Repeat("x", 1<<20)), wantMsg: "bytes, more than"},

		{name: "no url", config: set("url", nil), wantPath: "url", wantMsg: "missing"},
		{name: "url scheme", config: set("url", "http://ldap.example.org"), wantPath: "url", wantMsg: `scheme "http"`},
		{name: "url with a DN", config: set("url", "ldaps://ldap.example.org/dc=example"), wantPath: "url", wantMsg: "nothing else"},
		{name: "url with a password", config: set("url", "ldaps://u:p@ldap.example.org"), wantPath: "url", wantMsg: "nothing else"},
		{name: "url port", config: set("url", "ldaps://ldap.example.org:99999"), wantPath: "url", wantMsg: "not a TCP port"},
		{name: "plaintext not allowed", config: plain(), wantPath: "url", wantMsg: "sends passwords in clear"},
		{name: "allow_plaintext with TLS", config: set("allow_plaintext", true), wantPath: "allow_plaintext", wantMsg: "TLS is configured"},
		{name: "start_tls on ldaps", config: set("start_tls", true), wantPath: "start_tls", wantMsg: "ldaps:// is TLS from the start"},
		{name: "TLS without a CA", config: set("ca_pem", nil), wantPath: "ca_pem", wantMsg: "set ca_pem or ca_file"},
		{name: "two CAs", config: set("ca_file", "/etc/ca.pem"), wantPath: "ca_file", wantMsg: "give one of them"},
		{name: "server_name without TLS", config: plain("allow_plaintext", true, "server_name", "x"), wantPath: "url", wantMsg: "are for TLS"},
		{name: "relative ca_file", config: set("ca_pem", nil, "ca_file", "ca.pem"), wantPath: "ca_file", wantMsg: "not an absolute path"},
		{name: "ca_pem not PEM", config: set("ca_pem", "hello"), wantPath: "ca_pem", wantMsg: "not PEM"},
		{name: "ca_pem a key", config: set("ca_pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), wantPath: "ca_pem", wantMsg: `"PRIVATE KEY", want CERTIFICATE`},

		{name: "no user_dn", config: set("user_dn", nil), wantPath: "user_dn", wantMsg: "missing"},
		{name: "user_dn without {user}", config: set("user_dn", "uid=alice,dc=org"), wantPath: "user_dn", wantMsg: "holds {user} 0 times"},
		{name: "user_dn with {user} twice", config: set("user_dn", "uid={user},cn={user},dc=org"), wantPath: "user_dn", wantMsg: "holds {user} 2 times"},
		{name: "user_dn not a DN", config: set("user_dn", "{user},dc=org"), wantPath: "user_dn", wantMsg: "not a DN"},
		{name: "no group_base", config: set("group_base", nil), wantPath: "group_base", wantMsg: "missing"},
		{name: "group_base not a DN", config: set("group_base", "groups"), wantPath: "group_base", wantMsg: "not a DN"},
		{name: "group_filter not a filter", config: set("group_filter", "(member={dn}"), wantPath: "group_filter", wantMsg: "not an LDAP filter"},
		{name: "group_filter for everyone", config: set("group_filter", "(objectClass=groupOfNames)"), wantPath: "group_filter", wantMsg: "the same groups for everyone"},
		{name: "group_attr", config: set("group_attr", "cn)(x"), wantPath: "group_attr", wantMsg: "not an attribute name"},

		{name: "no roles", config: set("roles", nil), wantPath: "roles", wantMsg: "missing"},
		{name: "roles not an array", config: set("roles", role("a", "lead")), wantPath: "roles", wantMsg: "want an array"},
		{name: "role entry not an object", config: set("roles", []any{"fl-leads"}), wantPath: "roles[0]", wantMsg: "want an object"},
		{name: "unknown key in a role entry", config: set("roles", []any{role("a", "lead"), map[string]any{"group": "b", "rol": "lead"}}),
			wantPath: "roles[1]", wantMsg: `unknown key "rol" (want group and role)`},
		{name: "role entry without group", config: set("roles", []any{map[string]any{"role": "lead"}}), wantPath: "roles[0].group", wantMsg: "missing"},
		{name: "a role no policy could name", config: set("roles", []any{role("a", "Lead Admin")}), wantPath: "roles[0].role", wantMsg: `only a-z, 0-9`},
		{name: "group mapped twice", config: set("roles", []any{role("a", "lead"), role("A", "member")}), wantPath: "roles[1].group", wantMsg: "mapped already by roles[0]"},
		{name: "over-long group", config: set("roles", []any{role(strings.Repeat("g", ldap.MaxGroupName+1), "lead")}), wantPath: "roles[0].group", wantMsg: "longer than"},
		{name: "too many roles", config: set("roles", manyRoles(ldap.MaxRoles+1)), wantPath: "roles", wantMsg: "more than 64 entries"},

		{name: "timeout not a duration", config: set("timeout", "soon"), wantPath: "timeout", wantMsg: "not a duration"},
		{name: "timeout zero", config: set("timeout", "0s"), wantPath: "timeout", wantMsg: "want more than 0"},
		{name: "timeout too long", config: set("timeout", "2m"), wantPath: "timeout", wantMsg: "at most 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ldap.ParseConfig([]byte(tt.config))
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.GroupFilter == "" || c.GroupAttr == "" || c.Timeout <= 0 {
					t.Fatalf("defaults not filled in: %+v", c)
				}
				return
			}
			var ce *ldap.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *ConfigError", err, err)
			}
			if ce.Path != tt.wantPath || !strings.Contains(ce.Msg, tt.wantMsg) {
				t.Fatalf("error %q (path %q), want path %q and %q", err, ce.Path, tt.wantPath, tt.wantMsg)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		c, err := ldap.ParseConfig(base)
		if err != nil {
			t.Fatal(err)
		}
		if c.GroupFilter != ldap.DefaultGroupFilter || c.GroupAttr != "cn" || c.Timeout != 5*time.Second || !c.TLS() {
			t.Fatalf("config %+v", c)
		}
		if len(c.Roles) != 1 || c.Roles[0] != (ldap.RoleMapping{Group: "fl-leads", Role: pki.RoleLead}) {
			t.Fatalf("roles %+v", c.Roles)
		}
	})
}

// TestConfigureCAFile refuses a ca_file that cannot be read or holds no
// certificate, and leaves the authenticator unconfigured.
func TestConfigureCAFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		wantMsg string
	}{
		{name: "missing", file: filepath.Join(dir, "none.pem"), wantMsg: "no such file"},
		{name: "not PEM", file: notPEM, wantMsg: "not PEM"},
		{name: "too large", file: big, wantMsg: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig("")
			delete(c, "ca_pem")
			c["ca_file"] = tt.file
			config, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			err = ldap.New().Configure(t.Context(), config)
			var ce *ldap.ConfigError
			if !errors.As(err, &ce) || ce.Path != "ca_file" || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %v, want a ca_file error holding %q", err, tt.wantMsg)
			}
		})
	}
}

// manyRoles maps n distinct groups.
func manyRoles(n int) []any {
	var roles []any
	for i := range n {
		roles = append(roles, map[string]any{"group": fmt.Sprintf("g%d", i), "role": "member"})
	}
	return roles
}
