package authn_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// bins are the test authenticator's binaries, built once by TestMain.
var bins *plugintest.Binaries

func TestMain(m *testing.M) { plugintest.Main(m, "hearth-authn-test-", &bins) }

// users is the test authenticator's table: alice maps to a role, bob
// authenticates but maps to none.
var users = map[string]any{
	"alice": map[string]any{"password": "pw", "subject": "uid=alice,ou=people", "groups": []string{"fl-leads"}, "role": "lead"},
	"bob":   map[string]any{"password": "pw", "subject": "uid=bob,ou=people", "groups": []string{"staff"}},
}

// policy is an authentication.json pinning path to sum, with the test
// authenticator's config conf (none when nil) and the other keys in
// extra.
func policy(path string, sum [32]byte, conf map[string]any, extra map[string]any) map[string]any {
	p := map[string]any{
		"format_version": "1.0",
		"plugin":         map[string]any{"path": path, "sha256": hex.EncodeToString(sum[:])},
	}
	if conf != nil {
		p["config"] = conf
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// openSite writes doc as kitDir/local/authentication.json and opens the
// site on it; the site is closed when the test ends.
func openSite(t *testing.T, kitDir string, doc map[string]any) *authn.Site {
	t.Helper()
	file := writePolicy(t, kitDir, doc)
	s, err := authn.OpenSite(t.Context(), authn.SiteConfig{File: file, KitDir: kitDir, WorkDir: t.TempDir(), Logger: bustest.Logger()})
	if err != nil {
		t.Fatalf("OpenSite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// writePolicy writes doc as kitDir/local/authentication.json.
func writePolicy(t *testing.T, kitDir string, doc map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(kitDir, "local", "authentication.json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// request is a submit by user with password.
func request(user, password string) authn.Request {
	return authn.Request{
		Site:       "site-1",
		Command:    authn.CommandSubmit,
		Requester:  authn.Requester{Name: user + "@a.org", Org: "a", Role: "member"},
		Credential: &authn.Credential{Kind: authn.CredentialPassword, User: user, Secret: password},
	}
}
