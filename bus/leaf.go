package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus/pki"
)

// LeafConfig configures a site's embedded nats-server: a leaf node that
// dials out to the hub (sites need no inbound port) and serves site-local
// processes on loopback only.
type LeafConfig struct {
	Name      string   // site participant name
	HubURLs   []string // tls://host:port or wss://host:port, tried in turn
	LocalPort int      // loopback listener for site-local processes; -1 picks a free port

	Certificate tls.Certificate
	Trust       *pki.Trust

	// Proxy is an HTTP CONNECT proxy URL for reaching the hub ("" = direct).
	Proxy string
	// ReconnectInterval is the base delay between attempts to reach the hub;
	// nats-server adds a random jitter of up to the same again. Default 1s.
	ReconnectInterval time.Duration

	Logger    *slog.Logger
	OnRefusal func(Refusal)
	Now       func() time.Time
}

// Validate checks the configuration.
func (c *LeafConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("leaf: name is required"))
	}
	if len(c.HubURLs) == 0 {
		errs = append(errs, errors.New("leaf: at least one hub URL is required"))
	}
	for _, u := range c.HubURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "tls" && p.Scheme != "wss") || p.Host == "" {
			errs = append(errs, fmt.Errorf("leaf: hub URL %q: want tls://host:port or wss://host:port", u))
		}
	}
	if c.Proxy != "" {
		if p, err := url.Parse(c.Proxy); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("leaf: proxy %q: want http://host:port", c.Proxy))
		}
	}
	if c.Trust == nil {
		errs = append(errs, errors.New("leaf: trust is required"))
	}
	if len(c.Certificate.Certificate) == 0 {
		errs = append(errs, errors.New("leaf: certificate is required"))
	}
	return errors.Join(errs...)
}

// Leaf is a site's embedded nats-server, a leaf node of the hub.
type Leaf struct {
	*embedded
}

// StartLeaf starts the leaf node. It returns once the local server accepts
// connections; the link to the hub comes up in the background (WaitHub).
func StartLeaf(cfg LeafConfig) (*Leaf, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log, now := withDefaults(cfg.Logger, cfg.Now)
	report := reporter(log, cfg.OnRefusal)
	reconnect := cfg.ReconnectInterval
	if reconnect <= 0 {
		reconnect = time.Second
	}
	var urls []*url.URL
	for _, u := range cfg.HubURLs {
		p, _ := url.Parse(u)
		urls = append(urls, p)
	}
	remote := &server.RemoteLeafOpts{
		URLs:       urls,
		TLS:        true,
		TLSTimeout: 5,
		TLSConfig:  clientTLS(cfg.Certificate, cfg.Trust, now, report, "hub", pki.KindServer),
		// Model data does not compress; compression costs throughput.
		Compression: server.CompressionOpts{Mode: server.CompressionOff},
	}
	if cfg.Proxy != "" {
		remote.Proxy.URL = cfg.Proxy
		remote.Proxy.Timeout = 10 * time.Second
	}

	e, err := newEmbedded("leaf")
	if err != nil {
		return nil, err
	}
	l := &Leaf{embedded: e}
	cert, err := x509.ParseCertificate(cfg.Certificate.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("leaf: own certificate: %w", err)
	}
	self, err := pki.IdentityOf(cert)
	if err != nil {
		return nil, fmt.Errorf("leaf: own certificate: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       "127.0.0.1", // site-local processes only
		Port:       cfg.LocalPort,
		NoSigs:     true,
		MaxPayload: MaxPayload,
		MaxPending: MaxPending,
		Nkeys:      []*server.NkeyUser{e.internal.user()},
		Users: []*server.User{
			// Site-local processes present the site's own certificate.
			{Username: natsUser(self)},
		},
		TLS:        true,
		TLSVerify:  true,
		TLSMap:     true,
		TLSTimeout: 5,
		TLSConfig: serverTLS(cfg.Certificate, func(cs tls.ConnectionState) error {
			if err := peerVerifier("local", cfg.Trust, now, report, pki.KindSite, pki.KindAggregator)(cs); err != nil {
				return err
			}
			if cn := cs.PeerCertificates[0].Subject.CommonName; cn != cfg.Name {
				err := fmt.Errorf("local listener: certificate of %q presented at site %q: only the site's own certificate may connect", cn, cfg.Name)
				report(Refusal{Listener: "local", Peer: cn, Err: err})
				return err
			}
			return nil
		}),
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: reconnect,
			Remotes:           []*server.RemoteLeafOpts{remote},
			Compression:       server.CompressionOpts{Mode: server.CompressionOff},
		},
	}
	if err := e.start(opts, log, report); err != nil {
		return nil, err
	}
	return l, nil
}

// Connect opens an in-process connection for the site's own actors.
func (l *Leaf) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return l.connect("hearth-site-actors", opts...)
}

// HubConnected reports whether the link to the hub is up.
func (l *Leaf) HubConnected() bool { return l.srv.NumLeafNodes() > 0 }

// WaitHub waits until the link to the hub is up.
func (l *Leaf) WaitHub(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !l.HubConnected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("leaf: hub not reached: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// LocalAddr is the loopback listener's host:port.
func (l *Leaf) LocalAddr() string { return l.srv.Addr().String() }

// Shutdown stops the leaf node and waits for it.
func (l *Leaf) Shutdown() { l.shutdown() }
