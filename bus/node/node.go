// Package node assembles one participant's presence on the bus from its
// verified startup kit: the project trust (with the kit's revocation list,
// reloaded when it changes), the envelope signer and verifier, the embedded
// NATS server (hub for the server, leaf for a site) or a client connection
// (admin), the actor system and the bridge. Commands and tests start
// participants only through here, so they run the same code paths.
//
// The bus knows no learning: the table of message types a node decodes,
// and who may send each, is handed in (Options.Protocol; Hearth's is
// actors/protocol.Table).
//
// A server or site refuses to start from a kit that went back on what it
// remembers in its state/ folder: a root other than the pinned one
// (Options.RootFingerprint, or the one recorded at first start) and a
// revocation list older than the newest it installed. Refused connections
// and envelopes are counted by the node's Refusals, which hands bounded
// records to the audit log once one is attached (AuditRefusals).
package node

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/stream"
)

// Protocol is the table of cross-process messages a node decodes and who
// may send each. Envelopes of a type not listed for their sender's kind
// are refused before their body is decoded.
type Protocol interface {
	// Registry decodes exactly the message types on the bus.
	Registry() *envelope.Registry
	// AllowFor lists, per sender kind, the message types that a sender of
	// that kind may send to a participant of kind self.
	AllowFor(self pki.Kind) envelope.AllowList
}

// Options tune a node. Protocol is required; the other fields' zero
// values are ready to use.
type Options struct {
	// Protocol is the message table (see Protocol). A node without one
	// does not start.
	Protocol Protocol
	Logger   *slog.Logger
	// ListenHost is where the hub listens (server only); default "0.0.0.0".
	ListenHost string
	// OnRefusal sees connections the hub or leaf refused.
	OnRefusal func(bus.Refusal)
	// OnRefusedEnvelope sees envelopes the bridge refused.
	OnRefusedEnvelope func(subject string, err error)
	// CRLPoll is how often the kit's crl.pem is checked for a newer list
	// (default 2s; negative: never).
	CRLPoll time.Duration
	// RootFingerprint, when not zero, is the project root the operator
	// expects (servers and sites): a kit with another root is refused.
	// When zero, the root recorded at first start is expected.
	RootFingerprint kit.Fingerprint
	// Refusals tunes the counting of refusals for the audit log.
	Refusals RefusalsConfig
}

