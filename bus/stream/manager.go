package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Errors a stream fails with; test them with errors.Is.
var (
	// ErrStalled: no progress for Config.StallTimeout.
	ErrStalled = errors.New("stream: stalled")
	// ErrCorrupt: three copies of one chunk failed their hash check.
	ErrCorrupt = errors.New("stream: chunk corrupt")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("stream: manager closed")
	// ErrManifest: a manifest is invalid (sizes, chunk count and hash
	// lengths inconsistent, a hash function unknown or unspecified, a bad
	// stream id, over MaxStreamBytes or MaxChunks), or a stream too large
	// for one.
	ErrManifest = errors.New("stream: invalid manifest")
	// ErrCanceled: the stream was cancelled with Outgoing.Cancel.
	ErrCanceled = errors.New("stream: cancelled")
	// ErrAborted: the peer gave up on the stream and said so.
	ErrAborted = errors.New("stream: aborted by the peer")
	// ErrChunkSize: a chunk is not the size the manifest gives it (the
	// chunk size, except for the last): a sender's doing, never the
	// network's, so the stream fails at the first such chunk.
	ErrChunkSize = errors.New("stream: chunk of the wrong size")
	// ErrRewinds: a cast recipient asked for more chunks again than a
	// whole extra copy of the stream (see OfferCast), and was dropped
	// from the cast.
	ErrRewinds = errors.New("stream: too many rewinds")
	// ErrUnsent: a cast recipient confirmed chunks that were never sent to
	// it, and was dropped from the cast.
	ErrUnsent = errors.New("stream: confirmed chunks never sent")
)

// Defaults and limits of Config.
const (
	DefaultChunkBytes    = 1 << 20          // Config.ChunkBytes
	DefaultWindow        = 16               // Config.Window
	MaxWindow            = 1024             // the largest Config.Window
	DefaultStallTimeout  = 30 * time.Second // Config.StallTimeout
	DefaultReceiveBudget = 32 << 20         // Config.ReceiveBudget
	// maxCorrupt bad copies of one chunk fail the stream with ErrCorrupt.
	maxCorrupt = 3
	// firstRetry is how long the recipient waits for the sender's first
	// chunk before it sends its first credit again (doubling up to
	// RetryInterval).
	firstRetry = 50 * time.Millisecond
)

// Config configures a Manager.
type Config struct {
	Conn       *nats.Conn // this process's connection (in-process to its hub or leaf)
	Self       string     // participant name
	ChunkBytes int        // default DefaultChunkBytes (1 MiB); at most MaxChunkBytes
	// Window is the chunks in flight per stream (credit); default 16, at
	// most MaxWindow. A cast also honours no recipient's credit beyond
	// Window past what that recipient confirmed.
	Window       int
	StallTimeout time.Duration // no progress for this long fails a stream; default 30s
	// RetryInterval: a recipient that delivered nothing for this long asks
	// the sender to resend from the first missing chunk, and an idle sender
	// probes the recipient. Default min(StallTimeout/4, 1s).
	RetryInterval time.Duration
	// ReceiveBudget bounds the bytes of chunks in flight to this process,
	// all incoming streams together: each gets an equal share of it as its
	// window (at least two chunks, at most Window). Default 32 MiB, well
	// under bus.MaxPending, past which nats-server disconnects a client
	// that cannot keep up.
	ReceiveBudget int64
	// Hash is the function this process hashes the chunks it sends with:
	// BLAKE3 (the default) or SHA256. Received streams are checked with
	// whichever of the two their manifest names.
	Hash   Hash
	Logger *slog.Logger // nil: no logs
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.ChunkBytes == 0 {
		c.ChunkBytes = DefaultChunkBytes
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = min(c.StallTimeout/4, time.Second)
	}
	if c.ReceiveBudget == 0 {
		c.ReceiveBudget = DefaultReceiveBudget
	}
	if c.Hash == hearthv1.ChunkHash_CHUNK_HASH_UNSPECIFIED {
		c.Hash = BLAKE3
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the configuration (zero fields take their defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("stream: a NATS connection is required"))
	}
	if !validName(c.Self) {
		errs = append(errs, fmt.Errorf("stream: participant name %q cannot be a subject token", c.Self))
	}
	if c.ChunkBytes < 1 || c.ChunkBytes > MaxChunkBytes {
		errs = append(errs, fmt.Errorf("stream: chunk bytes %d outside [1, %d]", c.ChunkBytes, MaxChunkBytes))
	}
	if c.Window < 1 || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("stream: window %d outside [1, %d]", c.Window, MaxWindow))
	}
	if c.StallTimeout <= 0 || c.RetryInterval <= 0 || c.RetryInterval > c.StallTimeout {
		errs = append(errs, fmt.Errorf("stream: want 0 < retry interval (%v) <= stall timeout (%v)", c.RetryInterval, c.StallTimeout))
	}
	if c.ReceiveBudget < 0 {
		errs = append(errs, fmt.Errorf("stream: receive budget %d is negative", c.ReceiveBudget))
	}
	if err := checkHash(c.Hash); err != nil {
		errs = append(errs, fmt.Errorf("stream: %w", err))
	}
	return errors.Join(errs...)
}

// streamKey names a stream within a Manager: the peer's name and the id.
type streamKey struct{ peer, id string }

// outgoing is a stream to one recipient as the dispatcher sees it: an
// Outgoing, or one recipient of a Cast.
type outgoing interface {
	control(credit) // the recipient's credit
	fail(error)     // the recipient's abort, or Close
}

