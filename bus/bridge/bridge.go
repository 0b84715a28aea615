// Package bridge connects protoactor-go actors to the bus: what an actor
// sends to the bridge is signed and published to its recipient; what
// arrives is verified (bus/envelope) before it is handed, as a typed
// protobuf message, to the local actor routed for its type. Requests and
// responses cross processes: a handler answers with ctx.Respond, and the
// asker receives a *Reply (or *Failed).
//
// Actor code never sees NATS, envelopes or subjects: it sends *Send and
// *Ask to the bridge's PID and reads the sender of what it receives with
// OriginOf. A handler refuses a request by responding a *hearthv1.Failure.
package bridge

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Send asks the bridge to deliver Msg to participant To; no answer.
type Send struct {
	To    string
	Msg   proto.Message
	JobID string
	Round int64
	// SealTo, if set, seals Msg to this X25519 key (the recipient's): only
	// its holder reads it, not the hub nor anyone on the way. A site's
	// message to another site must be sealed; without SealTo it is refused.
	SealTo *ecdh.PublicKey
}

// Ask asks the bridge to deliver a request to participant To. The bridge
// answers the asking actor (or future) with *Reply or *Failed.
type Ask struct {
	To      string
	Msg     proto.Message
	JobID   string
	Round   int64
	Timeout time.Duration   // default Config.RequestTimeout
	SealTo  *ecdh.PublicKey // as in Send
}

// Reply is the answer to an Ask.
type Reply struct {
	From pki.Identity
	Msg  proto.Message
}

// Failed is an Ask that got no answer: refused, failed at the recipient,
// or timed out.
type Failed struct {
	To  string
	Err error
}

// ErrTimeout is the cause of a Failed whose recipient did not answer in time.
var ErrTimeout = errors.New("no response in time")

// RemoteError is a failure reported by the recipient of a request: who
// answered, what failed (as sent: it may be a code this build does not
// know) and the recipient's message, bounded.
type RemoteError struct {
	From    string
	Code    hearthv1.FailureCode
	Message string
}

// Error names the code readably (CodeName).
func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s answered %s: %s", e.From, CodeName(e.Code), e.Message)
}

// CodeName is a failure code's readable name: its enum name in lower case
// without the prefix ("no_handler" for FAILURE_CODE_NO_HANDLER). A code
// this build does not know, from a newer peer, is its number ("18").
func CodeName(c hearthv1.FailureCode) string {
	name, ok := hearthv1.FailureCode_name[int32(c)]
	if !ok {
		return strconv.FormatInt(int64(c), 10)
	}
	return strings.ToLower(strings.TrimPrefix(name, "FAILURE_CODE_"))
}

// Config configures a bridge.
type Config struct {
	Conn     *nats.Conn
	Signer   *envelope.Signer
	Verifier *envelope.Verifier
	System   *actor.ActorSystem
	// Routes names the local actor that handles each inbound message type
	// (fully qualified protobuf name). Types without a route are refused.
	Routes         map[string]*actor.PID
	RequestTimeout time.Duration // default 10s
	// HandlerTimeout bounds how long a local actor may take to answer a
	// request from another process (default 10m); the asker's own timeout
	// usually ends the wait sooner.
	HandlerTimeout time.Duration
	Logger         *slog.Logger
	// OnRefused, if set, sees every envelope refused on arrival.
	OnRefused func(subject string, err error)
	Now       func() time.Time
	// Peers, if set, are the participants that may address this one: the
	// bridge then takes each one's envelopes on a subscription of its own,
	// with its own queue and goroutine and a pending limit of
	// PeerPendingBytes, so that one sender's flood waits in its own queue
	// (and, past the limit, is dropped there) rather than in front of
	// everyone else's envelopes. Without Peers, one subscription takes all.
	Peers []string
	// Server is the project's server. A site given it sends what it
	// addresses to anyone else (another site: swarm learning) on Peer
	// subjects and hears other sites on a subscription of its own.
	Server string
	// SealKey opens bodies sealed to this participant (see Send.SealTo);
	// without it sealed envelopes are refused.
	SealKey *ecdh.PrivateKey
	// Admit decides on every message and request between two participants
	// neither of which is the server (pki.PeerToPeer: a site's swarm
	// traffic to another site), after its envelope verified and before its
	// body is unsealed or delivered; nil admits. Without Admit such
	// messages are refused. Responses need no admission: only the
	// participant asked may answer a request.
	Admit func(sender pki.Identity, messageType, jobID string) error
}

