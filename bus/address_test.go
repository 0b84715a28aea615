package bus_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/pki"
)

// TestSitesReachSitesOnlyWithEnvelopes: a site's envelope to another site
// (swarm learning) on the Peer subject is delivered, to be verified and
// admitted by the recipient's bridge; the same on the server's Direct
// subject, and anything it sends under another site's name, envelope or
// stream chunk, are not.
func TestSitesReachSitesOnlyWithEnvelopes(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	_, nc2 := tp.JoinedLeaf(t, "site-2")
	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	toServer, _ := server.SubscribeSync(bus.Inbox("server"))
	direct2, _ := nc2.SubscribeSync(bus.Inbox("site-2"))
	stream2, _ := nc2.SubscribeSync(bus.StreamInbox("site-2"))
	peer2, _ := nc2.SubscribeSync(bus.PeerInbox("site-2"))
	bustest.DeliverUntilSeen(t, nc1, bus.Peer("site-2", "site-1"), peer2)
	bustest.DeliverUntilSeen(t, server, bus.Direct("site-2", "server"), direct2)
	bustest.DeliverUntilSeen(t, server, bus.Stream("site-2", "server", "abc"), stream2)
	bustest.DeliverUntilSeen(t, nc1, bus.Direct("server", "site-1"), toServer)

	for _, subject := range []string{bus.Direct("site-2", "site-1"), bus.Peer("site-2", "site-3"), bus.Stream("site-2", "site-3", "abc")} {
		if err := nc1.Publish(subject, []byte("from a site")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc1.Publish(bus.Peer("site-2", "site-1"), []byte("an envelope from site-1")); err != nil {
		t.Fatal(err)
	}
	if m, err := peer2.NextMsg(5 * time.Second); err != nil || string(m.Data) != "an envelope from site-1" {
		t.Fatalf("site-2 got %v %v, want site-1's envelope on its peer subject", m, err)
	}
	// Behind the forged ones on the same link: once the server has this,
	// the hub has dealt with them.
	if err := nc1.Publish(bus.Direct("server", "site-1"), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m, err := toServer.NextMsg(5 * time.Second); err != nil || string(m.Data) != "after" {
		t.Fatalf("server got %v %v, want the site's message to it", m, err)
	}
	// And behind anything the hub forwarded to site-2, the server's own.
	server.Publish(bus.Direct("site-2", "server"), []byte("from the server"))
	server.Publish(bus.Stream("site-2", "server", "abc"), []byte("from the server"))
	for _, sub := range []*nats.Subscription{direct2, stream2} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != "from the server" {
			t.Fatalf("site-2 got %v %v first on %s, want only the server's message", m, err, sub.Subject)
		}
	}
}

// TestAdminsCannotAddressSites: an admin console publishing to a site's
// subjects is refused by the hub (a permissions violation reported to the
// console) and nothing reaches the site, while its messages to the server
// are delivered.
func TestAdminsCannotAddressSites(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	toServer, _ := server.SubscribeSync(bus.Inbox("server"))
	direct1, _ := nc1.SubscribeSync(bus.Inbox("site-1"))
	bustest.DeliverUntilSeen(t, server, bus.Direct("site-1", "server"), direct1)

	violations := make(chan error, 8)
	admin := tp.Admin.Identity.Name
	nc, err := nats.Connect("tls://"+tp.Hub.ClientAddr(),
		nats.Secure(&tls.Config{Certificates: []tls.Certificate{tp.Admin.TLS()}, RootCAs: tp.Project.Trust.Pool(), MinVersion: tls.VersionTLS13}),
		nats.NoReconnect(), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := bus.Direct("site-1", admin)
	nc.Publish(subject, []byte("from an admin"))
	nc.Publish(bus.Direct("server", admin), []byte("to the server"))
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), bus.Token(subject)) && !strings.Contains(err.Error(), subject) {
			t.Fatalf("console told %v, want a publish permissions violation on %s", err, subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hub did not refuse the admin's publish to a site")
	}
	if m, err := toServer.NextMsg(5 * time.Second); err != nil || string(m.Data) != "to the server" {
		t.Fatalf("server got %v %v, want the admin's message to it", m, err)
	}
	server.Publish(bus.Direct("site-1", "server"), []byte("from the server"))
	if m, err := direct1.NextMsg(5 * time.Second); err != nil || string(m.Data) != "from the server" {
		t.Fatalf("site-1 got %v %v first, want only the server's message", m, err)
	}
}

func TestPermissionsFollowWhoMayAddressWhom(t *testing.T) {
	srv := pki.Identity{Name: "server", Kind: pki.KindServer}
	s1 := pki.Identity{Name: "site-1", Kind: pki.KindSite}
	s2 := pki.Identity{Name: "site-2", Kind: pki.KindSite}
	adm := pki.Identity{Name: "a.b@x.org", Kind: pki.KindAdmin}
	agg := pki.Identity{Name: "agg-1", Kind: pki.KindAggregator}
	peers := []pki.Identity{srv, s1, s2, adm, agg}
	tests := []struct {
		name  string
		id    pki.Identity
		want  []string
		casts []string // whose casts it may hear, beyond its own subjects
	}{
		{"a site publishes to the server, and envelopes and casts only to sites and aggregation hosts", s1, []string{"hearth.msg.server.site-1", "hearth.stream.server.site-1.*",
			"hearth.peer.site-2.site-1", "hearth.stream.site-2.site-1.*", "hearth.peer.agg-1.site-1", "hearth.stream.agg-1.site-1.*",
			"hearth.cast.site-1.*"}, []string{"hearth.cast.site-2.*", "hearth.cast.agg-1.*"}},
		{"an admin publishes to the server only, and hears no casts", adm, []string{"hearth.msg.server.a~b@x~org", "hearth.stream.server.a~b@x~org.*"}, nil},
		{"an aggregation host publishes to the server, and envelopes and casts only to sites", agg, []string{"hearth.msg.server.agg-1", "hearth.stream.server.agg-1.*",
			"hearth.peer.site-1.agg-1", "hearth.stream.site-1.agg-1.*", "hearth.peer.site-2.agg-1", "hearth.stream.site-2.agg-1.*",
			"hearth.cast.agg-1.*"}, []string{"hearth.cast.site-1.*", "hearth.cast.site-2.*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := bus.Permissions(tt.id, peers)
			if got := strings.Join(p.Publish.Allow, " "); got != strings.Join(tt.want, " ") || len(p.Publish.Deny) != 0 {
				t.Errorf("publish allow %q deny %q, want allow %q", got, p.Publish.Deny, tt.want)
			}
			want := bus.Inbox(tt.id.Name) + " " + bus.StreamInbox(tt.id.Name)
			if tt.id.Kind == pki.KindSite || tt.id.Kind == pki.KindAggregator {
				want += " " + bus.PeerInbox(tt.id.Name)
			}
			for _, c := range tt.casts {
				want += " " + c
			}
			if got := strings.Join(p.Subscribe.Allow, " "); got != want {
				t.Errorf("subscribe %q, want %q", got, want)
			}
		})
	}
	// With no one to address, an empty allow list would allow everything.
	if p := bus.Permissions(adm, []pki.Identity{adm, s1, s2}); len(p.Publish.Allow) != 0 || strings.Join(p.Publish.Deny, " ") != ">" {
		t.Errorf("admin with no server among its peers: publish %+v, want everything denied", p.Publish)
	}
}

// TestCastsReachPeersOnlyFromTheirSender: a site's cast (one publish) is
// fanned out by the hub to every other site that subscribed to it: the hub
// sends the interest of the subscribers' leaves to the sender's leaf,
// which its publish permissions allow. A site publishing on another's cast
// subject is refused by the permissions and nothing reaches the others,
// and an admin console, which no site may address, is refused the
// subscription (a permissions violation reported to the console) and
// hears nothing.
func TestCastsReachPeersOnlyFromTheirSender(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2", "site-3")
	_, nc1 := tp.JoinedLeaf(t, "site-1")
	_, nc2 := tp.JoinedLeaf(t, "site-2")
	_, nc3 := tp.JoinedLeaf(t, "site-3")
	const id = "00112233445566778899aabbccddeeff"
	subject := bus.Cast("site-1", id)
	if from, got, ok := bus.ParseCast(subject); !ok || from != "site-1" || got != id {
		t.Fatalf("parsed %q as %q %q %v", subject, from, got, ok)
	}
	for _, bad := range []string{"hearth.cast.site-1", "hearth.cast..x", "hearth.cast.site-1.", "hearth.cast.site-1.a.b", bus.Stream("site-1", "site-2", id)} {
		if _, _, ok := bus.ParseCast(bad); ok {
			t.Errorf("ParseCast accepted %q", bad)
		}
	}

	violations := make(chan error, 8)
	admin, err := nats.Connect("tls://"+tp.Hub.ClientAddr(),
		nats.Secure(&tls.Config{Certificates: []tls.Certificate{tp.Admin.TLS()}, RootCAs: tp.Project.Trust.Pool(), MinVersion: tls.VersionTLS13}),
		nats.NoReconnect(), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	spy, _ := admin.SubscribeSync(subject)
	admin.Flush()

	server, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	hubSide, _ := server.SubscribeSync(subject)
	cast2, _ := nc2.SubscribeSync(subject)
	cast3, _ := nc3.SubscribeSync(subject)
	bustest.DeliverUntilSeen(t, nc1, subject, cast2)
	bustest.DeliverUntilSeen(t, nc1, subject, cast3)
	// Every "hello" for site-2 reached site-3, and every one reached the
	// hub's side: past them all.
	bustest.SyncPast(t, nc1, subject, cast3, hubSide)

	// site-2 casts under site-1's name: its leaf sends it nowhere (it
	// delivers it only to site-2's own processes, which share its trust),
	// so neither the hub nor site-3 hears it.
	if err := nc2.Publish(subject, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	nc2.Flush()
	if err := nc1.Publish(subject, []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	if m, err := cast3.NextMsg(5 * time.Second); err != nil || string(m.Data) != "genuine" {
		t.Fatalf("site-3 got %v %v first, want only site-1's cast", m, err)
	}
	if m, err := hubSide.NextMsg(5 * time.Second); err != nil || string(m.Data) != "genuine" {
		t.Fatalf("the hub got %v %v first, want only site-1's cast", m, err)
	}

	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Fatalf("console told %v, want a subscription permissions violation on %s", err, subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hub did not refuse the admin's subscription to a site's cast")
	}
	if m, err := spy.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("the admin heard site-1's cast %q", m.Data)
	}
}
