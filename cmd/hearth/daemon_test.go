package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/integration/cluster"
)

// localProject provisions a project on free loopback ports.
func localProject(t *testing.T) *cluster.Local {
	t.Helper()
	l, err := cluster.ProvisionLocal(t.TempDir(), 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func rootOf(t *testing.T, dir string) kit.Fingerprint {
	t.Helper()
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k.RootFingerprint()
}

// runSiteOnce runs `hearth site` with ctx already cancelled: it returns
// context.Canceled once it has passed its start checks and started, or the
// start's refusal.
func runSiteOnce(t *testing.T, env map[string]string, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut strings.Builder
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	return run(ctx, c, append([]string{"site", "--log-level", "error"}, args...))
}

func TestSiteChecksTheRootFingerprint(t *testing.T) {
	honest, rogue := localProject(t), localProject(t)
	site := honest.Kit("site-1")
	root := rootOf(t, site)
	forged := rootOf(t, rogue.Kit("site-1"))
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		refused error // nil: starts
		usage   bool
	}{
		{"matching flag", nil, []string{"-k", site, "--root-fingerprint", root.String()}, nil, false},
		{"matching environment", map[string]string{rootFingerprintEnv: root.String()}, []string{"-k", site}, nil, false},
		{"other root by flag", nil, []string{"-k", site, "--root-fingerprint", forged.String()}, kit.ErrRootChanged, false},
		{"other root by environment", map[string]string{rootFingerprintEnv: forged.String()}, []string{"-k", site}, kit.ErrRootChanged, false},
		{"flag wins over environment", map[string]string{rootFingerprintEnv: forged.String()}, []string{"-k", site, "--root-fingerprint", root.String()}, nil, false},
		{"malformed flag", nil, []string{"-k", site, "--root-fingerprint", "sha256:abc"}, errUsage, true},
		{"the rogue kit, pinned by the recorded root", nil, []string{"-k", rogue.Kit("site-1")}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runSiteOnce(t, tt.env, tt.args...)
			switch {
			case tt.refused == nil && !errors.Is(err, context.Canceled):
				t.Fatalf("site: %v, want it started (then stopped by the cancelled context)", err)
			case tt.refused != nil && !errors.Is(err, tt.refused):
				t.Fatalf("site: %v, want %v", err, tt.refused)
			}
			if errors.Is(err, errUsage) != tt.usage {
				t.Errorf("usage error %v, want %v", errors.Is(err, errUsage), tt.usage)
			}
		})
	}
	// The honest kit recorded its root at its first start; a kit swapped
	// in under it (same participant, another root that re-signed the
	// manifest) now refuses without any flag.
	state := filepath.Join(site, kit.StateDirName)
	if data, err := os.ReadFile(filepath.Join(state, kit.RootPinFile)); err != nil || strings.TrimSpace(string(data)) != root.String() {
		t.Fatalf("recorded pin %q, %v; want %s", data, err, root)
	}
	swapped := rogue.Kit("site-1")
	if err := os.RemoveAll(filepath.Join(swapped, kit.StateDirName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(state, filepath.Join(swapped, kit.StateDirName)); err != nil {
		t.Fatal(err)
	}
	err := runSiteOnce(t, nil, "-k", swapped)
	if !errors.Is(err, kit.ErrRootChanged) || !strings.Contains(err.Error(), root.String()) || !strings.Contains(err.Error(), forged.String()) {
		t.Fatalf("swapped kit: %v, want ErrRootChanged naming %s and %s", err, root, forged)
	}
}

func TestServerRefusesAnotherRootOrAnOlderCRL(t *testing.T) {
	honest, rogue := localProject(t), localProject(t)
	server := honest.Kit("server")
	forged := rootOf(t, rogue.Kit("server"))
	var out, errOut strings.Builder
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err := run(t.Context(), c, []string{"server", "-k", server, "--log-level", "error", "--root-fingerprint", forged.String()})
	if !errors.Is(err, kit.ErrRootChanged) || !strings.Contains(err.Error(), forged.String()) {
		t.Fatalf("server with another root's fingerprint: %v, want ErrRootChanged naming %s", err, forged)
	}

	// A server that installed revocation list 2 refuses to start with none.
	for range 2 {
		if err := provision.Revoke(honest.Workspace, honest.Passphrase, "site-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	k, err := kit.Load(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.CheckCRLNumber(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(k.CRLPath()); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), c, []string{"server", "-k", server, "--log-level", "error"})
	if !errors.Is(err, kit.ErrCRLRollback) || !strings.Contains(err.Error(), "number 2") {
		t.Fatalf("server without its revocation list: %v, want ErrCRLRollback naming number 2", err)
	}
}

func TestProvisionPrintsTheRootFingerprint(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	env := map[string]string{"HEARTH_CA_PASSPHRASE": "a long enough passphrase"}
	out, _, err := runHearth(t, env, "provision", "-p", filepath.Join("..", "..", "project.example.yml"), "-o", ws)
	if err != nil {
		t.Fatal(err)
	}
	root := rootOf(t, provision.KitDir(ws, "site-1")).String()
	if !strings.Contains(out, "project root fingerprint: "+root) || !strings.Contains(out, "--root-fingerprint "+root) {
		t.Errorf("provision output lacks the root fingerprint %s:\n%s", root, out)
	}
	_, _, err = runHearth(t, nil, "cert", "request", "--name", "site-7", "--org", "hospital-c", "--kind", "site", "-o", filepath.Join(dir, "req"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = runHearth(t, env, "cert", "approve", "-w", ws, filepath.Join(dir, "req", "site-7.csr"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "project root fingerprint: "+root) {
		t.Errorf("cert approve output lacks the root fingerprint %s:\n%s", root, out)
	}
}

func TestRefusalsReachTheAuditLog(t *testing.T) {
	l := localProject(t)
	k, err := kit.Load(l.Kit("site-1"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.StartSite(t.Context(), k, node.Options{Protocol: protocol.Table{}, CRLPoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	audit, err := openAudit(n)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	for range 1000 { // counted before the log is attached
		n.Refusals.Note(node.ActionConnectionRefused, "site-9", "revoked", "local listener: certificate revoked")
	}
	auditRefusals(n, audit)()
	path := filepath.Join(k.Dir, kit.StateDirName, auditFile)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []auditor.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e auditor.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Action == node.ActionConnectionRefused {
			found = append(found, e)
		}
	}
	if len(found) != 1 || found[0].Peer != "site-9" || found[0].Detail["count"] != "1000" || found[0].Detail["reason"] != "revoked" {
		t.Fatalf("audit records %+v, want one connection.refused record from site-9 counting 1000", found)
	}
}
