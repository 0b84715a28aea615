package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/integration/cluster"
	"github.com/hearthfl/hearth/policies"
)

// hearthBin is the hearth binary built once for all tests; hostileBin is
// the same built with -tags hostile, whose sites play compromised ones
// (cmd/hearth/hostile.go).
var hearthBin, hostileBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hearth-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hearthBin, hostileBin = filepath.Join(dir, "hearth"), filepath.Join(dir, "hearth-hostile")
	for _, b := range [][]string{{"-o", hearthBin}, {"-tags", "hostile", "-o", hostileBin}} {
		build := exec.Command("go", append(append([]string{"build"}, b...), "../cmd/hearth")...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build hearth:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// project is a local project with its server and some sites running as
// separate processes.
type project struct {
	*cluster.Local
	server *cluster.Proc
	sites  map[string]*cluster.Proc
	hosts  map[string]*cluster.Proc // aggregation hosts
	logs   string
}

// startProject provisions `provisioned` sites and runs the server and the
// first `running` of them as processes.
func startProject(t testing.TB, provisioned, running int) *project {
	t.Helper()
	return startProjectWith(t, projectSpec{provisioned: provisioned, running: running})
}

// projectSpec shapes a test project: how many sites are provisioned and
// run, which run the hostile build, and extra admins with their roles.
type projectSpec struct {
	provisioned, running int
	hostile              map[string]bool
	admins               []provision.AdminSpec
	// tap, if set, runs the server's hostile build, which writes every
	// message crossing the hub to this file (cmd/hearth/hostile.go).
	tap string
	// hosts aggregation hosts (agg-1..) run with hostArgs (and the
	// hostile build for those in hostileHosts); attestation, if set, is
	// each site's local/attestation.json ("" for none).
	hosts        int
	hostArgs     []string
	hostileHosts map[string]bool
	attestation  func(site string) string
	// local, if set, writes files into a participant's local/ folder
	// (its own policies) before it starts: name -> contents.
	local func(participant string) map[string]string
}

func startProjectWith(t testing.TB, spec projectSpec) *project {
	t.Helper()
	provisioned, running := spec.provisioned, spec.running
	ws := t.TempDir()
	// Provisioned three days ago, so that tests can issue certificates that
	// have already expired.
	local, err := cluster.ProvisionLocalHosts(ws, provisioned, spec.hosts, time.Now().Add(-72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.admins) > 0 { // provisioned again: new kits, the server's participant list updated
		local.Project.Admins = append(local.Project.Admins, spec.admins...)
		if _, err := provision.Provision(local.Project, ws, local.Passphrase, policies.Defaults(), time.Now().Add(-72*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	p := &project{Local: local, sites: map[string]*cluster.Proc{}, hosts: map[string]*cluster.Proc{}, logs: filepath.Join(ws, "logs")}
	if spec.local != nil {
		for _, name := range append(append([]string{local.Server}, local.Sites...), local.Hosts...) {
			for file, text := range spec.local(name) {
				if err := os.WriteFile(filepath.Join(local.Kit(name), kit.LocalDir, file), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if spec.attestation != nil {
		for _, s := range local.Sites {
			if text := spec.attestation(s); text != "" {
				if err := os.WriteFile(filepath.Join(local.Kit(s), kit.LocalDir, "attestation.json"), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := os.MkdirAll(p.logs, 0o700); err != nil {
		t.Fatal(err)
	}
	if spec.tap != "" {
		t.Setenv("HEARTH_HOSTILE_TAP", spec.tap) // inherited by the server; the sites' builds ignore it
		p.server = p.startBin(t, hostileBin, "server", "server", "-k", local.Kit("server"), "--listen", "127.0.0.1")
	} else {
		p.server = p.start(t, "server", "server", "-k", local.Kit("server"), "--listen", "127.0.0.1")
	}
	p.await(t, p.server)
	for _, s := range local.Sites[:running] {
		bin := hearthBin
		if spec.hostile[s] {
			bin = hostileBin
		}
		p.sites[s] = p.startBin(t, bin, s, "site", "-k", local.Kit(s))
	}
	for _, h := range local.Hosts {
		bin := hearthBin
		if spec.hostileHosts[h] {
			bin = hostileBin
		}
		p.hosts[h] = p.startBin(t, bin, h, append([]string{"aggregator", "-k", local.Kit(h)}, spec.hostArgs...)...)
	}
	for _, s := range local.Sites[:running] {
		p.await(t, p.sites[s])
	}
	for _, h := range local.Hosts {
		p.await(t, p.hosts[h])
	}
	return p
}

// start runs a hearth process with JSON logs; it is stopped when the test ends.
func (p *project) start(t testing.TB, name string, args ...string) *cluster.Proc {
	t.Helper()
	return p.startBin(t, hearthBin, name, args...)
}

// startBin is start with another build of hearth.
func (p *project) startBin(t testing.TB, bin, name string, args ...string) *cluster.Proc {
	t.Helper()
	proc, err := cluster.Start(bin, filepath.Join(p.logs, name+".log"), name, append(args, "--log-format", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(10 * time.Second); err != nil && !t.Failed() {
			t.Errorf("%s: %v", name, err)
		}
		// Whatever a test sends, a process's actors never fail: a panic is
		// hidden by protoactor's restarts (logged as Recovering) until the
		// restarts run out and the actor stops.
		for _, r := range proc.Records(func(r cluster.Record) bool {
			return r.Str("component") == "actor" && strings.Contains(r.Msg(), "Recovering")
		}) {
			t.Errorf("%s: an actor failed and was restarted: %s (%v)", name, r.Str("reason"), r["self"])
		}
	})
	return proc
}

func (p *project) await(t testing.TB, proc *cluster.Proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := proc.AwaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// awaitLog waits for a record of proc that match accepts.
func awaitLog(t testing.TB, proc *cluster.Proc, what string, match func(cluster.Record) bool) cluster.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := proc.Await(ctx, what, match)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// inProcess starts a participant of the project inside the test process:
// an admin console, or a site's leaf node dialing the hub process. It
// speaks Hearth's protocol (actors/protocol) unless opts names another.
func (p *project) inProcess(t testing.TB, name string, opts node.Options) *node.Node {
	t.Helper()
	if opts.Protocol == nil {
		opts.Protocol = protocol.Table{}
	}
	k, err := kit.Load(p.Kit(name))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var n *node.Node
	switch k.Config.Kind {
	case "admin":
		n, err = node.StartAdmin(ctx, k, opts)
	default:
		n, err = node.StartSite(ctx, k, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := n.WaitHub(wctx); err != nil {
		t.Fatal(err)
	}
	return n
}
