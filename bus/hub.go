package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus/pki"
)

// MaxPayload is the largest NATS message on every Hearth link. Hub and
// leaves must agree: a leaf with a smaller limit than the hub drops the whole
// leaf connection on an oversized message.
const MaxPayload = 4 << 20

// MaxPending is how many bytes a connection may have queued before
// nats-server cuts it off as a slow consumer: room for the windows of the
// model streams a leaf link carries (bus/stream), above nats-server's
// 64 MiB default.
const MaxPending = 256 << 20

// MaxEnvelope is the largest envelope a verifier accepts. Models up to 1 MiB
// travel inline in one envelope; larger ones in chunked streams (bus/stream)
// whose signed manifest is itself an envelope.
const MaxEnvelope = MaxPayload - 64<<10

// HubConfig configures the server's embedded nats-server.
type HubConfig struct {
	Name          string // server participant name
	Host          string // listen address for every listener, e.g. "0.0.0.0" or "127.0.0.1"
	LeafPort      int    // mTLS leafnode listener for sites and aggregators; -1 picks a free port
	ClientPort    int    // mTLS client listener for admin consoles; -1 picks a free port
	WebsocketPort int    // wss leafnode listener; 0 = off, -1 picks a free port

	Certificate  tls.Certificate
	Trust        *pki.Trust
	Participants []pki.Identity // every participant the hub admits, with its permissions
	StoreDir     string         // JetStream storage

	Logger    *slog.Logger
	OnRefusal func(Refusal) // optional: called for every refused connection or violation
	Now       func() time.Time
}

// Validate checks the configuration.
func (c *HubConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("hub: name is required"))
	}
	if c.Trust == nil {
		errs = append(errs, errors.New("hub: trust is required"))
	}
	if len(c.Certificate.Certificate) == 0 {
		errs = append(errs, errors.New("hub: certificate is required"))
	}
	if c.StoreDir == "" {
		errs = append(errs, errors.New("hub: JetStream store dir is required"))
	}
	if c.LeafPort == 0 || c.ClientPort == 0 {
		errs = append(errs, errors.New("hub: leaf and client ports are required"))
	}
	seen := map[string]bool{}
	for _, p := range c.Participants {
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hub: %w", err))
		}
		if seen[p.Name] {
			errs = append(errs, fmt.Errorf("hub: participant %q listed twice", p.Name))
		}
		seen[p.Name] = true
	}
	return errors.Join(errs...)
}

// Hub is the server's embedded nats-server: the hub of the leaf-node
// topology, with JetStream for durable state.
//
// When a newer revocation list is installed in HubConfig.Trust
// (pki.Trust.SetCRL), the hub closes at once every live leaf and client
// connection whose certificate the list revokes, reporting each through
// HubConfig.OnRefusal with ErrLinkRevoked; the TLS check then refuses the
// certificate's reconnects. Reachable turns false for such a site as soon
// as its link is gone.
type Hub struct {
	*embedded
	revoker *revoker
	name    string // the server's participant name
}

// StartHub starts the hub and waits until it accepts connections.
func StartHub(cfg HubConfig) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log, now := withDefaults(cfg.Logger, cfg.Now)
	report := reporter(log, cfg.OnRefusal)
	e, err := newEmbedded("hub")
	if err != nil {
		return nil, err
	}
	h := &Hub{embedded: e, name: cfg.Name}

	peers := append([]pki.Identity{{Name: cfg.Name, Kind: pki.KindServer}}, cfg.Participants...)
	var users []*server.User
	for _, p := range cfg.Participants {
		if p.Kind == pki.KindServer {
			continue // the server's actors connect in process as internalUser
		}
		users = append(users, &server.User{Username: natsUser(p), Permissions: Permissions(p, peers)})
	}

	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.ClientPort,
		NoSigs:     true,
		MaxPayload: MaxPayload,
		MaxPending: MaxPending,
		Users:      users,
		Nkeys:      []*server.NkeyUser{e.internal.user()},
		// Client listener: admin consoles, mTLS, certificate mapped to user.
		TLS:        true,
		TLSVerify:  true,
		TLSMap:     true,
		TLSTimeout: 5,
		TLSConfig:  serverTLS(cfg.Certificate, peerVerifier("client", cfg.Trust, now, report, pki.KindAdmin)),
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		LeafNode: server.LeafNodeOpts{
			Host:       cfg.Host,
			Port:       cfg.LeafPort,
			TLSMap:     true,
			TLSTimeout: 5,
			TLSConfig:  serverTLS(cfg.Certificate, peerVerifier("leaf", cfg.Trust, now, report, pki.KindSite, pki.KindAggregator)),
			// Model data does not compress; compression costs throughput.
			Compression: server.CompressionOpts{Mode: server.CompressionOff},
		},
	}
	if cfg.WebsocketPort != 0 {
		opts.Websocket = server.WebsocketOpts{
			Host:       cfg.Host,
			Port:       cfg.WebsocketPort,
			TLSMap:     true,
			TLSConfig:  serverTLS(cfg.Certificate, peerVerifier("websocket", cfg.Trust, now, report, pki.KindSite, pki.KindAggregator)),
			NoAuthUser: "",
		}
	}
	if err := e.start(opts, log, report); err != nil {
		return nil, err
	}
	h.revoker = &revoker{srv: e.srv, trust: cfg.Trust, now: now, report: report, done: make(chan struct{})}
	h.revoker.wg.Add(1)
	go h.revoker.watch()
	return h, nil
}

// Connect opens an in-process connection for the server's own actors.
func (h *Hub) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return h.connect("hearth-server-actors", opts...)
}

// LeafAddr is the leafnode listener's host:port.
func (h *Hub) LeafAddr() string { return hostPort(h.opts.LeafNode.Host, h.opts.LeafNode.Port) }

// ClientAddr is the admin client listener's host:port.
func (h *Hub) ClientAddr() string {
	return hostPort(h.opts.Host, h.srv.Addr().(*net.TCPAddr).Port)
}

// WebsocketAddr is the websocket listener's host:port ("" when off).
func (h *Hub) WebsocketAddr() string {
	if h.opts.Websocket.Port == 0 {
		return ""
	}
	return hostPort(h.opts.Websocket.Host, h.opts.Websocket.Port)
}

// hostPort joins a listen host and port into a dialable address.
func hostPort(host string, port int) string {
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Reachable reports whether anyone listens for the server's messages to
// participant name: for a site, whether its leaf node is connected with its
// inbox subscribed (only the site's own certificate may subscribe to it).
// The hub's own interest table answers, so it costs no network round trip.
func (h *Hub) Reachable(name string) bool {
	return h.srv.GlobalAccount().Interest(Direct(name, h.name)) > 0
}

// NumLeafs is the number of connected leaf nodes.
func (h *Hub) NumLeafs() int { return h.srv.NumLeafNodes() }

// Server exposes the embedded server for JetStream and monitoring.
func (h *Hub) Server() *server.Server { return h.srv }

// Shutdown stops the hub and waits for it.
func (h *Hub) Shutdown() {
	h.revoker.stop()
	h.shutdown()
}
