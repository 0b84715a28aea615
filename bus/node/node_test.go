package node_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// project provisions a local project (server on free loopback ports, two
// sites, an admin) in a temporary workspace.
func project(t *testing.T) *cluster.Local {
	t.Helper()
	l, err := cluster.ProvisionLocal(t.TempDir(), 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func load(t *testing.T, dir string) *kit.Kit {
	t.Helper()
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// liveness is a protocol table of the liveness and failure messages only:
// the node's tests exercise the bus, which knows no learning.
type liveness struct{}

func (liveness) messages() []proto.Message {
	return []proto.Message{&hearthv1.Ping{}, &hearthv1.Pong{}, &hearthv1.Failure{}}
}

func (l liveness) Registry() *envelope.Registry { return envelope.NewRegistry(l.messages()...) }

func (l liveness) AllowFor(self pki.Kind) envelope.AllowList {
	allow := envelope.AllowList{}
	for _, kind := range []pki.Kind{pki.KindAdmin, pki.KindServer, pki.KindSite, pki.KindAggregator} {
		if !pki.MayAddress(kind, self) {
			continue
		}
		for _, m := range l.messages() {
			allow[kind] = append(allow[kind], string(proto.MessageName(m)))
		}
	}
	return allow
}

// startSite starts the site whose kit is in dir, with the liveness
// protocol unless o names one.
func startSite(t *testing.T, dir string, o node.Options) (*node.Node, error) {
	t.Helper()
	if o.Protocol == nil {
		o.Protocol = liveness{}
	}
	n, err := node.StartSite(t.Context(), load(t, dir), o)
	if err == nil {
		t.Cleanup(n.Close)
	}
	return n, err
}

// replaceKit makes the kit in dir the one in forged (another project's kit
// for the same participant, signed by another root), keeping dir's state/:
// what someone who can write the kit folder can do.
func replaceKit(t *testing.T, dir, forged string) {
	t.Helper()
	if err := os.Rename(filepath.Join(dir, kit.StateDirName), filepath.Join(forged, kit.StateDirName)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(forged, dir); err != nil {
		t.Fatal(err)
	}
}

// A node handed no protocol table would decode nothing or, worse, guess:
// it refuses to start, before it writes anything to the kit's state.
func TestStartRefusesWithoutProtocol(t *testing.T) {
	l := project(t)
	tests := []struct {
		name  string
		who   string
		start func(context.Context, *kit.Kit, node.Options) (*node.Node, error)
	}{
		{"server", l.Server, node.StartServer},
		{"site", "site-1", node.StartSite},
		{"admin", l.Admin, node.StartAdmin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := load(t, l.Kit(tt.who))
			n, err := tt.start(t.Context(), k, node.Options{ListenHost: "127.0.0.1", CRLPoll: -1})
			if err == nil {
				n.Close()
				t.Fatal("started without a protocol table")
			}
			if !strings.Contains(err.Error(), "no protocol table") {
				t.Errorf("error %q does not say the protocol table is missing", err)
			}
			if _, err := os.Stat(filepath.Join(k.Dir, kit.StateDirName)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("state/ written before the refusal: %v", err)
			}
		})
	}
}

func TestStartRefusesASwappedRoot(t *testing.T) {
	honest, rogue := project(t), project(t)
	site := honest.Kit("site-1")
	root := load(t, site).RootFingerprint()

	n, err := startSite(t, site, node.Options{CRLPoll: -1}) // first start records the root
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := startSite(t, site, node.Options{CRLPoll: -1, RootFingerprint: root}); err != nil {
		t.Fatalf("start with the matching fingerprint: %v", err)
	}

	replaceKit(t, site, rogue.Kit("site-1"))
	forged := load(t, site).RootFingerprint()
	if forged == root {
		t.Fatal("the two projects share a root")
	}
	for _, tt := range []struct {
		name string
		o    node.Options
	}{
		{"recorded pin", node.Options{CRLPoll: -1}},
		{"fingerprint given", node.Options{CRLPoll: -1, RootFingerprint: root}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := startSite(t, site, tt.o)
			if !errors.Is(err, kit.ErrRootChanged) {
				t.Fatalf("StartSite = %v, want ErrRootChanged", err)
			}
			for _, want := range []string{root.String(), forged.String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
		})
	}
}

func TestStartRefusesAnOlderCRL(t *testing.T) {
	l := project(t)
	site := l.Kit("site-1")
	if err := provision.Revoke(l.Workspace, l.Passphrase, "site-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	oldCRL, err := os.ReadFile(filepath.Join(site, kit.CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	n, err := startSite(t, site, node.Options{CRLPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A newer list arrives while the site runs: its poller installs it and
	// remembers its number.
	if err := provision.Revoke(l.Workspace, l.Passphrase, "site-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	bustest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if seen, err := n.Kit.SeenCRLNumber(); err != nil || seen != 2 {
			return fmt.Errorf("remembered CRL number %d (%v), want 2", seen, err)
		}
		return nil
	})
	n.Close()

	for _, tt := range []struct {
		name    string
		restore func() error
		says    string
	}{
		{"older list", func() error { return os.WriteFile(filepath.Join(site, kit.CRLFile), oldCRL, 0o644) }, "crl.pem number 1"},
		{"no list", func() error { return os.Remove(filepath.Join(site, kit.CRLFile)) }, "no crl.pem"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.restore(); err != nil {
				t.Fatal(err)
			}
			_, err := startSite(t, site, node.Options{CRLPoll: -1})
			if !errors.Is(err, kit.ErrCRLRollback) {
				t.Fatalf("StartSite = %v, want ErrCRLRollback", err)
			}
			if !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), "number 2") {
				t.Errorf("error %q does not say %q and number 2", err, tt.says)
			}
		})
	}
}

