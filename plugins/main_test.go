package plugins_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// bins are the test authenticator's binaries, built once by TestMain.
var bins *plugintest.Binaries

func TestMain(m *testing.M) { plugintest.Main(m, "hearth-plugins-test-", &bins) }

// config is a loader configuration for the test authenticator at path,
// pinned to sum, whose Init configures it with conf (see
// testauthn.Config).
func config(t *testing.T, path string, sum [32]byte, conf map[string]any) plugins.Config {
	t.Helper()
	raw, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return plugins.Config{
		Kind:    authn.Kind(),
		Pin:     plugins.Pin{Path: path, SHA256: sum},
		Timeout: 5 * time.Second,
		WorkDir: t.TempDir(),
		Init: func(ctx context.Context, c any) error {
			return c.(authn.Authenticator).Configure(ctx, raw)
		},
		Logger: bustest.Logger(),
	}
}

// load loads cfg and closes the Process when the test ends.
func load(t *testing.T, cfg plugins.Config) *plugins.Process {
	t.Helper()
	p, err := plugins.Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// authenticate asks p's authenticator to decide r.
func authenticate(ctx context.Context, p *plugins.Process, r authn.Request) (authn.Decision, error) {
	var d authn.Decision
	err := p.Call(ctx, func(ctx context.Context, c any) error {
		var err error
		d, err = c.(authn.Authenticator).Authenticate(ctx, r)
		return err
	})
	return d, err
}

// alice is a user of the test authenticator's table, and aliceRequest a
// request with her password.
var (
	alice        = map[string]any{"alice": map[string]any{"password": "pw", "subject": "uid=alice", "groups": []string{"fl-leads"}, "role": "lead"}}
	aliceRequest = authn.Request{
		Site:       "site-1",
		Command:    authn.CommandSubmit,
		Requester:  authn.Requester{Name: "alice@a.org", Org: "a", Role: "member"},
		Credential: &authn.Credential{Kind: authn.CredentialPassword, User: "alice", Secret: "pw"},
	}
)

// mustAuthenticate fails t unless p authenticates alice.
func mustAuthenticate(t *testing.T, p *plugins.Process) {
	t.Helper()
	d, err := authenticate(t.Context(), p, aliceRequest)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if !d.Authenticated || d.Role != "lead" {
		t.Fatalf("decision %+v, want alice authenticated as lead", d)
	}
}