// Manager runs every stream of one process over its NATS connection. It
// subscribes bus.StreamInbox(Self) once and hands each message to its
// stream by (peer, stream id); a peer's name comes from the subject, which
// NATS permissions let only that peer publish on.
type Manager struct {
	cfg    Config
	nc     *nats.Conn
	log    *slog.Logger
	sub    *nats.Subscription
	closed chan struct{}
	wg     sync.WaitGroup // stream goroutines and Receive calls

	mu       sync.Mutex
	out      map[streamKey]outgoing
	in       map[streamKey]*incoming
	finished map[streamKey]finishedStream // recently completed incoming streams
	isClosed bool
}

// finishedStream remembers a completed incoming stream for a while, to
// answer a sender whose final credit was lost.
type finishedStream struct {
	count int
	until time.Time
}

// NewManager subscribes to the participant's stream inbox.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Manager{
		cfg: cfg, nc: cfg.Conn, log: cfg.Logger.With("component", "stream", "self", cfg.Self),
		closed: make(chan struct{}),
		out:    map[streamKey]outgoing{}, in: map[streamKey]*incoming{}, finished: map[streamKey]finishedStream{},
	}
	sub, err := m.subscribe(bus.StreamInbox(cfg.Self), m.dispatch)
	if err != nil {
		return nil, err
	}
	m.sub = sub
	return m, nil
}

// subscribe subscribes handler to subject with the pending limits of
// stream traffic.
func (m *Manager) subscribe(subject string, handler nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := m.nc.Subscribe(subject, handler)
	if err != nil {
		return nil, fmt.Errorf("stream: subscribe: %w", err)
	}
	// Credit bounds what is in flight; past this the client drops messages
	// (a slow consumer), which the protocol recovers from like any loss.
	if err := sub.SetPendingLimits(-1, int(max(4*m.cfg.ReceiveBudget, 64<<20))); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("stream: subscription limits: %w", err)
	}
	return sub, nil
}

// Close fails every open stream with ErrClosed (telling each peer), waits
// until no stream goroutine runs and no Sink is being called, and
// unsubscribes. It does not close the connection. Do not call it from a
// Sink.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.isClosed {
		m.mu.Unlock()
		return
	}
	m.isClosed = true
	close(m.closed)
	for _, o := range m.out {
		o.fail(ErrClosed)
	}
	m.mu.Unlock()
	m.wg.Wait()
	if err := m.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		m.log.Debug("unsubscribe", "err", err)
	}
}

// dispatch hands one message from the inbox to its stream. It runs on the
// subscription's goroutine and never blocks.
func (m *Manager) dispatch(msg *nats.Msg) {
	to, from, id, ok := bus.ParseStream(msg.Subject)
	chunk := isChunk(msg)
	if !ok || to != m.cfg.Self || (!chunk && len(msg.Data) == 0) {
		return
	}
	key := streamKey{peer: from, id: id}
	var kind byte
	if !chunk {
		kind = msg.Data[0]
	}
	switch {
	case chunk || kind == kindProbe || kind == kindSenderAbort || kind == kindSplit:
		m.mu.Lock()
		in := m.in[key]
		done, wasDone := m.finished[key]
		m.mu.Unlock()
		switch {
		case in != nil:
			in.deliver(msg)
		case wasDone && (kind == kindProbe || kind == kindSplit):
			m.publish(bus.Stream(from, m.cfg.Self, id), credit{ack: done.count, limit: done.count}.encode())
		}
	case kind == kindCredit || kind == kindReceiverAbort:
		m.mu.Lock()
		o := m.out[key]
		m.mu.Unlock()
		if o == nil {
			return
		}
		if kind == kindReceiverAbort {
			o.fail(fmt.Errorf("%w: %q", ErrAborted, parseAbort(msg.Data)))
			return
		}
		if c, ok := parseCredit(msg.Data); ok {
			o.control(c)
		}
	}
}

// dispatchCast hands a chunk of a cast to its stream, by (sender, id) as
// dispatch does: Receive subscribes it to bus.Cast(sender, id) for a cast
// manifest. It runs on that subscription's goroutine and never blocks.
func (m *Manager) dispatchCast(msg *nats.Msg) {
	from, id, ok := bus.ParseCast(msg.Subject)
	if !ok || !isChunk(msg) {
		return
	}
	m.mu.Lock()
	in := m.in[streamKey{peer: from, id: id}]
	m.mu.Unlock()
	if in != nil {
		in.deliverCast(msg)
	}
}

// publish sends one message, logging failures: every message of the
// protocol is either retried by it or best effort.
func (m *Manager) publish(subject string, data []byte) error {
	err := m.nc.Publish(subject, data)
	if err != nil {
		m.log.Debug("publish", "subject", subject, "err", err)
	}
	return err
}

// register adds a stream's goroutine to the Manager, unless it is closed.
func (m *Manager) register(add func()) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed {
		return ErrClosed
	}
	add()
	m.wg.Add(1)
	return nil
}

// window is the credit of an incoming stream of chunkBytes chunks: an
// equal share of the receive budget, at least two chunks, at most Window.
func (m *Manager) window(chunkBytes int) int {
	m.mu.Lock()
	n := int64(max(len(m.in), 1))
	m.mu.Unlock()
	w := int(min(m.cfg.ReceiveBudget/n/int64(chunkBytes), int64(m.cfg.Window)))
	return max(w, min(2, m.cfg.Window))
}

// remember records a completed incoming stream for StallTimeout and
// forgets older ones.
func (m *Manager) remember(key streamKey, count int) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, f := range m.finished {
		if now.After(f.until) {
			delete(m.finished, k)
		}
	}
	m.finished[key] = finishedStream{count: count, until: now.Add(m.cfg.StallTimeout)}
}