// PeerPendingBytes is how much of one peer's traffic may wait to be opened
// (Config.Peers); past it that peer's further envelopes are dropped by the
// NATS client, and only that peer's.
const PeerPendingBytes = 32 << 20

// Bridge is one process's link between its actors and the bus.
type Bridge struct {
	cfg  Config
	self string
	kind pki.Kind // this participant's kind: who may address it (pki.MayAddress)
	log  *slog.Logger
	now  func() time.Time
	pid  *actor.PID
	// void is the sender of every one-way message the bridge delivers: it
	// drops whatever a handler answers, so that an answer to a message
	// that asked for none (a peer's or a compromised server's one-way
	// envelope of a request type, say) goes nowhere instead of to a nil
	// PID, which panics the handler (or, from a goroutine, the process).
	void *actor.PID
	subs []*nats.Subscription

	mu      sync.Mutex
	pending map[string]*pendingAsk // request id -> asker

	routesMu sync.RWMutex
	routes   map[string]*actor.PID

	floodMu      sync.Mutex
	floodLogged  time.Time // last rate-limited refusal logged
	floodSkipped int       // rate-limited refusals not logged since
}

type pendingAsk struct {
	to     string
	sender *actor.PID
	timer  *time.Timer
}

// Start subscribes to this participant's inbox and spawns the bridge actor.
func Start(cfg Config) (*Bridge, error) {
	switch {
	case cfg.Conn == nil, cfg.Signer == nil, cfg.Verifier == nil, cfg.System == nil:
		return nil, errors.New("bridge: connection, signer, verifier and actor system are required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = 10 * time.Minute
	}
	b := &Bridge{
		cfg:     cfg,
		self:    cfg.Signer.Identity().Name,
		kind:    cfg.Signer.Identity().Kind,
		log:     cfg.Logger,
		now:     cfg.Now,
		pending: map[string]*pendingAsk{},
		routes:  map[string]*actor.PID{},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	for t, pid := range cfg.Routes {
		b.routes[t] = pid
	}
	b.pid = cfg.System.Root.Spawn(actor.PropsFromFunc(b.receive))
	b.void = cfg.System.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	subjects, pending := []string{bus.Inbox(b.self)}, 256<<20
	if len(cfg.Peers) > 0 {
		subjects, pending = nil, PeerPendingBytes
		for _, p := range cfg.Peers {
			subjects = append(subjects, bus.Direct(b.self, p))
		}
	}
	limits := map[string]int{}
	if pki.HearsPeers(b.kind) && cfg.Server != "" {
		subjects = append(subjects, bus.PeerInbox(b.self))
		limits[bus.PeerInbox(b.self)] = PeerPendingBytes
	}
	for _, subject := range subjects {
		sub, err := cfg.Conn.Subscribe(subject, b.arrive)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("bridge: subscribe to %s: %w", subject, err)
		}
		limit := pending
		if l, ok := limits[subject]; ok {
			limit = l
		}
		if err := sub.SetPendingLimits(-1, limit); err != nil {
			b.Close()
			return nil, fmt.Errorf("bridge: %w", err)
		}
		b.subs = append(b.subs, sub)
	}
	if err := cfg.Conn.Flush(); err != nil {
		b.Close()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return b, nil
}

// maxRemoteMessage bounds the message of a failure another participant
// answered with, as RemoteError carries it on.
const maxRemoteMessage = 1024

// PID is the bridge actor: send it *Send and *Ask.
func (b *Bridge) PID() *actor.PID { return b.pid }

// Route sets the local actor for an inbound message type.
func (b *Bridge) Route(messageType string, pid *actor.PID) {
	b.routesMu.Lock()
	b.routes[messageType] = pid
	b.routesMu.Unlock()
}

// Close unsubscribes and stops the bridge actor. Pending asks fail.
func (b *Bridge) Close() {
	for _, sub := range b.subs {
		_ = sub.Unsubscribe()
	}
	b.cfg.System.Root.Stop(b.pid)
	b.cfg.System.Root.Stop(b.void)
	b.mu.Lock()
	for id, p := range b.pending {
		p.timer.Stop()
		b.cfg.System.Root.Send(p.sender, &Failed{To: p.to, Err: errors.New("bridge closed")})
		delete(b.pending, id)
	}
	b.mu.Unlock()
}

// Request is a convenience for code outside actors: it asks and waits.
func (b *Bridge) Request(ctx context.Context, to string, msg proto.Message) (*Reply, error) {
	timeout := b.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := b.cfg.System.Root.RequestFuture(b.pid, &Ask{To: to, Msg: msg, Timeout: timeout}, timeout+time.Second)
	res, err := f.Result()
	if err != nil {
		return nil, fmt.Errorf("request to %s: %w", to, err)
	}
	switch r := res.(type) {
	case *Reply:
		return r, nil
	case *Failed:
		return nil, fmt.Errorf("request to %s: %w", r.To, r.Err)
	}
	return nil, fmt.Errorf("request to %s: unexpected %T", to, res)
}

// receive is the bridge actor: it signs and publishes what actors send.
func (b *Bridge) receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Send:
		if _, err := b.publishSealed(envelope.Outgoing{Recipient: m.To, Body: m.Msg, JobID: m.JobID, Round: m.Round,
			Kind: hearthv1.Header_KIND_MESSAGE}, m.SealTo); err != nil {
			b.log.Error("send failed", "to", m.To, "err", err)
		}
	case *Ask:
		b.ask(ctx, m)
	}
}