// Node is a running participant.
type Node struct {
	Kit      *kit.Kit
	Identity pki.Identity
	Trust    *pki.Trust
	Signer   *envelope.Signer
	Verifier *envelope.Verifier
	Conn     *nats.Conn // the bridge's: signed envelopes (and the server's JetStream)
	System   *actor.ActorSystem
	Bridge   *bridge.Bridge
	Streams  *stream.Manager // chunked transfers of large payloads
	Hub      *bus.Hub        // server only
	Leaf     *bus.Leaf       // sites and aggregators only
	// Refusals counts the connections and envelopes this node refused;
	// see AuditRefusals.
	Refusals *Refusals
	// SealKey is this process's X25519 key: the bridge opens bodies sealed
	// to its public half, which the participant binds to its certificate
	// for each swarm job. It lives in memory only; a restarted process
	// makes a new one and binds it again.
	SealKey *ecdh.PrivateKey
	admit   atomic.Pointer[func(sender pki.Identity, messageType, jobID string) error]

	// bulk is the stream manager's own in-process connection (server and
	// sites), so that envelopes, liveness pings and JetStream requests
	// never queue behind megabytes of model chunks.
	bulk *nats.Conn

	log       *slog.Logger
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// peers are the participants that may address this one, each of which
// the bridge hears on a queue of its own: for the server everyone it
// admits, for anyone else the server (a site hears other sites, in swarm
// learning, on its Peer subscription).
func peers(k *kit.Kit) []string {
	if k.Config.Kind != pki.KindServer {
		return []string{k.Config.Server.Name}
	}
	var out []string
	for _, p := range k.Participants {
		if p.Name != k.Config.Name && pki.MayAddress(p.Kind, pki.KindServer) {
			out = append(out, p.Name)
		}
	}
	return out
}

// SetAdmit sets the rule the bridge admits site-to-site envelopes by (the
// participant's, bridge.Config.Admit); until it is set none is admitted.
func (n *Node) SetAdmit(admit func(sender pki.Identity, messageType, jobID string) error) {
	n.admit.Store(&admit)
}

func (n *Node) admitted(sender pki.Identity, messageType, jobID string) error {
	a := n.admit.Load()
	if a == nil {
		return errors.New("this participant takes part in no swarm job")
	}
	return (*a)(sender, messageType, jobID)
}

// StartServer starts the hub from a server kit and connects the server's
// bridge to it in process.
func StartServer(ctx context.Context, k *kit.Kit, o Options) (*Node, error) {
	if k.Config.Kind != pki.KindServer {
		return nil, fmt.Errorf("kit %s is a %s kit, not a server kit", k.Dir, k.Config.Kind)
	}
	if err := o.validate(k); err != nil {
		return nil, err
	}
	if err := checkState(k, o); err != nil {
		return nil, err
	}
	n, err := prepare(k, o)
	if err != nil {
		return nil, err
	}
	state, err := k.StateDir()
	if err != nil {
		return nil, err
	}
	host := o.ListenHost
	if host == "" {
		host = "0.0.0.0"
	}
	n.Hub, err = bus.StartHub(bus.HubConfig{
		Name: k.Config.Name, Host: host,
		LeafPort: k.Config.Server.LeafPort, ClientPort: k.Config.Server.ClientPort, WebsocketPort: k.Config.Server.WebsocketPort,
		Certificate: k.TLSCertificate(), Trust: n.Trust, Participants: k.Participants,
		StoreDir: filepath.Join(state, "jetstream"), Logger: n.log, OnRefusal: n.onRefusal(o),
	})
	if err != nil {
		return nil, err
	}
	if n.Conn, err = n.Hub.Connect(); err != nil {
		n.Hub.Shutdown()
		return nil, err
	}
	if n.bulk, err = n.Hub.Connect(nats.Name("hearth-server-streams")); err != nil {
		n.Conn.Close()
		n.Hub.Shutdown()
		return nil, err
	}
	return n.finish(ctx, o)
}

// StartSite starts a site's (or aggregator's) leaf node and bridge. The link
// to the hub comes up in the background; see WaitHub.
func StartSite(ctx context.Context, k *kit.Kit, o Options) (*Node, error) {
	if k.Config.Kind != pki.KindSite && k.Config.Kind != pki.KindAggregator {
		return nil, fmt.Errorf("kit %s is a %s kit: only site and aggregator kits run a leaf node", k.Dir, k.Config.Kind)
	}
	if err := o.validate(k); err != nil {
		return nil, err
	}
	if err := checkState(k, o); err != nil {
		return nil, err
	}
	n, err := prepare(k, o)
	if err != nil {
		return nil, err
	}
	lc := kit.LeafConfig{}
	if k.Config.Leaf != nil {
		lc = *k.Config.Leaf
	}
	local := lc.LocalPort
	if local == 0 {
		local = -1
	}
	n.Leaf, err = bus.StartLeaf(bus.LeafConfig{
		Name: k.Config.Name, HubURLs: k.Config.LeafURLs(), LocalPort: local,
		Certificate: k.TLSCertificate(), Trust: n.Trust, Proxy: lc.Proxy,
		Logger: n.log, OnRefusal: n.onRefusal(o),
	})
	if err != nil {
		return nil, err
	}
	if n.Conn, err = n.Leaf.Connect(); err != nil {
		n.Leaf.Shutdown()
		return nil, err
	}
	if n.bulk, err = n.Leaf.Connect(nats.Name(k.Config.Name + "-streams")); err != nil {
		n.Conn.Close()
		n.Leaf.Shutdown()
		return nil, err
	}
	return n.finish(ctx, o)
}

// StartAdmin connects an admin console to the hub's client listener.
func StartAdmin(ctx context.Context, k *kit.Kit, o Options) (*Node, error) {
	if k.Config.Kind != pki.KindAdmin {
		return nil, fmt.Errorf("kit %s is a %s kit, not an admin kit", k.Dir, k.Config.Kind)
	}
	if err := o.validate(k); err != nil {
		return nil, err
	}
	n, err := prepare(k, o)
	if err != nil {
		return nil, err
	}
	cert := k.TLSCertificate()
	n.Conn, err = nats.Connect(joinURLs(k.Config.ClientURLs()),
		nats.Secure(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: n.Trust.Pool()}),
		nats.Name(k.Config.Name), nats.Timeout(10*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("admin %s: connect to %v: %w", k.Config.Name, k.Config.ClientURLs(), err)
	}
	return n.finish(ctx, o)
}

// validate refuses options a node cannot start with, before anything is
// written to the kit's state.
func (o Options) validate(k *kit.Kit) error {
	if o.Protocol == nil {
		return fmt.Errorf("node %s: no protocol table (Options.Protocol)", k.Config.Name)
	}
	return nil
}

func prepare(k *kit.Kit, o Options) (*Node, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	trust, err := k.Trust()
	if err != nil {
		return nil, err
	}
	signer, err := envelope.NewSigner(k.Cert, k.Key)
	if err != nil {
		return nil, err
	}
	verifier, err := envelope.NewVerifier(envelope.Config{
		Self: k.Config.Name, Trust: trust, Registry: o.Protocol.Registry(), Allow: o.Protocol.AllowFor(k.Config.Kind),
		MaxSize: bus.MaxEnvelope, Started: time.Now(),
	})
	if err != nil {
		return nil, err
	}
	sealKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return &Node{Kit: k, Identity: k.Config.Identity(), Trust: trust, Signer: signer, Verifier: verifier, SealKey: sealKey,
		Refusals: NewRefusals(o.Refusals), log: log.With("participant", k.Config.Name)}, nil
}

// checkState refuses a kit whose root is not the pinned one or whose
// revocation list is older than one installed before, and records the
// root at first start.
func checkState(k *kit.Kit, o Options) error {
	recorded, err := k.PinRoot(o.RootFingerprint)
	if err != nil {
		return err
	}
	if recorded && o.Logger != nil {
		o.Logger.Info("project root recorded at first start; later starts refuse another root",
			"participant", k.Config.Name, "root_fingerprint", k.RootFingerprint().String(),
			"file", filepath.Join(k.Dir, kit.StateDirName, kit.RootPinFile))
	}
	return k.CheckCRLNumber()
}

// onRefusal counts a refused connection and passes it on to o.OnRefusal.
func (n *Node) onRefusal(o Options) func(bus.Refusal) {
	return func(r bus.Refusal) {
		n.Refusals.NoteConnection(r)
		if o.OnRefusal != nil {
			o.OnRefusal(r)
		}
	}
}

// onRefusedEnvelope counts a refused envelope and passes it on to
// o.OnRefusedEnvelope.
func (n *Node) onRefusedEnvelope(o Options) func(string, error) {
	return func(subject string, err error) {
		n.Refusals.NoteEnvelope(subject, err)
		if o.OnRefusedEnvelope != nil {
			o.OnRefusedEnvelope(subject, err)
		}
	}
}

// AuditRefusals makes the node hand its refusal records to sink (the
// participant's audit log) from now on, the ones counted before included.
// The returned function hands over what is still pending and detaches the
// sink: call it before the sink closes.
func (n *Node) AuditRefusals(sink func(RefusalRecord) error) (detach func() error) {
	n.Refusals.SetSink(sink)
	return func() error {
		err := n.Refusals.Flush(true)
		n.Refusals.SetSink(nil)
		return err
	}
}

func (n *Node) finish(ctx context.Context, o Options) (*Node, error) {
	actorLog := n.log.With("component", "actor")
	n.System = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLog }))
	var err error
	n.Bridge, err = bridge.Start(bridge.Config{
		Conn: n.Conn, Signer: n.Signer, Verifier: n.Verifier, System: n.System,
		Logger: n.log.With("component", "bridge"), OnRefused: n.onRefusedEnvelope(o), Peers: peers(n.Kit),
		SealKey: n.SealKey, Admit: n.admitted, Server: n.Kit.Config.Server.Name,
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	bulk := n.bulk
	if bulk == nil { // an admin console: one connection
		bulk = n.Conn
	}
	// A window of 32 chunks (1 MiB each) and 64 MiB in flight to this
	// process, all streams together: hearth bench found no round faster
	// with more (64 and 128 MiB), and the heap holds what is in flight.
	if n.Streams, err = stream.NewManager(stream.Config{Conn: bulk, Self: n.Identity.Name, Window: 32, ReceiveBudget: 64 << 20,
		Logger: n.log.With("component", "stream")}); err != nil {
		n.Close()
		return nil, err
	}
	ctx, n.cancel = context.WithCancel(ctx)
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.watchCRL(ctx, o.CRLPoll)
	}()
	go func() {
		defer n.wg.Done()
		n.Refusals.Run(ctx, func(err error) { n.log.Error("refusals not audited", "err", err) })
	}()
	return n, nil
}

