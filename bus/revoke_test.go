package bus_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// TestRevocationCutsLiveLinks: installing a newer CRL closes, within a
// second, the leaf link of the site and the client connection of the admin
// it revokes; their reconnects are refused; an unrevoked site stays linked
// and reachable.
func TestRevocationCutsLiveLinks(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	leaf1, nc1 := tp.JoinedLeaf(t, "site-1")
	leaf2, nc2 := tp.JoinedLeaf(t, "site-2")
	for name, nc := range map[string]*nats.Conn{"site-1": nc1, "site-2": nc2} {
		if _, err := nc.Subscribe(bus.Inbox(name), func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	bustest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, s := range []string{"site-1", "site-2"} {
			if !tp.Hub.Reachable(s) {
				return fmt.Errorf("%s not reachable yet", s)
			}
		}
		return nil
	})
	admin, err := nats.Connect("tls://"+tp.Hub.ClientAddr(),
		nats.Secure(&tls.Config{Certificates: []tls.Certificate{tp.Admin.TLS()}, RootCAs: tp.Project.Trust.Pool(), MinVersion: tls.VersionTLS13}),
		nats.NoReconnect(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	drain(tp.Refusals)

	start := time.Now()
	tp.Project.Revoke(t, 1, tp.Sites["site-1"], tp.Admin)
	bustest.CheckFor(t, time.Second, time.Millisecond, func() error {
		switch {
		case leaf1.HubConnected():
			return errors.New("revoked site-1 still has its leaf link")
		case tp.Hub.Reachable("site-1"):
			return errors.New("revoked site-1 still reachable")
		case !admin.IsClosed():
			return errors.New("revoked admin still connected")
		}
		return nil
	})
	cut := time.Since(start)

	// Each cut is reported, naming the certificate and why.
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case r := <-tp.Refusals:
			if errors.Is(r.Err, bus.ErrLinkRevoked) {
				if !errors.Is(r.Err, pki.ErrRevoked) || r.Reason() != "revoked" {
					t.Fatalf("cut reported as %v (%s), want a revoked certificate", r.Err, r.Reason())
				}
				seen[r.Listener+" "+r.Peer] = true
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("cuts reported: %v, want site-1's leaf and the admin's client", seen)
		}
	}
	if !seen["leaf site-1"] || !seen["client "+tp.Admin.Identity.Name] {
		t.Fatalf("cuts reported: %v, want site-1's leaf and the admin's client", seen)
	}

	// site-1 keeps dialling (every 50ms): each attempt is refused at TLS.
	select {
	case r := <-tp.Refusals:
		if r.Listener != "leaf" || r.Peer != "site-1" || !errors.Is(r.Err, pki.ErrRevoked) || errors.Is(r.Err, bus.ErrLinkRevoked) {
			t.Fatalf("refusal %+v, want site-1's reconnect refused as revoked", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("site-1 did not try to reconnect, or was not refused")
	}
	if leaf1.HubConnected() {
		t.Fatal("revoked site-1 linked again")
	}
	if !leaf2.HubConnected() || !tp.Hub.Reachable("site-2") || tp.Hub.NumLeafs() != 1 {
		t.Fatalf("unrevoked site-2: linked %v, reachable %v, hub has %d leaves", leaf2.HubConnected(), tp.Hub.Reachable("site-2"), tp.Hub.NumLeafs())
	}
	t.Logf("links of the revoked site and admin closed %v after the CRL was installed", cut.Round(time.Microsecond))
}

// TestRevocationCutsWebsocketLinks: a site linked over wss is cut like one
// on the leafnode listener.
func TestRevocationCutsWebsocketLinks(t *testing.T) {
	p := pkitest.New(t)
	server := p.Issue(t, "server", "hearth", pki.KindServer)
	site := p.Issue(t, "site-1", "org-a", pki.KindSite)
	refusals := make(chan bus.Refusal, 64)
	hub, err := bus.StartHub(bus.HubConfig{Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1, WebsocketPort: -1,
		Certificate: server.TLS(), Trust: p.Trust, StoreDir: t.TempDir(), Logger: bustest.Logger(),
		Participants: []pki.Identity{site.Identity},
		OnRefusal: func(r bus.Refusal) {
			select {
			case refusals <- r:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown()
	leaf, err := bus.StartLeaf(bus.LeafConfig{Name: "site-1", HubURLs: []string{"wss://" + hub.WebsocketAddr()},
		LocalPort: -1, Certificate: site.TLS(), Trust: p.Trust, Logger: bustest.Logger(), ReconnectInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaf.WaitHub(ctx); err != nil {
		t.Fatal(err)
	}
	p.Revoke(t, 1, site)
	bustest.CheckFor(t, time.Second, time.Millisecond, func() error {
		if leaf.HubConnected() || hub.NumLeafs() != 0 {
			return errors.New("revoked site-1 still linked over websocket")
		}
		return nil
	})
	for {
		select {
		case r := <-refusals:
			if errors.Is(r.Err, bus.ErrLinkRevoked) {
				if r.Listener != "websocket" || r.Peer != "site-1" {
					t.Fatalf("cut reported as %+v, want site-1 on the websocket listener", r)
				}
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the cut was not reported")
		}
	}
}
