package authn_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hearthfl/hearth/plugins/authn"
	authnv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/authn/v1"
)

// recording is an authenticator that keeps what it is asked and answers
// what it is told.
type recording struct {
	mu       sync.Mutex
	config   []byte
	requests []authn.Request
	decision authn.Decision
	err      error
}

func (r *recording) Configure(_ context.Context, config []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.config = config
	return r.err
}

func (r *recording) Authenticate(_ context.Context, req authn.Request) (authn.Decision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	return r.decision, r.err
}

// shim connects the kind's host side to impl over go-plugin's in-process
// gRPC test connection, and returns the host side's Authenticator and the
// raw gRPC client.
func shim(t *testing.T, impl authn.Authenticator) (authn.Authenticator, authnv1.AuthenticatorClient) {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{authn.PluginName: authn.Glue(impl)})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(authn.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(authn.Authenticator), authnv1.NewAuthenticatorClient(client.Conn)
}

// TestShimCarriesRequests shows every field of a request and a decision
// crossing the wire unchanged, for each command and credential kind.
func TestShimCarriesRequests(t *testing.T) {
	rec := &recording{decision: authn.Decision{Authenticated: true, Subject: "uid=alice", Groups: []string{"a", "b"}, Role: "lead", Reason: "password"}}
	host, _ := shim(t, rec)
	if err := host.Configure(t.Context(), []byte(`{"url":"ldaps://dir"}`)); err != nil {
		t.Fatal(err)
	}
	if string(rec.config) != `{"url":"ldaps://dir"}` {
		t.Fatalf("config arrived as %q", rec.config)
	}
	base := authn.Request{
		Site:      "site-1",
		Requester: authn.Requester{Name: "alice@a.org", Org: "a", Role: "member"},
		JobID:     "job-7",
		Manifest:  []byte("signed manifest bytes"),
	}
	var tests []authn.Request
	for _, c := range []authn.Command{
		authn.CommandSubmit, authn.CommandAbort, authn.CommandDownload, authn.CommandStatus, authn.CommandPreflight,
		authn.CommandSiteStatus, authn.CommandSiteResources, authn.CommandSiteLogs, authn.CommandSiteAudit, authn.CommandSiteShutdown,
	} {
		r := base
		r.Command = c
		tests = append(tests, r)
	}
	password, token, none := base, base, base
	password.Command, token.Command, none.Command = authn.CommandSubmit, authn.CommandSubmit, authn.CommandSubmit
	password.Credential = &authn.Credential{Kind: authn.CredentialPassword, User: "alice", Secret: "pw"}
	token.Credential = &authn.Credential{Kind: authn.CredentialToken, Secret: "eyJ..."}
	tests = append(tests, password, token, none)
	for _, r := range tests {
		d, err := host.Authenticate(t.Context(), r)
		if err != nil {
			t.Fatalf("%s: %v", r.Command, err)
		}
		if !reflect.DeepEqual(d, rec.decision) {
			t.Fatalf("%s: decision %+v arrived as %+v", r.Command, rec.decision, d)
		}
		if got := rec.requests[len(rec.requests)-1]; !reflect.DeepEqual(got, r) {
			t.Fatalf("request %+v arrived as %+v", r, got)
		}
	}
}

// TestShimRefuses shows the conversions refusing what has no place on
// the wire, and the plugin's errors arriving as its answer (not as a
// broken connection, which would make the host restart it).
func TestShimRefuses(t *testing.T) {
	ok := authn.Request{Command: authn.CommandSubmit}
	tests := []struct {
		name     string
		decision authn.Decision
		err      error
		req      authn.Request
		want     string
		reached  bool // the plugin was asked
		code     codes.Code
	}{
		{name: "unknown command", req: authn.Request{Command: "shell"}, want: `unknown command "shell"`},
		{name: "unknown credential kind", req: authn.Request{Command: authn.CommandAbort, Credential: &authn.Credential{Kind: "cookie"}}, want: `unknown credential kind "cookie"`},
		{name: "the plugin's error", req: ok, err: errors.New("ldap: dial: connection refused"), want: "authn plugin: authenticate: ldap: dial: connection refused", reached: true, code: codes.Unknown},
		{name: "too many groups", req: ok, decision: authn.Decision{Authenticated: true, Role: "lead", Groups: make([]string, 1025)}, want: "1025 groups", reached: true},
		{name: "a subject too long", req: ok, decision: authn.Decision{Authenticated: true, Role: "lead", Subject: strings.Repeat("x", 1025)}, want: "1025 bytes", reached: true},
		{name: "a group too long", req: ok, decision: authn.Decision{Authenticated: true, Role: "lead", Groups: []string{strings.Repeat("g", 2000)}}, want: "2000 bytes", reached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recording{decision: tt.decision, err: tt.err}
			host, _ := shim(t, rec)
			d, err := host.Authenticate(t.Context(), tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Authenticate: %+v, %v; want an error saying %q", d, err, tt.want)
			}
			if (len(rec.requests) > 0) != tt.reached {
				t.Fatalf("the plugin was asked %d times, want reached=%v", len(rec.requests), tt.reached)
			}
			if tt.code != codes.OK && status.Code(err) != tt.code {
				t.Fatalf("status code %v, want %v", status.Code(err), tt.code)
			}
		})
	}
}

// TestShimServerRefusesUnknownValues shows the plugin side refusing a
// request with a command or credential kind it does not know, before its
// authenticator sees it.
func TestShimServerRefusesUnknownValues(t *testing.T) {
	tests := []struct {
		name string
		req  *authnv1.AuthenticateRequest
	}{
		{name: "unspecified command", req: &authnv1.AuthenticateRequest{}},
		{name: "a command from a newer contract", req: &authnv1.AuthenticateRequest{Command: authnv1.Command(99)}},
		{name: "unspecified credential kind", req: &authnv1.AuthenticateRequest{Command: authnv1.Command_COMMAND_SUBMIT, Credential: &authnv1.Credential{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recording{}
			_, raw := shim(t, rec)
			_, err := raw.Authenticate(t.Context(), tt.req)
			if status.Code(err) != codes.InvalidArgument || len(rec.requests) != 0 {
				t.Fatalf("Authenticate: %v (asked %d times), want InvalidArgument before the authenticator", err, len(rec.requests))
			}
		})
	}
}
