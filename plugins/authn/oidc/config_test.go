package oidc

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

func TestParseConfig(t *testing.T) {
	caPEM := string(pki.EncodeCert(pkitest.New(t).CA.Cert))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	const roles = `"roles": [{"group": "fl-leads", "role": "lead"}]`
	const issuer = `"issuer": "https://idp.example/dex"`
	q := strconv.Quote

	tests := []struct {
		name    string
		json    string
		wantErr string // part of the error; "" for a config that parses
		check   func(*testing.T, *Config)
	}{
		{name: "minimal: the defaults", json: `{` + issuer + `, ` + roles + `}`, check: func(t *testing.T, c *Config) {
			if c.SubjectClaim != "sub" || c.GroupsClaim != "groups" || time.Duration(c.Skew) != 30*time.Second ||
				time.Duration(c.Timeout) != 10*time.Second || !slices.Equal(c.Algorithms, []string{"RS256", "ES256"}) ||
				c.Audience != "" || c.caPool != nil {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "every field", json: `{` + issuer + `, "ca_pem": ` + q(caPEM) + `, "audience": "site-1", "subject_claim": "email",
			"groups_claim": "roles", "skew": "5m", "algorithms": ["ES384"], "timeout": "1m",
			"roles": [{"group": "a", "role": "lead"}, {"group": "b", "role": "member"}]}`, check: func(t *testing.T, c *Config) {
			if c.Audience != "site-1" || c.SubjectClaim != "email" || c.GroupsClaim != "roles" || time.Duration(c.Skew) != 5*time.Minute ||
				time.Duration(c.Timeout) != time.Minute || !slices.Equal(c.Algorithms, []string{"ES384"}) || len(c.Roles) != 2 || c.caPool == nil {
				t.Errorf("parsed: %+v", c)
			}
		}},
		{name: "ca_file read", json: `{` + issuer + `, "ca_file": ` + q(caFile) + `, ` + roles + `}`, check: func(t *testing.T, c *Config) {
			if c.caPool == nil || c.CAPEM != caPEM {
				t.Errorf("ca_file not read: %+v", c)
			}
		}},
		{name: "a zero skew", json: `{` + issuer + `, "skew": "0s", ` + roles + `}`, check: func(t *testing.T, c *Config) {
			if c.Skew != 0 {
				t.Errorf("skew %v", time.Duration(c.Skew))
			}
		}},

		{name: "not JSON", json: `issuer: x`, wantErr: "invalid character"},
		{name: "an unknown field", json: `{` + issuer + `, ` + roles + `, "insecure": true}`, wantErr: `unknown field "insecure"`},
		{name: "a misspelt field", json: `{` + issuer + `, ` + roles + `, "subjectClaim": "email"}`, wantErr: `unknown field "subjectClaim"`},
		{name: "data after the object", json: `{` + issuer + `, ` + roles + `} {}`, wantErr: "data after the JSON object"},
		{name: "too large", json: `{` + issuer + `, ` + roles + `, "audience": "` + strings.Repeat("a", maxConfigBytes) + `"}`, wantErr: "more than"},
		{name: "no issuer", json: `{` + roles + `}`, wantErr: "issuer: required"},
		{name: "an http issuer", json: `{"issuer": "http://idp.example", ` + roles + `}`, wantErr: "https only"},
		{name: "an issuer with a query", json: `{"issuer": "https://idp.example/?x=1", ` + roles + `}`, wantErr: "no user info, query or fragment"},
		{name: "an issuer with user info", json: `{"issuer": "https://u:p@idp.example/", ` + roles + `}`, wantErr: "no user info"},
		{name: "an issuer without host", json: `{"issuer": "https:///dex", ` + roles + `}`, wantErr: "no host"},
		{name: "ca_pem and ca_file", json: `{` + issuer + `, "ca_pem": ` + q(caPEM) + `, "ca_file": ` + q(caFile) + `, ` + roles + `}`, wantErr: "name one"},
		{name: "a missing ca_file", json: `{` + issuer + `, "ca_file": "/nonexistent/ca.pem", ` + roles + `}`, wantErr: "ca_file"},
		{name: "ca_pem not PEM", json: `{` + issuer + `, "ca_pem": "hello", ` + roles + `}`, wantErr: "CA"},
		{name: "ca_pem a private key", json: `{` + issuer + `, "ca_pem": ` + q(string(pki.EncodeKey(mustKey(t)))) + `, ` + roles + `}`, wantErr: `"PRIVATE KEY" block`},
		{name: "no roles", json: `{` + issuer + `}`, wantErr: "no group is mapped"},
		{name: "a role without group", json: `{` + issuer + `, "roles": [{"role": "lead"}]}`, wantErr: "roles[0]"},
		{name: "a group without role", json: `{` + issuer + `, "roles": [{"group": "g"}]}`, wantErr: "roles[0]"},
		{name: "too many roles", json: `{` + issuer + `, "roles": [` + strings.Repeat(`{"group": "g", "role": "r"},`, maxRoles) + `{"group": "g", "role": "r"}]}`, wantErr: "more than 256"},
		{name: "a negative skew", json: `{` + issuer + `, "skew": "-1s", ` + roles + `}`, wantErr: "skew"},
		{name: "a skew of an hour", json: `{` + issuer + `, "skew": "1h", ` + roles + `}`, wantErr: "skew 1h0m0s: between 0 and 5m0s"},
		{name: "a skew as a number", json: `{` + issuer + `, "skew": 30, ` + roles + `}`, wantErr: "a duration is a string"},
		{name: "a timeout too short", json: `{` + issuer + `, "timeout": "1ms", ` + roles + `}`, wantErr: "timeout"},
		{name: "a timeout too long", json: `{` + issuer + `, "timeout": "1h", ` + roles + `}`, wantErr: "timeout"},
		{name: "alg none", json: `{` + issuer + `, "algorithms": ["none"], ` + roles + `}`, wantErr: `algorithm "none" not accepted`},
		{name: "no algorithm", json: `{` + issuer + `, "algorithms": [], ` + roles + `}`, wantErr: "none listed"},
		{name: "an empty subject claim", json: `{` + issuer + `, "subject_claim": "", ` + roles + `}`, wantErr: "subject_claim"},
		{name: "HS256 (a shared secret)", json: `{` + issuer + `, "algorithms": ["RS256", "HS256"], ` + roles + `}`, wantErr: `algorithm "HS256" not accepted`},
		{name: "a subject claim with spaces", json: `{` + issuer + `, "subject_claim": "my claim", ` + roles + `}`, wantErr: "subject_claim"},
		{name: "the same claim twice", json: `{` + issuer + `, "subject_claim": "groups", ` + roles + `}`, wantErr: "both"},
		{name: "an audience too long", json: `{` + issuer + `, "audience": "` + strings.Repeat("a", 300) + `", ` + roles + `}`, wantErr: "audience longer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
			// Configure refuses the same, and an authenticator that was
			// never configured cannot decide.
			a := New()
			if err := a.Configure(context.Background(), []byte(tc.json)); err == nil {
				t.Fatal("Configure accepted it")
			}
			if _, err := a.Authenticate(context.Background(), request("site-1", "alice", "x.y.z")); err == nil {
				t.Fatal("an unconfigured authenticator decided")
			}
		})
	}
}

func mustKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