// records collects a node's refusal records.
type records struct {
	mu   sync.Mutex
	recs []node.RefusalRecord
}

func (r *records) add(rec node.RefusalRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}

func (r *records) find(action, peer, reason string) (node.RefusalRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Action == action && rec.Peer == peer && rec.Reason == reason {
			return rec, true
		}
	}
	return node.RefusalRecord{}, false
}

// total sums the counts of the records of one key.
func (r *records) total(action, peer, reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Action == action && rec.Peer == peer && rec.Reason == reason {
			n += rec.Count
		}
	}
	return n
}

func TestServerAuditsRefusedEnvelopes(t *testing.T) {
	l := project(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	server, err := node.StartServer(ctx, load(t, l.Kit(l.Server)), node.Options{Protocol: liveness{}, ListenHost: "127.0.0.1", CRLPoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	var got records
	detach := server.AuditRefusals(got.add)
	defer detach()
	admin, err := node.StartAdmin(ctx, load(t, l.Kit(l.Admin)), node.Options{Protocol: liveness{}, CRLPoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	// A validly signed envelope, sent 50 times: the 49 repeats are replays.
	data, _, err := admin.Signer.Sign(envelope.Outgoing{Recipient: l.Server, Body: &hearthv1.Ping{}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := admin.Conn.Publish(bus.Direct(l.Server, l.Admin), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	// The records reach the sink as the bridge refuses the repeats; the
	// test hands pending counts over itself rather than wait an interval.
	bustest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if err := server.Refusals.Flush(true); err != nil {
			return err
		}
		if n := got.total(node.ActionEnvelopeRefused, l.Admin, "replay"); n != 49 {
			return fmt.Errorf("%d replays from %s recorded, want 49", n, l.Admin)
		}
		return nil
	})
	if rec, ok := got.find(node.ActionEnvelopeRefused, l.Admin, "replay"); !ok || !rec.First || !strings.Contains(rec.Detail, "already seen") {
		t.Fatalf("first record %+v, want a first record saying the id was already seen", rec)
	}
	if err := detach(); err != nil {
		t.Fatal(err)
	}
	if n := got.total(node.ActionEnvelopeRefused, l.Admin, "replay"); n != 49 {
		t.Fatalf("%d replays recorded after detaching, want 49", n)
	}
}