func (b *Bridge) ask(ctx actor.Context, m *Ask) {
	sender := ctx.Sender()
	if sender == nil {
		b.log.Error("ask without a sender to answer", "to", m.To)
		return
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = b.cfg.RequestTimeout
	}
	data, id, err := b.sign(envelope.Outgoing{Recipient: m.To, Body: m.Msg, JobID: m.JobID, Round: m.Round,
		Kind: hearthv1.Header_KIND_REQUEST}, m.SealTo)
	if err != nil {
		ctx.Send(sender, &Failed{To: m.To, Err: err})
		return
	}
	p := &pendingAsk{to: m.To, sender: sender}
	b.mu.Lock()
	b.pending[id] = p
	p.timer = time.AfterFunc(timeout, func() {
		if q := b.take(id); q != nil {
			b.cfg.System.Root.Send(q.sender, &Failed{To: q.to, Err: fmt.Errorf("%w (%v)", ErrTimeout, timeout)})
		}
	})
	b.mu.Unlock()
	if err := b.cfg.Conn.Publish(b.subject(m.To), data); err != nil {
		if q := b.take(id); q != nil {
			ctx.Send(sender, &Failed{To: m.To, Err: fmt.Errorf("publish: %w", err)})
		}
	}
}

func (b *Bridge) take(id string) *pendingAsk {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending[id]
	if p != nil {
		p.timer.Stop()
		delete(b.pending, id)
	}
	return p
}

func (b *Bridge) publish(m envelope.Outgoing) (string, error) { return b.publishSealed(m, nil) }

// publishSealed signs m (its body sealed to sealTo, if set) and publishes it.
func (b *Bridge) publishSealed(m envelope.Outgoing, sealTo *ecdh.PublicKey) (string, error) {
	data, id, err := b.sign(m, sealTo)
	if err != nil {
		return "", err
	}
	return id, b.cfg.Conn.Publish(b.subject(m.Recipient), data)
}

// subject is where an envelope to recipient goes: another participant's
// Peer subject from a site or an aggregation host, a Direct subject
// otherwise.
func (b *Bridge) subject(recipient string) string {
	if pki.HearsPeers(b.kind) && b.cfg.Server != "" && recipient != b.cfg.Server {
		return bus.Peer(recipient, b.self)
	}
	return bus.Direct(recipient, b.self)
}

