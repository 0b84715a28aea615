package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// request asks `to` for a Pong, retrying while interest propagates.
func request(t testing.TB, n *node.Node, to string) *bridge.Reply {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		r, err := n.Bridge.Request(ctx, to, &hearthv1.Ping{Seq: 1, Text: "are you there?"})
		cancel()
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s -> %s: %v", n.Identity.Name, to, err)
		}
	}
}

func TestActorsRoundTripAcrossProcesses(t *testing.T) {
	p := startProject(t, 4, 3) // server + site-1..3 as processes; site-4 joins from this test
	admin := p.inProcess(t, p.Admin, node.Options{})
	site4 := p.inProcess(t, "site-4", node.Options{})

	// Request/response: admin console and a site's leaf (this process) ->
	// hub process -> the server's actor.
	for _, from := range []*node.Node{admin, site4} {
		r := request(t, from, "server")
		if pong := r.Msg.(*hearthv1.Pong); pong.Responder != "server" || r.From.Name != "server" || r.From.Kind != pki.KindServer {
			t.Fatalf("%s -> server answered by %q (%v)", from.Identity.Name, pong.Responder, r.From)
		}
	}
	// One-way messages reach the server's actor, with the verified sender.
	admin.System.Root.Send(admin.Bridge.PID(), &bridge.Send{To: "server", Msg: &hearthv1.Notice{Text: "hello server"}})
	r := awaitLog(t, p.server, "notice", func(r cluster.Record) bool { return r.Msg() == "notice" })
	if r.Str("from") != p.Admin || r.Str("text") != "hello server" {
		t.Fatalf("the server logged notice %v", r)
	}
	// Admins and sites address the server only: the hub does not carry
	// their messages to a site (the server's reach the sites: the learning
	// tests).
	for _, from := range []*node.Node{admin, site4} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := from.Bridge.Request(ctx, "site-1", &hearthv1.Ping{Seq: 1})
		cancel()
		if err == nil {
			t.Fatalf("%s reached site-1 directly", from.Identity.Name)
		}
	}
}