// WaitHub waits until a site's link to the hub is up (at once for others).
func (n *Node) WaitHub(ctx context.Context) error {
	if n.Leaf == nil {
		return nil
	}
	return n.Leaf.WaitHub(ctx)
}

// Log is the node's logger.
func (n *Node) Log() *slog.Logger { return n.log }

// Close stops the bridge, the actor system and the NATS server or
// connection. Calls after the first do nothing.
func (n *Node) Close() { n.closeOnce.Do(n.close) }

func (n *Node) close() {
	if n.cancel != nil {
		n.cancel()
		n.wg.Wait()
	}
	if n.Streams != nil {
		n.Streams.Close()
	}
	if n.Bridge != nil {
		n.Bridge.Close()
	}
	if n.System != nil {
		n.System.Shutdown()
	}
	for _, nc := range []*nats.Conn{n.bulk, n.Conn} {
		if nc != nil {
			_ = nc.Drain()
			nc.Close()
		}
	}
	if n.Hub != nil {
		n.Hub.Shutdown()
	}
	if n.Leaf != nil {
		n.Leaf.Shutdown()
	}
}

// watchCRL installs a newer revocation list as soon as one appears in the
// kit (hearth cert revoke writes it), so revoked certificates are refused
// by this process's verifiers without a restart.
func (n *Node) watchCRL(ctx context.Context, every time.Duration) {
	if every == 0 {
		every = 2 * time.Second
	}
	if every < 0 {
		return
	}
	var last time.Time
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(n.Kit.CRLPath())
		if err != nil || !fi.ModTime().After(last) {
			continue
		}
		last = fi.ModTime()
		if err := n.reloadCRL(); err != nil {
			n.log.Error("revocation list not installed", "file", n.Kit.CRLPath(), "err", err)
		}
	}
}

func (n *Node) reloadCRL() error {
	data, err := os.ReadFile(n.Kit.CRLPath())
	if err != nil {
		return err
	}
	der, err := pki.DecodeCRL(data)
	if err != nil {
		return err
	}
	before := n.Trust.CRLNumber()
	if err := n.Trust.SetCRL(der); err != nil && !errors.Is(err, pki.ErrStaleCRL) {
		return err
	}
	if after := n.Trust.CRLNumber(); after != before {
		n.log.Info("revocation list installed", "number", after)
	}
	if n.Hub == nil && n.Leaf == nil { // an admin console keeps no state
		return nil
	}
	return n.Kit.RememberCRLNumber(n.Trust.CRLNumber())
}

func joinURLs(urls []string) string {
	s := ""
	for i, u := range urls {
		if i > 0 {
			s += ","
		}
		s += u
	}
	return s
}
