package bustest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// Topology is a hub in the test process admitting a server ("server", org
// "hearth"), an admin ("admin@hearth.org") and the named sites (orgs
// "org-0" and "org-1" in turn), each with a certificate from a fresh test
// project. Everything it starts stops when the test ends.
type Topology struct {
	Project *pkitest.Project
	Server  *pkitest.Participant
	Admin   *pkitest.Participant
	Sites   map[string]*pkitest.Participant
	// HubConfig is the configuration the hub started with.
	HubConfig bus.HubConfig
	Hub       *bus.Hub
	// Refusals receives the connections the hub refused; refusals that
	// find it full are dropped.
	Refusals chan bus.Refusal
}

// NewTopology starts the hub on free loopback ports (leaf and client
// listeners) with its JetStream store in a temporary folder.
func NewTopology(t testing.TB, sites ...string) *Topology {
	t.Helper()
	p := pkitest.New(t)
	tp := &Topology{Project: p, Sites: map[string]*pkitest.Participant{}, Refusals: make(chan bus.Refusal, 64)}
	tp.Server = p.Issue(t, "server", "hearth", pki.KindServer)
	tp.Admin = p.Issue(t, "admin@hearth.org", "hearth", pki.KindAdmin)
	ids := []pki.Identity{tp.Server.Identity, tp.Admin.Identity}
	for i, name := range sites {
		tp.Sites[name] = p.Issue(t, name, fmt.Sprintf("org-%d", i%2), pki.KindSite)
		ids = append(ids, tp.Sites[name].Identity)
	}
	tp.HubConfig = bus.HubConfig{
		Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: tp.Server.TLS(), Trust: p.Trust, Participants: ids,
		StoreDir: t.TempDir(), Logger: Logger(),
		OnRefusal: func(r bus.Refusal) {
			select {
			case tp.Refusals <- r:
			default:
			}
		},
	}
	hub, err := bus.StartHub(tp.HubConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Shutdown)
	tp.Hub = hub
	return tp
}

// StartLeaf starts a leaf node with part's certificate dialing the hub
// (every 50ms while the link is down), without waiting for the link.
func (tp *Topology) StartLeaf(t testing.TB, part *pkitest.Participant) *bus.Leaf {
	t.Helper()
	leaf, err := bus.StartLeaf(bus.LeafConfig{
		Name: part.Identity.Name, HubURLs: []string{"tls://" + tp.Hub.LeafAddr()}, LocalPort: -1,
		Certificate: part.TLS(), Trust: tp.Project.Trust, Logger: Logger(),
		ReconnectInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)
	return leaf
}

// JoinedLeaf starts the named site's leaf node and returns it with a
// connection on it once its link to the hub is up (within 10s).
func (tp *Topology) JoinedLeaf(t testing.TB, site string) (*bus.Leaf, *nats.Conn) {
	t.Helper()
	part, ok := tp.Sites[site]
	if !ok {
		t.Fatalf("no site %q in the topology", site)
	}
	leaf := tp.StartLeaf(t, part)
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

// HubConn is a connection for the server's own code on the hub.
func (tp *Topology) HubConn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// CutLeaf closes site's leaf link at the hub and waits (up to 5s) until
// the leaf noticed; the leaf dials again after its reconnect interval.
func (tp *Topology) CutLeaf(site string, leaf *bus.Leaf) error {
	lz, err := tp.Hub.Server().Leafz(&server.LeafzOptions{})
	if err != nil {
		return err
	}
	for _, l := range lz.Leafs {
		if l.Name == site {
			if err := tp.Hub.Server().DisconnectClientByID(l.ID); err != nil {
				return err
			}
			return Poll(5*time.Second, time.Millisecond, func() error {
				if leaf.HubConnected() {
					return fmt.Errorf("leaf %s still linked", site)
				}
				return nil
			})
		}
	}
	return fmt.Errorf("no leaf link of %s", site)
}

// LinkBytes counts the bytes a leaf link carried, as the hub counts them:
// In from the leaf to the hub, Out from the hub to the leaf.
type LinkBytes struct{ In, Out int64 }

// LeafBytes returns the bytes every leaf link carried so far, by the
// link's name (the site's), summed over the links of one name.
func (tp *Topology) LeafBytes() (map[string]LinkBytes, error) {
	lz, err := tp.Hub.Server().Leafz(&server.LeafzOptions{})
	if err != nil {
		return nil, err
	}
	bytes := map[string]LinkBytes{}
	for _, l := range lz.Leafs {
		b := bytes[l.Name]
		b.In += l.InBytes
		b.Out += l.OutBytes
		bytes[l.Name] = b
	}
	return bytes, nil
}