func TestEnvelopesRefusedAcrossProcesses(t *testing.T) {
	p := startProject(t, 2, 1) // the server is a process; site-2 joins from this test
	admin := p.inProcess(t, p.Admin, node.Options{})
	site2 := p.inProcess(t, "site-2", node.Options{})
	request(t, admin, "server") // links are up
	request(t, site2, "server")
	target := p.server

	sign := func(n *node.Node, msg proto.Message) []byte {
		data, _, err := n.Signer.Sign(envelope.Outgoing{Recipient: "server", Body: msg}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	edit := func(data []byte, f func(*hearthv1.Envelope)) []byte {
		var env hearthv1.Envelope
		if err := proto.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		f(&env)
		out, err := proto.Marshal(&env)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	replayed := sign(admin, &hearthv1.Notice{Text: "first delivery"})
	cases := []struct {
		name   string
		from   *node.Node
		data   []byte
		reason string
	}{
		{"genuine, then its replay", admin, replayed, ""},
		{"replayed envelope", admin, replayed, "replay"},
		{"tampered body", admin, edit(sign(admin, &hearthv1.Notice{Text: "pay site-2"}), func(e *hearthv1.Envelope) { e.Body[len(e.Body)-1] ^= 1 }), "bad_signature"},
		{"forged signature", admin, edit(sign(admin, &hearthv1.Notice{Text: "forged"}), func(e *hearthv1.Envelope) { e.Signature[0] ^= 0xff }), "bad_signature"},
		{"type not allowed for a site", site2, sign(site2, &hearthv1.Notice{Text: "sites may not send notices"}), "type_not_allowed"},
		{"oversize", admin, sign(admin, &hearthv1.Ping{Payload: make([]byte, bus.MaxEnvelope)}), "too_large"},
		{"another participant's envelope relayed", site2, sign(admin, &hearthv1.Notice{Text: "relayed"}), "sender_mismatch"},
		{"a job task from an admin (only the server coordinates)", admin, sign(admin, &hearthv1.TrainTask{JobId: "job-x"}), "type_not_allowed"},
	}
	for _, tc := range cases {
		if err := tc.from.Conn.Publish(bus.Direct("server", tc.from.Identity.Name), tc.data); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.reason == "" {
			awaitLog(t, target, tc.name, func(r cluster.Record) bool { return r.Msg() == "notice" && r.Str("text") == "first delivery" })
			continue
		}
		awaitLog(t, target, tc.name, func(r cluster.Record) bool {
			return r.Msg() == "envelope refused" && r.Str("reason") == tc.reason
		})
	}
	// A genuine notice after all of them: the only notices the actor ever
	// saw are the two genuine ones.
	admin.System.Root.Send(admin.Bridge.PID(), &bridge.Send{To: "server", Msg: &hearthv1.Notice{Text: "last"}})
	awaitLog(t, target, "last notice", func(r cluster.Record) bool { return r.Msg() == "notice" && r.Str("text") == "last" })
	if got := target.Records(func(r cluster.Record) bool { return r.Msg() == "notice" }); len(got) != 2 {
		t.Fatalf("the server's actor saw %d notices, want the 2 genuine ones: %v", len(got), got)
	}
	// Larger than NATS's max_payload: refused by the bus before it is sent.
	if err := admin.Conn.Publish(bus.Direct("server", p.Admin), make([]byte, bus.MaxPayload+1)); err == nil {
		t.Fatal("a message over max_payload was accepted for sending")
	}
}

// leafWith dials the hub process with an arbitrary certificate and reports
// whether the link came up within a short time.
func leafWith(t testing.TB, p *project, name string, cert *pkiCert, trust *pki.Trust) bool {
	t.Helper()
	kitCfg := p.Project.Server
	leaf, err := bus.StartLeaf(bus.LeafConfig{
		Name: name, HubURLs: []string{"tls://127.0.0.1:" + itoa(kitCfg.LeafPort)}, LocalPort: -1,
		Certificate: cert.tls(), Trust: trust, ReconnectInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	return leaf.WaitHub(ctx) == nil
}

func TestHubProcessRefusesCertificates(t *testing.T) {
	p := startProject(t, 2, 0)
	ca := p.openCA(t)
	trust := pki.NewTrust(ca.Cert)
	other, err := pki.NewCA("another-project", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	adminKit := loadKit(t, p.Kit(p.Admin))
	cases := []struct {
		name   string
		cert   *pkiCert
		reason string
	}{
		{"certificate from another CA", issue(t, other, "site-1", pki.KindSite, time.Hour), "unknown_authority"},
		{"expired certificate", issue(t, ca, "site-1", pki.KindSite, -time.Hour), "expired"},
		{"admin certificate joining as a site", &pkiCert{cert: adminKit.Cert, key: adminKit.Key}, "wrong_kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if leafWith(t, p, "intruder", tc.cert, trust) {
				t.Fatal("the hub admitted the leaf")
			}
			awaitLog(t, p.server, "refusal "+tc.reason, func(r cluster.Record) bool {
				return r.Msg() == "connection refused" && r.Str("listener") == "leaf" && r.Str("reason") == tc.reason
			})
		})
	}
	// A genuine site certificate is admitted: the refusals were not luck.
	siteKit := loadKit(t, p.Kit("site-2"))
	if !leafWith(t, p, "site-2", &pkiCert{cert: siteKit.Cert, key: siteKit.Key}, trust) {
		t.Fatal("the hub refused a genuine site")
	}
	// An admin kit cannot run a site at all.
	out, err := exec.Command(hearthBin, "site", "-k", p.Kit(p.Admin)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "admin kit") {
		t.Fatalf("hearth site with an admin kit: %v\n%s", err, out)
	}
}

func TestRevokedSiteIsRefusedEverywhere(t *testing.T) {
	p := startProject(t, 3, 3)
	admin := p.inProcess(t, p.Admin, node.Options{CRLPoll: 100 * time.Millisecond})
	request(t, admin, "server")

	revoke := exec.Command(hearthBin, "cert", "revoke", "-w", p.Workspace, "site-3")
	revoke.Env = append(os.Environ(), "HEARTH_CA_PASSPHRASE="+string(p.Passphrase))
	if out, err := revoke.CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	awaitLog(t, p.server, "CRL reload", func(r cluster.Record) bool { return r.Msg() == "revocation list installed" })
	deadline := time.Now().Add(5 * time.Second)
	for admin.Trust.CRLNumber() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	// The hub closes site-3's live link at once (reported as a refusal of
	// site-3 as revoked), and the admin's trust refuses its certificate.
	awaitLog(t, p.server, "live link cut", func(r cluster.Record) bool {
		return r.Msg() == "connection refused" && r.Str("peer") == "site-3" && r.Str("reason") == "revoked" &&
			strings.Contains(r.Str("err"), "live link closed")
	})
	k3 := rawKit(t, p.Kit("site-3"))
	if _, err := admin.Trust.Verify(k3.cert, time.Now()); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("the admin's trust verifies the revoked certificate: %v", err)
	}
	request(t, admin, "server") // others are unaffected

	// Restarted, it cannot start from its kit, and its certificate cannot
	// join the hub.
	if err := p.sites["site-3"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(hearthBin, "site", "-k", p.Kit("site-3")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "revoked") {
		t.Fatalf("restart of the revoked site: %v\n%s", err, out)
	}
	if leafWith(t, p, "site-3", k3, pki.NewTrust(k3.root)) {
		t.Fatal("the hub admitted the revoked certificate")
	}
	awaitLog(t, p.server, "refusal revoked", func(r cluster.Record) bool {
		return r.Msg() == "connection refused" && r.Str("reason") == "revoked"
	})
}

func TestTamperedKitsRefuseToStart(t *testing.T) {
	ws := t.TempDir()
	local, err := cluster.ProvisionLocal(ws, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ command, kit, file string }{
		{"site", local.Kit("site-1"), "local/authorization.json.default"},
		{"server", local.Kit("server"), "participants.json"},
		{"site", local.Kit("site-1"), "kit.json"},
	}
	for _, tc := range cases {
		t.Run(tc.command+" "+tc.file, func(t *testing.T) {
			path := filepath.Join(tc.kit, tc.file)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o644)
			if err := os.WriteFile(path, append(append([]byte{}, orig...), ' '), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(hearthBin, tc.command, "-k", tc.kit).CombinedOutput()
			if err == nil {
				t.Fatalf("started from a tampered kit:\n%s", out)
			}
			if !strings.Contains(string(out), tc.file) || !strings.Contains(string(out), "changed") {
				t.Fatalf("error does not name %s as changed:\n%s", tc.file, out)
			}
		})
	}
}

// The protocol table is what the processes enforce; keep this test in step
// with it so a widened allow-list is a deliberate change.
func TestOnlyServerAndAdminsMaySendNotices(t *testing.T) {
	allow := protocol.Allow()
	notice := protocol.Name(&hearthv1.Notice{})
	for kind, types := range allow {
		has := false
		for _, ty := range types {
			has = has || ty == notice
		}
		if want := kind == pki.KindServer || kind == pki.KindAdmin; has != want {
			t.Errorf("%s may send notices: %v, want %v", kind, has, want)
		}
	}
}
