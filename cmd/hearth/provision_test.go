package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/provision"
)

// runHearth runs the CLI in process with env as its environment.
func runHearth(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	err = run(context.Background(), c, args)
	return out.String(), errOut.String(), err
}

func TestProvisionCommand(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	project := filepath.Join("..", "..", "project.example.yml")
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("no passphrase", func(t *testing.T) {
		_, _, err := runHearth(t, nil, "provision", "-p", project, "-o", ws)
		if err == nil || !strings.Contains(err.Error(), "--passphrase-file") || !strings.Contains(err.Error(), "HEARTH_CA_PASSPHRASE") {
			t.Fatalf("provision without a passphrase: %v", err)
		}
		if _, err := os.Stat(ws); !os.IsNotExist(err) {
			t.Errorf("workspace written: %v", err)
		}
	})
	t.Run("missing flags", func(t *testing.T) {
		_, _, err := runHearth(t, nil, "provision", "-p", project)
		if !errors.Is(err, errUsage) {
			t.Fatalf("provision without -o: %v, want a usage error", err)
		}
	})

	out, _, err := runHearth(t, nil, "provision", "-p", project, "-o", ws, "--passphrase-file", passFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "created the root CA") || !strings.Contains(out, provision.KitDir(ws, "site-3")) {
		t.Errorf("summary does not report the new CA and kits:\n%s", out)
	}
	if _, err := kit.Load(provision.KitDir(ws, "site-1")); err != nil {
		t.Fatal(err)
	}

	// Again, with the passphrase from the environment and JSON output.
	env := map[string]string{"HEARTH_CA_PASSPHRASE": "a long enough passphrase"}
	out, _, err = runHearth(t, env, "provision", "-p", project, "-o", ws, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res provision.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if res.CreatedCA || len(res.Added) != 0 || len(res.Kept) != 7 {
		t.Errorf("second run: %+v, want everything kept", res)
	}

	_, _, err = runHearth(t, map[string]string{"HEARTH_CA_PASSPHRASE": "the wrong passphrase"}, "provision", "-p", project, "-o", ws)
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
}

func TestCertCommands(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	env := map[string]string{"HEARTH_CA_PASSPHRASE": "a long enough passphrase"}
	if _, _, err := runHearth(t, env, "provision", "-p", filepath.Join("..", "..", "project.example.yml"), "-o", ws); err != nil {
		t.Fatal(err)
	}

	req := filepath.Join(dir, "req")
	out, _, err := runHearth(t, nil, "cert", "request", "--name", "site-7", "--org", "hospital-c", "--kind", "site", "--host", "localhost", "--host", "127.0.0.1", "-o", req)
	if err != nil {
		t.Fatal(err)
	}
	csr := filepath.Join(req, "site-7.csr")
	if !strings.Contains(out, "hearth cert approve -w WORKSPACE "+csr) {
		t.Errorf("request output lacks the next step:\n%s", out)
	}

	// Flags may follow the file name.
	out, _, err = runHearth(t, env, "cert", "approve", csr, "-w", ws)
	if err != nil {
		t.Fatal(err)
	}
	kitDir := provision.KitDir(ws, "site-7")
	if !strings.Contains(out, kitDir) || !strings.Contains(out, "key.pem") {
		t.Errorf("approve output lacks the kit or the key instruction:\n%s", out)
	}
	if _, err := kit.Load(kitDir); err == nil || !strings.Contains(err.Error(), "key.pem missing") {
		t.Fatalf("Load before the key is copied: %v", err)
	}
	key, err := os.ReadFile(filepath.Join(req, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kitDir, "key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.Load(kitDir); err != nil {
		t.Fatal(err)
	}

	if _, _, err := runHearth(t, env, "cert", "revoke", "-w", ws, "site-7"); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.Load(kitDir); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("Load of a revoked kit: %v", err)
	}

	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		usage bool
		want  string
	}{
		{"no subcommand", nil, []string{"cert"}, true, "request, approve or revoke"},
		{"unknown subcommand", nil, []string{"cert", "sign"}, true, "request, approve or revoke"},
		{"request without name", nil, []string{"cert", "request", "--org", "o", "--kind", "site", "-o", req}, true, "needs --name"},
		{"request for a server", nil, []string{"cert", "request", "--name", "s", "--org", "o", "--kind", "server", "-o", filepath.Join(dir, "s")}, false, "server certificates come only from"},
		{"approve without a file", env, []string{"cert", "approve", "-w", ws}, true, "want 1 argument"},
		{"approve without a passphrase", nil, []string{"cert", "approve", "-w", ws, csr}, false, "no CA passphrase"},
		{"approve twice", env, []string{"cert", "approve", "-w", ws, csr}, false, "already holds a certificate"},
		{"revoke unknown", env, []string{"cert", "revoke", "-w", ws, "nobody"}, false, "no certificate was issued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runHearth(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v: %v, want an error saying %q", tt.args, err, tt.want)
			}
			if errors.Is(err, errUsage) != tt.usage {
				t.Errorf("usage error = %v, want %v", errors.Is(err, errUsage), tt.usage)
			}
		})
	}
}