func (b *Bridge) sign(m envelope.Outgoing, sealTo *ecdh.PublicKey) ([]byte, string, error) {
	request := m.Kind == hearthv1.Header_KIND_MESSAGE || m.Kind == hearthv1.Header_KIND_REQUEST
	if sealTo == nil && request && b.subject(m.Recipient) != bus.Direct(m.Recipient, b.self) {
		// To another site: through the hub, which must not read it.
		return nil, "", fmt.Errorf("an envelope to %s, another site, must be sealed to its key", m.Recipient)
	}
	if sealTo != nil {
		return b.cfg.Signer.SignSealed(m, sealTo, b.now())
	}
	return b.cfg.Signer.Sign(m, b.now())
}

// arrive runs for every message on this participant's inbox (one goroutine
// per subscription, in order: with Config.Peers, one per peer). Nothing of an envelope reaches an actor
// before Verifier.Open accepted it and its sender's kind was found allowed to
// address this participant's (envelope.Addressable). A flooding sender is
// refused by Open's rate check before any parsing, so its envelopes cost the
// others in the queue behind them little.
func (b *Bridge) arrive(msg *nats.Msg) {
	_, from, peer, ok := bus.ParseEnvelopeSubject(msg.Subject)
	if !ok {
		b.refused(msg.Subject, fmt.Errorf("malformed subject %q", msg.Subject))
		return
	}
	m, err := b.cfg.Verifier.Open(from, msg.Data)
	if err != nil {
		b.refused(msg.Subject, err)
		return
	}
	if err := envelope.Addressable(m, b.kind); err != nil {
		b.refused(msg.Subject, err)
		return
	}
	if peer != pki.PeerToPeer(m.Sender.Kind, b.kind) {
		b.refused(msg.Subject, envelope.NotAdmitted(m, fmt.Errorf("a %s's envelope on a %s subject", m.Sender.Kind, map[bool]string{true: "site-to-site", false: "server"}[peer])))
		return
	}
	h := m.Header
	switch h.Kind {
	case hearthv1.Header_KIND_RESPONSE, hearthv1.Header_KIND_ERROR:
		p := b.take(h.CorrelationId)
		if p == nil {
			b.log.Warn("response to no pending request (late or unknown)", "from", from, "correlation_id", h.CorrelationId)
			return
		}
		if p.to != m.Sender.Name {
			b.log.Warn("response from a participant the request was not sent to", "from", from, "asked", p.to)
			b.cfg.System.Root.Send(p.sender, &Failed{To: p.to, Err: fmt.Errorf("response came from %s, not %s", m.Sender.Name, p.to)})
			return
		}
		if h.Kind == hearthv1.Header_KIND_ERROR {
			f, _ := m.Body.(*hearthv1.Failure)
			b.cfg.System.Root.Send(p.sender, &Failed{To: p.to, Err: &RemoteError{From: from, Code: f.GetKind(), Message: envelope.Clip(f.GetMessage(), maxRemoteMessage)}})
			return
		}
		b.cfg.System.Root.Send(p.sender, &Reply{From: m.Sender, Msg: m.Body})
	case hearthv1.Header_KIND_MESSAGE, hearthv1.Header_KIND_REQUEST:
		if pki.PeerToPeer(m.Sender.Kind, b.kind) {
			why := errors.New("this participant admits no peer-to-peer messages")
			if b.cfg.Admit != nil {
				why = b.cfg.Admit(m.Sender, h.MessageType, h.JobId)
			}
			if why != nil {
				b.refused(msg.Subject, envelope.NotAdmitted(m, why))
				return
			}
		}
		if m.Sealed != nil {
			if b.cfg.SealKey == nil {
				b.refused(msg.Subject, envelope.NotAdmitted(m, errors.New("sealed body, and this participant holds no sealing key")))
				return
			}
			body, err := b.cfg.Verifier.DecodeSealed(m, b.cfg.SealKey)
			if err != nil {
				b.refused(msg.Subject, err)
				return
			}
			m.Body = body
		}
		b.deliver(m)
	}
}

