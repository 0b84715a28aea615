package bus_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

func TestMessagesFlowBetweenLeavesAndServer(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	_, nc2 := tp.JoinedLeaf(t, "site-2")
	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	inbox1, _ := nc1.SubscribeSync(bus.Inbox("site-1"))
	inboxServer, _ := server.SubscribeSync(bus.Inbox("server"))

	// Sites reach only the server (TestSitesCannotAddressSites), which
	// reaches every site.
	m := bustest.DeliverUntilSeen(t, server, bus.Direct("site-1", "server"), inbox1)
	if to, from, ok := bus.ParseDirect(m.Subject); !ok || to != "site-1" || from != "server" {
		t.Fatalf("subject %q parsed as (%q, %q, %v)", m.Subject, to, from, ok)
	}
	bustest.DeliverUntilSeen(t, nc1, bus.Direct("server", "site-1"), inboxServer)
	bustest.DeliverUntilSeen(t, server, bus.Direct("site-2", "server"), func() *nats.Subscription {
		s, _ := nc2.SubscribeSync(bus.Inbox("site-2"))
		return s
	}())
	if tp.Hub.NumLeafs() != 2 {
		t.Fatalf("hub has %d leaves, want 2", tp.Hub.NumLeafs())
	}
}

func TestHubRefusesLeafCertificates(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	other := pkitest.New(t) // another project's CA
	revoked := tp.Sites["site-2"]
	tp.Project.Revoke(t, 1, revoked)

	cases := []struct {
		name string
		part *pkitest.Participant
		want error
	}{
		{"certificate from another CA", other.Issue(t, "site-1", "org-0", pki.KindSite), pki.ErrUnknownAuthority},
		{"expired certificate", tp.Project.Issue(t, "site-1", "org-0", pki.KindSite, pkitest.Expired()), pki.ErrExpired},
		{"revoked certificate", revoked, pki.ErrRevoked},
		{"admin certificate joining as a site", tp.Admin, pki.ErrWrongKind},
		{"server certificate joining as a site", tp.Server, pki.ErrWrongKind},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drain(tp.Refusals)
			leaf := tp.StartLeaf(t, tc.part)
			var got bus.Refusal
			select {
			case got = <-tp.Refusals:
			case <-time.After(10 * time.Second):
				t.Fatal("hub reported no refusal")
			}
			if got.Listener != "leaf" || !errors.Is(got.Err, tc.want) {
				t.Fatalf("refusal %+v, want listener leaf and %v", got, tc.want)
			}
			if !strings.Contains(got.Err.Error(), tc.part.Identity.Name) {
				t.Fatalf("refusal %q does not name the certificate %q", got.Err, tc.part.Identity.Name)
			}
			if leaf.HubConnected() || tp.Hub.NumLeafs() != 0 {
				t.Fatalf("refused leaf is connected (hub has %d leaves)", tp.Hub.NumLeafs())
			}
		})
	}
}

