package bus

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// testLogger discards nats-server's logs unless HEARTH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HEARTH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// checkFor polls f until it returns nil or total passes.
func checkFor(t *testing.T, total, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}

type topology struct {
	project  *pkitest.Project
	server   *pkitest.Participant
	sites    map[string]*pkitest.Participant
	admin    *pkitest.Participant
	hub      *Hub
	refusals chan Refusal
}

// newTopology starts a hub admitting a server, the named sites and an admin.
func newTopology(t *testing.T, sites ...string) *topology {
	t.Helper()
	p := pkitest.New(t)
	tp := &topology{project: p, sites: map[string]*pkitest.Participant{}, refusals: make(chan Refusal, 64)}
	tp.server = p.Issue(t, "server", "hearth", pki.KindServer)
	tp.admin = p.Issue(t, "admin@hearth.org", "hearth", pki.KindAdmin)
	ids := []pki.Identity{tp.server.Identity, tp.admin.Identity}
	for i, name := range sites {
		tp.sites[name] = p.Issue(t, name, fmt.Sprintf("org-%d", i%2), pki.KindSite)
		ids = append(ids, tp.sites[name].Identity)
	}
	hub, err := StartHub(HubConfig{
		Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: tp.server.TLS(), Trust: p.Trust, Participants: ids,
		StoreDir: t.TempDir(), Logger: testLogger(),
		OnRefusal: func(r Refusal) {
			select {
			case tp.refusals <- r:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Shutdown)
	tp.hub = hub
	return tp
}

// startLeaf starts a leaf node for participant part, without waiting for it
// to reach the hub.
func (tp *topology) startLeaf(t *testing.T, part *pkitest.Participant) *Leaf {
	t.Helper()
	leaf, err := StartLeaf(LeafConfig{
		Name: part.Identity.Name, HubURLs: []string{"tls://" + tp.hub.LeafAddr()}, LocalPort: -1,
		Certificate: part.TLS(), Trust: tp.project.Trust, Logger: testLogger(),
		ReconnectInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)
	return leaf
}

// joinedLeaf starts a leaf for a site and returns an actor connection on it
// once the link to the hub is up.
func (tp *topology) joinedLeaf(t *testing.T, name string) (*Leaf, *nats.Conn) {
	t.Helper()
	leaf := tp.startLeaf(t, tp.sites[name])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaf.WaitHub(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := leaf.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return leaf, nc
}

// deliverUntilSeen publishes on subject until sub sees a message, so that
// subscription interest has propagated across the leaf links.
func deliverUntilSeen(t *testing.T, pub *nats.Conn, subject string, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	var got *nats.Msg
	checkFor(t, 10*time.Second, 0, func() error {
		if err := pub.Publish(subject, []byte("hello")); err != nil {
			return err
		}
		m, err := sub.NextMsg(50 * time.Millisecond)
		if err != nil {
			return fmt.Errorf("nothing on %s yet: %w", subject, err)
		}
		got = m
		return nil
	})
	return got
}

func TestMessagesFlowBetweenLeavesAndServer(t *testing.T) {
	tp := newTopology(t, "site-1", "site-2")
	_, nc1 := tp.joinedLeaf(t, "site-1")
	_, nc2 := tp.joinedLeaf(t, "site-2")
	server, err := tp.hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	inbox1, _ := nc1.SubscribeSync(Inbox("site-1"))
	inboxServer, _ := server.SubscribeSync(Inbox("server"))

	// Sites reach only the server (TestSitesCannotAddressSites), which
	// reaches every site.
	m := deliverUntilSeen(t, server, Direct("site-1", "server"), inbox1)
	if to, from, ok := ParseDirect(m.Subject); !ok || to != "site-1" || from != "server" {
		t.Fatalf("subject %q parsed as (%q, %q, %v)", m.Subject, to, from, ok)
	}
	deliverUntilSeen(t, nc1, Direct("server", "site-1"), inboxServer)
	deliverUntilSeen(t, server, Direct("site-2", "server"), func() *nats.Subscription {
		s, _ := nc2.SubscribeSync(Inbox("site-2"))
		return s
	}())
	if tp.hub.NumLeafs() != 2 {
		t.Fatalf("hub has %d leaves, want 2", tp.hub.NumLeafs())
	}
}

func TestHubRefusesLeafCertificates(t *testing.T) {
	tp := newTopology(t, "site-1", "site-2")
	other := pkitest.New(t) // another project's CA
	revoked := tp.sites["site-2"]
	tp.project.Revoke(t, 1, revoked)

	cases := []struct {
		name string
		part *pkitest.Participant
		want error
	}{
		{"certificate from another CA", other.Issue(t, "site-1", "org-0", pki.KindSite), pki.ErrUnknownAuthority},
		{"expired certificate", tp.project.Issue(t, "site-1", "org-0", pki.KindSite, pkitest.Expired()), pki.ErrExpired},
		{"revoked certificate", revoked, pki.ErrRevoked},
		{"admin certificate joining as a site", tp.admin, pki.ErrWrongKind},
		{"server certificate joining as a site", tp.server, pki.ErrWrongKind},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drain(tp.refusals)
			leaf := tp.startLeaf(t, tc.part)
			var got Refusal
			select {
			case got = <-tp.refusals:
			case <-time.After(10 * time.Second):
				t.Fatal("hub reported no refusal")
			}
			if got.Listener != "leaf" || !errors.Is(got.Err, tc.want) {
				t.Fatalf("refusal %+v, want listener leaf and %v", got, tc.want)
			}
			if !strings.Contains(got.Err.Error(), tc.part.Identity.Name) {
				t.Fatalf("refusal %q does not name the certificate %q", got.Err, tc.part.Identity.Name)
			}
			if leaf.HubConnected() || tp.hub.NumLeafs() != 0 {
				t.Fatalf("refused leaf is connected (hub has %d leaves)", tp.hub.NumLeafs())
			}
		})
	}
}

func TestLeafRefusesHubFromAnotherProject(t *testing.T) {
	tp := newTopology(t, "site-1")
	other := pkitest.New(t)
	// A hub with a certificate from another CA, on another port.
	fake := other.Issue(t, "server", "hearth", pki.KindServer)
	fakeHub, err := StartHub(HubConfig{
		Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: fake.TLS(), Trust: other.Trust, StoreDir: t.TempDir(), Logger: testLogger(),
		Participants: []pki.Identity{tp.sites["site-1"].Identity},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fakeHub.Shutdown()
	refused := make(chan Refusal, 8)
	leaf, err := StartLeaf(LeafConfig{
		Name: "site-1", HubURLs: []string{"tls://" + fakeHub.LeafAddr()}, LocalPort: -1,
		Certificate: tp.sites["site-1"].TLS(), Trust: tp.project.Trust, Logger: testLogger(),
		OnRefusal: func(r Refusal) { refused <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown()
	// Go's own chain check rejects the foreign hub before ours runs; the
	// point is that the link never comes up.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := leaf.WaitHub(ctx); err == nil {
		t.Fatal("leaf joined a hub whose certificate is from another project")
	}
}

func TestPermissionsConfineEachSiteToItsOwnSubjects(t *testing.T) {
	tp := newTopology(t, "site-1", "site-2", "site-3")
	_, nc1 := tp.joinedLeaf(t, "site-1")
	_, nc2 := tp.joinedLeaf(t, "site-2")
	_, nc3 := tp.joinedLeaf(t, "site-3")
	server, err := tp.hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	inbox, _ := server.SubscribeSync(Inbox("server"))
	deliverUntilSeen(t, nc2, Direct("server", "site-2"), inbox)
	drainSub(inbox)

	// site-1 claims to be site-2 on the subject: its own leaf drops it (the
	// hub told the leaf its permissions), so only the genuine one arrives.
	if err := nc1.Publish(Direct("server", "site-2"), []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if err := nc1.Publish(Direct("server", "site-1"), []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	m, err := inbox.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "genuine" {
		t.Fatalf("got %v %v, want only the genuine message", m, err)
	}

	// site-1 subscribes to site-3's inbox: it receives nothing of site-3's.
	spy, _ := nc1.SubscribeSync(Inbox("site-3"))
	nc1.Flush()
	inbox3, _ := nc3.SubscribeSync(Inbox("site-3"))
	deliverUntilSeen(t, server, Direct("site-3", "server"), inbox3)
	if m, err := spy.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("site-1 read site-3's message %q", m.Subject)
	}
}

// TestHubRefusesRogueLeafPublish speaks the leafnode protocol by hand, as a
// modified site would, ignoring the permissions the hub announced: the hub
// itself must refuse the publish and close the link.
func TestHubRefusesRogueLeafPublish(t *testing.T) {
	tp := newTopology(t, "site-1", "site-2")
	server, err := tp.hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	inbox, _ := server.SubscribeSync(Inbox("server"))
	server.Flush()

	conn, err := net.Dial("tcp", tp.hub.LeafAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	tc := tls.Client(conn, &tls.Config{
		Certificates: []tls.Certificate{tp.sites["site-1"].TLS()},
		RootCAs:      tp.project.Trust.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13,
	})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r = bufio.NewReader(tc)
	fmt.Fprintf(tc, "CONNECT {\"tls_required\":true,\"name\":\"rogue\",\"headers\":true,\"proto\":1}\r\nPING\r\n")
	waitLine(t, r, "PONG")
	subject := Direct("server", "site-2")
	fmt.Fprintf(tc, "LMSG %s 6\r\nforged\r\n", subject)
	line := waitLine(t, r, "-ERR")
	if !strings.Contains(line, "Permissions Violation for Publish") || !strings.Contains(line, subject) {
		t.Fatalf("hub answered %q", line)
	}
	select {
	case ref := <-tp.refusals:
		if !errors.Is(ref.Err, ErrPermission) {
			t.Fatalf("refusal %v, want a permission violation", ref.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hub reported no refusal")
	}
	if _, err := io.ReadAll(r); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Logf("after refusal: %v", err)
	}
	if m, err := inbox.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("forged message reached the server: %q", m.Data)
	}
}

func TestClientListenerAdmitsAdminsOnly(t *testing.T) {
	tp := newTopology(t, "site-1")
	connect := func(p *pkitest.Participant) (*nats.Conn, error) {
		cert := p.TLS()
		return nats.Connect("tls://"+tp.hub.ClientAddr(),
			nats.Secure(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: tp.project.Trust.Pool(), MinVersion: tls.VersionTLS13}),
			nats.NoReconnect(), nats.Timeout(5*time.Second))
	}
	nc, err := connect(tp.admin)
	if err != nil {
		t.Fatalf("admin refused: %v", err)
	}
	nc.Close()
	drain(tp.refusals)
	if nc, err := connect(tp.sites["site-1"]); err == nil {
		nc.Close()
		t.Fatal("a site certificate was admitted on the admin client listener")
	}
	select {
	case ref := <-tp.refusals:
		if !errors.Is(ref.Err, pki.ErrWrongKind) {
			t.Fatalf("refusal %v, want wrong kind", ref.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hub reported no refusal")
	}
}

func waitLine(t *testing.T, r *bufio.Reader, prefix string) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %s: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
}

func drain(c chan Refusal) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func drainSub(s *nats.Subscription) {
	for {
		if _, err := s.NextMsg(time.Millisecond); err != nil {
			return
		}
	}
}

func TestReachableFollowsTheLeafLink(t *testing.T) {
	tp := newTopology(t, "site-1", "site-2")
	leaf, nc := tp.joinedLeaf(t, "site-1")
	if _, err := nc.Subscribe(Inbox("site-1"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !tp.hub.Reachable("site-1") {
			return errors.New("site-1 not reachable after subscribing")
		}
		return nil
	})
	if tp.hub.Reachable("site-2") {
		t.Fatal("site-2 reachable without a leaf")
	}
	leaf.Shutdown()
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if tp.hub.Reachable("site-1") {
			return errors.New("site-1 still reachable after its leaf stopped")
		}
		return nil
	})
}

func TestStreamSubjectsCrossTheLeafLinkBothWays(t *testing.T) {
	tp := newTopology(t, "site-1", "site-2")
	_, nc1 := tp.joinedLeaf(t, "site-1")
	server, err := tp.hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	toServer, _ := server.SubscribeSync(StreamInbox("server"))
	toSite, _ := nc1.SubscribeSync(StreamInbox("site-1"))
	m := deliverUntilSeen(t, nc1, Stream("server", "site-1", "abc"), toServer)
	if to, from, id, ok := ParseStream(m.Subject); !ok || to != "server" || from != "site-1" || id != "abc" {
		t.Fatalf("parsed %q as %q %q %q %v", m.Subject, to, from, id, ok)
	}
	deliverUntilSeen(t, server, Stream("site-1", "server", "abc"), toSite)
	// site-1 cannot send stream data under site-2's name.
	drainSub(toServer)
	nc1.Publish(Stream("server", "site-2", "abc"), []byte("forged"))
	nc1.Publish(Stream("server", "site-1", "abc"), []byte("genuine"))
	if m, err := toServer.NextMsg(5 * time.Second); err != nil || string(m.Data) != "genuine" {
		t.Fatalf("got %v %v", m, err)
	}
}