func (b *Bridge) deliver(m *envelope.Message) {
	h := m.Header
	b.routesMu.RLock()
	pid := b.routes[h.MessageType]
	b.routesMu.RUnlock()
	if pid == nil {
		b.log.Warn("no local handler for message type", "type", h.MessageType, "from", h.Sender)
		if h.Kind == hearthv1.Header_KIND_REQUEST {
			b.answer(m, nil, &hearthv1.Failure{Kind: hearthv1.FailureCode_FAILURE_CODE_NO_HANDLER, Message: "no handler for " + h.MessageType + " at " + b.self})
		}
		return
	}
	headers := map[string]string{
		headerSender: m.Sender.Name, headerOrg: m.Sender.Org, headerKind: string(m.Sender.Kind),
		headerRole: string(m.Sender.Role), headerJob: h.JobId, headerRound: strconv.FormatInt(h.Round, 10),
		headerID: h.Id,
	}
	if m.Sealed != nil {
		headers[headerSealed] = "1"
	}
	if h.Kind == hearthv1.Header_KIND_MESSAGE {
		headers[headerOneWay] = "1"
		b.cfg.System.Root.Send(pid, &actor.MessageEnvelope{Header: headers, Message: m.Body, Sender: b.void})
		return
	}
	future := actor.NewFuture(b.cfg.System, b.cfg.HandlerTimeout)
	b.cfg.System.Root.Send(pid, &actor.MessageEnvelope{Header: headers, Message: m.Body, Sender: future.PID()})
	go func() {
		res, err := future.Result()
		switch r := res.(type) {
		case nil:
			code := hearthv1.FailureCode_FAILURE_CODE_HANDLER_ERROR
			if errors.Is(err, actor.ErrTimeout) {
				code = hearthv1.FailureCode_FAILURE_CODE_TIMEOUT
			}
			b.answer(m, nil, &hearthv1.Failure{Kind: code, Message: fmt.Sprint(err)})
		case *hearthv1.Failure:
			b.answer(m, nil, r)
		case proto.Message:
			b.answer(m, r, nil)
		case error:
			b.answer(m, nil, &hearthv1.Failure{Kind: hearthv1.FailureCode_FAILURE_CODE_HANDLER_ERROR, Message: r.Error()})
		default:
			b.answer(m, nil, &hearthv1.Failure{Kind: hearthv1.FailureCode_FAILURE_CODE_HANDLER_ERROR, Message: fmt.Sprintf("handler answered %T", res)})
		}
	}()
}

// answer sends the response (or failure) to a request.
func (b *Bridge) answer(req *envelope.Message, body proto.Message, failure *hearthv1.Failure) {
	out := envelope.Outgoing{Recipient: req.Sender.Name, CorrelationID: req.Header.Id,
		JobID: req.Header.JobId, Round: req.Header.Round, Kind: hearthv1.Header_KIND_RESPONSE, Body: body}
	if failure != nil {
		out.Kind, out.Body = hearthv1.Header_KIND_ERROR, failure
	}
	if _, err := b.publish(out); err != nil {
		b.log.Error("answer failed", "to", req.Sender.Name, "err", err)
	}
}

// refused logs and reports a refused envelope. Rate-limited refusals come
// in floods, so they are logged at most once a second, with the number
// left out since (OnRefused still sees every one).
func (b *Bridge) refused(subject string, err error) {
	if errors.Is(err, envelope.ErrRateLimited) {
		b.floodMu.Lock()
		now := time.Now()
		quiet, skipped := now.Sub(b.floodLogged) >= time.Second, b.floodSkipped
		if quiet {
			b.floodLogged, b.floodSkipped = now, 0
		} else {
			b.floodSkipped++
		}
		b.floodMu.Unlock()
		if quiet {
			b.log.Warn("envelope refused", "subject", subject, "reason", envelope.Reason(err), "err", err, "rate_limited_not_logged", skipped)
		}
	} else {
		b.log.Warn("envelope refused", "subject", subject, "reason", envelope.Reason(err), "err", err)
	}
	if b.cfg.OnRefused != nil {
		b.cfg.OnRefused(subject, err)
	}
}