func TestLeafRefusesHubFromAnotherProject(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1")
	other := pkitest.New(t)
	// A hub with a certificate from another CA, on another port.
	fake := other.Issue(t, "server", "hearth", pki.KindServer)
	fakeHub, err := bus.StartHub(bus.HubConfig{
		Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: fake.TLS(), Trust: other.Trust, StoreDir: t.TempDir(), Logger: bustest.Logger(),
		Participants: []pki.Identity{tp.Sites["site-1"].Identity},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fakeHub.Shutdown()
	refused := make(chan bus.Refusal, 8)
	leaf, err := bus.StartLeaf(bus.LeafConfig{
		Name: "site-1", HubURLs: []string{"tls://" + fakeHub.LeafAddr()}, LocalPort: -1,
		Certificate: tp.Sites["site-1"].TLS(), Trust: tp.Project.Trust, Logger: bustest.Logger(),
		OnRefusal: func(r bus.Refusal) { refused <- r },
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
	tp := bustest.NewTopology(t, "site-1", "site-2", "site-3")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	_, nc2 := tp.JoinedLeaf(t, "site-2")
	_, nc3 := tp.JoinedLeaf(t, "site-3")
	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	inbox, _ := server.SubscribeSync(bus.Inbox("server"))
	bustest.DeliverUntilSeen(t, nc2, bus.Direct("server", "site-2"), inbox)

	// site-1 claims to be site-2 on the subject: its own leaf drops it (the
	// hub told the leaf its permissions), so only the genuine one arrives.
	if err := nc1.Publish(bus.Direct("server", "site-2"), []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if err := nc1.Publish(bus.Direct("server", "site-1"), []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	m, err := inbox.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "genuine" {
		t.Fatalf("got %v %v, want only the genuine message", m, err)
	}

	// site-1 subscribes to site-3's inbox: it receives nothing of site-3's.
	spy, _ := nc1.SubscribeSync(bus.Inbox("site-3"))
	nc1.Flush()
	inbox3, _ := nc3.SubscribeSync(bus.Inbox("site-3"))
	bustest.DeliverUntilSeen(t, server, bus.Direct("site-3", "server"), inbox3)
	if m, err := spy.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("site-1 read site-3's message %q", m.Subject)
	}
}

// TestHubRefusesRogueLeafPublish speaks the leafnode protocol by hand, as a
// modified site would, ignoring the permissions the hub announced: the hub
// itself must refuse the publish and close the link.
func TestHubRefusesRogueLeafPublish(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	inbox, _ := server.SubscribeSync(bus.Inbox("server"))
	server.Flush()

	conn, err := net.Dial("tcp", tp.Hub.LeafAddr())
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
		Certificates: []tls.Certificate{tp.Sites["site-1"].TLS()},
		RootCAs:      tp.Project.Trust.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13,
	})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r = bufio.NewReader(tc)
	fmt.Fprintf(tc, "CONNECT {\"tls_required\":true,\"name\":\"rogue\",\"headers\":true,\"proto\":1}\r\nPING\r\n")
	waitLine(t, r, "PONG")
	subject := bus.Direct("server", "site-2")
	fmt.Fprintf(tc, "LMSG %s 6\r\nforged\r\n", subject)
	line := waitLine(t, r, "-ERR")
	if !strings.Contains(line, "Permissions Violation for Publish") || !strings.Contains(line, subject) {
		t.Fatalf("hub answered %q", line)
	}
	select {
	case ref := <-tp.Refusals:
		if !errors.Is(ref.Err, bus.ErrPermission) {
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
	tp := bustest.NewTopology(t, "site-1")
	connect := func(p *pkitest.Participant) (*nats.Conn, error) {
		cert := p.TLS()
		return nats.Connect("tls://"+tp.Hub.ClientAddr(),
			nats.Secure(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: tp.Project.Trust.Pool(), MinVersion: tls.VersionTLS13}),
			nats.NoReconnect(), nats.Timeout(5*time.Second))
	}
	nc, err := connect(tp.Admin)
	if err != nil {
		t.Fatalf("admin refused: %v", err)
	}
	nc.Close()
	drain(tp.Refusals)
	if nc, err := connect(tp.Sites["site-1"]); err == nil {
		nc.Close()
		t.Fatal("a site certificate was admitted on the admin client listener")
	}
	select {
	case ref := <-tp.Refusals:
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

func drain(c chan bus.Refusal) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func TestReachableFollowsTheLeafLink(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	leaf, nc := tp.JoinedLeaf(t, "site-1")
	if _, err := nc.Subscribe(bus.Inbox("site-1"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !tp.Hub.Reachable("site-1") {
			return errors.New("site-1 not reachable after subscribing")
		}
		return nil
	})
	if tp.Hub.Reachable("site-2") {
		t.Fatal("site-2 reachable without a leaf")
	}
	leaf.Shutdown()
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if tp.Hub.Reachable("site-1") {
			return errors.New("site-1 still reachable after its leaf stopped")
		}
		return nil
	})
}

func TestStreamSubjectsCrossTheLeafLinkBothWays(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	toServer, _ := server.SubscribeSync(bus.StreamInbox("server"))
	toSite, _ := nc1.SubscribeSync(bus.StreamInbox("site-1"))
	m := bustest.DeliverUntilSeen(t, nc1, bus.Stream("server", "site-1", "abc"), toServer)
	if to, from, id, ok := bus.ParseStream(m.Subject); !ok || to != "server" || from != "site-1" || id != "abc" {
		t.Fatalf("parsed %q as %q %q %q %v", m.Subject, to, from, id, ok)
	}
	bustest.DeliverUntilSeen(t, server, bus.Stream("site-1", "server", "abc"), toSite)
	// site-1 cannot send stream data under site-2's name.
	nc1.Publish(bus.Stream("server", "site-2", "abc"), []byte("forged"))
	nc1.Publish(bus.Stream("server", "site-1", "abc"), []byte("genuine"))
	if m, err := toServer.NextMsg(5 * time.Second); err != nil || string(m.Data) != "genuine" {
		t.Fatalf("got %v %v", m, err)
	}
}
