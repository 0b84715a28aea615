package envelope

import (
	"bytes"
	"cmp"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Defaults and limits of Config.
const (
	DefaultWindow        = 2 * time.Minute  // Config.Window when zero
	MaxWindow            = 24 * time.Hour   // largest Config.Window accepted
	DefaultMaxSize       = 1 << 20          // Config.MaxSize when zero: NATS's default max_payload
	MaxMaxSize           = 64 << 20         // largest Config.MaxSize accepted: NATS's hard payload ceiling
	DefaultFutureSkew    = 10 * time.Second // Config.FutureSkew when zero
	DefaultRate          = 100              // Config.Rate when zero: envelopes a second per sender
	DefaultBurst         = 500              // Config.Burst when zero
	DefaultMaxRemembered = 1 << 15          // Config.MaxRemembered when zero: ids per sender
	DefaultMaxSenders    = 512              // Config.MaxSenders when zero
)

// AllowList names the message types (fully qualified protobuf names) that
// each kind of sender may send. A kind that is absent may send nothing.
type AllowList map[pki.Kind][]string

// Config configures a Verifier. Zero values take the documented defaults.
type Config struct {
	// Self is this process's participant name; envelopes addressed to
	// anyone else are refused. Required.
	Self string
	// Trust decides whether a sender certificate is the project's, valid
	// and not revoked. Required.
	Trust *pki.Trust
	// Registry holds the types this process decodes. Required.
	Registry *Registry
	// Allow lists the types each sender kind may send; each must be in
	// Registry.
	Allow AllowList
	// Window is the replay window (default 2m, at most 24h): envelopes sent
	// more than Window ago are refused, and ids are remembered long enough to
	// refuse any replay inside it.
	Window time.Duration
	// FutureSkew is how far ahead of this process's clock an envelope's sent
	// time may be (default 10s or Window if shorter, at most Window). Hosts keep their clocks
	// within well under a second of each other with NTP; 10s leaves room for
	// a badly synchronised one, while an envelope dated ahead cannot stretch
	// the time its id must be remembered by more than that.
	FutureSkew time.Duration
	// MaxSize is the largest envelope accepted, in bytes (default 1 MiB, at
	// most 64 MiB).
	MaxSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxRemembered caps the ids remembered for replay detection per
	// sender (default 1<<15). When a sender reaches it, that sender's new
	// envelopes are refused with ErrReplayCacheFull until its old ids expire
	// (the cache never forgets a live id to make room); other senders are
	// not affected. An id is remembered for at most 2*Window+FutureSkew, so
	// the default quota holds everything a sender can send at the default
	// Rate (100/s over 250s).
	MaxRemembered int
	// MaxSenders caps how many senders may have ids remembered at once
	// (default 512); a further sender is refused with ErrReplayCacheFull
	// until some sender's ids all expire. The ids remembered in all are at
	// most MaxSenders*MaxRemembered (2^24 by default). An id costs about
	// 36 bytes, so a sender at its default quota holds about 1.2 MB, and
	// the default bound, reached only if 512 distinct valid certificates
	// all fill their quotas at once, is about 600 MB.
	MaxSenders int
	// Rate is how many envelopes a second each sender may have opened,
	// sustained, and Burst how many at once (defaults 100/s and 500, far
	// above a participant's control traffic: a round costs a few envelopes
	// per site, an admin command one). The check comes first, keyed by the
	// sender named by the subject the envelope arrived on (which NATS
	// permissions vouch for), so a flood is refused with ErrRateLimited for
	// the cost of a map lookup, before any parsing or signature check.
	// math.Inf(1) turns the limit off.
	Rate  float64
	Burst int
	// Started is when this process started (zero: not checked). An
	// envelope from an admin sent before it is refused: the replay cache
	// lives in memory, so a restarted process cannot know the ids it saw
	// before. Admins' commands are what a restarted server must not take
	// twice; answers to requests are matched to requests this process made
	// since it started (an answer to none is dropped), and a site checks the
	// server's tasks against its own records (its job ledger, the rounds it
	// trained). An admin whose clock lags this one's by d cannot command
	// for d after a restart.
	Started time.Time
}

// Validate checks c. Zero Window, FutureSkew, MaxSize, MaxRemembered,
// MaxSenders, Rate, Burst and Now are valid (they take their defaults).
func (c Config) Validate() error {
	var errs []error
	if err := pki.ValidName(c.Self); err != nil {
		errs = append(errs, fmt.Errorf("self: %w", err))
	}
	if c.Trust == nil {
		errs = append(errs, errors.New("no trust"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("no registry"))
	}
	if c.Window < 0 || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window %s: want 0 (default %s) up to %s", c.Window, DefaultWindow, MaxWindow))
	}
	if c.FutureSkew < 0 || c.FutureSkew > cmp.Or(c.Window, DefaultWindow) {
		errs = append(errs, fmt.Errorf("future skew %s: want 0 (default %s) up to the window", c.FutureSkew, DefaultFutureSkew))
	}
	if c.MaxSize < 0 || c.MaxSize > MaxMaxSize {
		errs = append(errs, fmt.Errorf("max size %d: want 0 (default %d) up to %d", c.MaxSize, DefaultMaxSize, MaxMaxSize))
	}
	if c.MaxRemembered < 0 {
		errs = append(errs, fmt.Errorf("max remembered %d: want 0 (default %d) or more", c.MaxRemembered, DefaultMaxRemembered))
	}
	if c.MaxSenders < 0 {
		errs = append(errs, fmt.Errorf("max senders %d: want 0 (default %d) or more", c.MaxSenders, DefaultMaxSenders))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) {
		errs = append(errs, fmt.Errorf("rate %v: want 0 (default %d a second) or more", c.Rate, DefaultRate))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst %d: want 0 (default %d) or more", c.Burst, DefaultBurst))
	}
	for kind, types := range c.Allow {
		if !kind.Valid() {
			errs = append(errs, fmt.Errorf("allow: unknown sender kind %q", kind))
		}
		for _, t := range types {
			if c.Registry != nil && !c.Registry.Has(t) {
				errs = append(errs, fmt.Errorf("allow: %s may send %q, which is not in the registry", kind, t))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("envelope verifier config: %w", err)
	}
	return nil
}

// Verifier opens envelopes addressed to one participant. It is safe for
// concurrent use.
type Verifier struct {
	self    string
	trust   *pki.Trust
	reg     *Registry
	allow   map[pki.Kind]map[string]bool
	window  time.Duration
	skew    time.Duration
	maxSize int
	now     func() time.Time
	replay  *replayCache
	limits  *senderLimits
	certs   certCache
	started int64 // Config.Started, unix nanoseconds; 0: none
}

// NewVerifier validates cfg and returns a Verifier for it. The allow-list is
// copied: later changes to cfg.Allow have no effect.
func NewVerifier(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		self:    cfg.Self,
		trust:   cfg.Trust,
		reg:     cfg.Registry,
		allow:   make(map[pki.Kind]map[string]bool, len(cfg.Allow)),
		window:  cmp.Or(cfg.Window, DefaultWindow),
		maxSize: cmp.Or(cfg.MaxSize, DefaultMaxSize),
		now:     cfg.Now,
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.skew = cmp.Or(cfg.FutureSkew, min(DefaultFutureSkew, v.window)) // never past the window: see replayCache
	if !cfg.Started.IsZero() {
		v.started = cfg.Started.UnixNano()
	}
	for kind, types := range cfg.Allow {
		v.allow[kind] = make(map[string]bool, len(types))
		for _, t := range types {
			v.allow[kind][t] = true
		}
	}
	v.replay = newReplayCache(int64(v.window), cmp.Or(cfg.MaxRemembered, DefaultMaxRemembered), cmp.Or(cfg.MaxSenders, DefaultMaxSenders))
	v.limits = newSenderLimits(cmp.Or(cfg.Rate, DefaultRate), cmp.Or(cfg.Burst, DefaultBurst))
	return v, nil
}

// Message is an envelope that passed every check.
type Message struct {
	// Header is the signed header; every field in it was checked or is
	// covered by the signature.
	Header *hearthv1.Header
	// RawHeader is the header bytes as received and signed (the associated
	// data of a sealed body).
	RawHeader []byte
	// Sender is the identity in the sender's verified certificate.
	Sender pki.Identity
	// Body is the decoded body, of the type Header.MessageType names; nil
	// for a sealed body.
	Body proto.Message
	// Sealed is the sealed body, undecoded, when Header.BodyEncoding is
	// BODY_ENCODING_SEALED; nil otherwise. See DecodeSealed.
	Sealed *hearthv1.SealedBody
	// Size is the envelope's size in bytes.
	Size int
}

// Open checks envelope bytes that arrived on the subject of participant
// arrivedFrom and returns the message, or a *RefusedError saying why it was
// refused. The checks and their order are listed in the package comment; the
// id is remembered (and later copies refused as replays) only once the
// signature has verified. Open never panics, whatever data holds.
func (v *Verifier) Open(arrivedFrom string, data []byte) (*Message, error) {
	if err := pki.ValidName(arrivedFrom); err != nil {
		return nil, &RefusedError{Reason: ErrSenderMismatch, Detail: fmt.Sprintf("arrived on subject token %q, which names no participant", claimed(arrivedFrom))}
	}
	now := v.now()
	if !v.limits.allow(arrivedFrom, now) {
		return nil, &RefusedError{Reason: ErrRateLimited, Sender: arrivedFrom,
			Detail: fmt.Sprintf("more than %d at once or %v a second", v.limits.burst, float64(v.limits.limit))}
	}
	if len(data) > v.maxSize {
		return nil, &RefusedError{Reason: ErrTooLarge, Detail: fmt.Sprintf("%d bytes, limit %d", len(data), v.maxSize)}
	}
	if len(data) == 0 {
		return nil, &RefusedError{Reason: ErrMalformed, Detail: "empty"}
	}
	var env hearthv1.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, &RefusedError{Reason: ErrMalformed, Detail: "envelope does not parse: " + err.Error(), Cause: err}
	}
	h := new(hearthv1.Header)
	if err := proto.Unmarshal(env.Header, h); err != nil {
		return nil, &RefusedError{Reason: ErrMalformed, Detail: "header does not parse: " + err.Error(), Cause: err}
	}
	claim := claims{Sender: claimed(h.Sender), MessageID: claimed(h.Id), Type: claimed(h.MessageType)}
	if detail := checkFields(&env, h); detail != "" {
		return nil, claim.refuse(ErrMalformed, nil, detail)
	}
	if h.Recipient != v.self {
		return nil, claim.refuse(ErrWrongRecipient, nil, fmt.Sprintf("addressed to %q, this is %q", claimed(h.Recipient), v.self))
	}

	fp := sha256.Sum256(env.SenderCert)
	if !bytes.Equal(fp[:], h.SenderCertSha256) {
		return nil, claim.refuse(ErrSenderMismatch, nil, "the attached certificate is not the one the header names")
	}
	cert, cached := v.certs.get(fp)
	if !cached {
		var err error
		if cert, err = x509.ParseCertificate(env.SenderCert); err != nil {
			return nil, claim.refuse(ErrMalformed, err, "sender certificate does not parse: "+err.Error())
		}
	}
	sender, err := v.trust.Verify(cert, now)
	if err != nil {
		return nil, claim.refuse(ErrUntrustedSender, err, err.Error())
	}
	if !cached {
		v.certs.put(fp, cert)
	}
	if sender.Name != h.Sender {
		return nil, claim.refuse(ErrSenderMismatch, nil, fmt.Sprintf("header names sender %q, certificate is %q's", claimed(h.Sender), sender.Name))
	}
	if arrivedFrom != h.Sender {
		return nil, claim.refuse(ErrSenderMismatch, nil, fmt.Sprintf("arrived on %q's subject", claimed(arrivedFrom)))
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, claim.refuse(ErrBadSignature, nil, fmt.Sprintf("certificate key is %T, want Ed25519", cert.PublicKey))
	}
	if !ed25519.Verify(pub, signedData(env.Header, env.Body), env.Signature) {
		return nil, claim.refuse(ErrBadSignature, nil, "")
	}

	// From here on the header is the sender's own words.
	if !v.reg.Has(h.MessageType) {
		return nil, claim.refuse(ErrUnknownType, nil, fmt.Sprintf("%q is not registered here", h.MessageType))
	}
	if !v.allow[sender.Kind][h.MessageType] {
		return nil, claim.refuse(ErrTypeNotAllowed, nil, fmt.Sprintf("%s senders may not send %s", sender.Kind, h.MessageType))
	}
	nowNano, w := now.UnixNano(), int64(v.window)
	switch sent := h.SentUnixNano; {
	case sent < subSat(nowNano, w):
		return nil, claim.refuse(ErrOutsideWindow, nil, fmt.Sprintf("sent %s ago, window %s", time.Duration(subSat(nowNano, sent)), v.window))
	case sent > addSat(nowNano, int64(v.skew)):
		return nil, claim.refuse(ErrOutsideWindow, nil, fmt.Sprintf("sent %s in the future, allowed skew %s", time.Duration(subSat(sent, nowNano)), v.skew))
	case sender.Kind == pki.KindAdmin && sent < v.started:
		return nil, claim.refuse(ErrOutsideWindow, nil, fmt.Sprintf("an admin's command sent %s before this process started (a replay would go unseen)",
			time.Duration(subSat(v.started, sent))))
	}
	var id [16]byte
	hex.Decode(id[:], []byte(h.Id)) // checked by checkFields
	switch err := v.replay.add(sender.Name, id, h.SentUnixNano, nowNano); {
	case errors.Is(err, ErrReplay):
		return nil, claim.refuse(ErrReplay, nil, "id "+h.Id)
	case errors.Is(err, errTooManySenders):
		return nil, claim.refuse(ErrReplayCacheFull, nil, fmt.Sprintf("%d other senders have ids remembered, the limit", v.replay.maxSenders))
	case errors.Is(err, ErrReplayCacheFull):
		return nil, claim.refuse(ErrReplayCacheFull, nil, fmt.Sprintf("%q has %d ids remembered, its quota", sender.Name, v.replay.perSender))
	case err != nil:
		return nil, claim.refuse(err, nil, "the clock moved past it while it was checked")
	}

	m := &Message{Header: h, RawHeader: env.Header, Sender: sender, Size: len(data)}
	if h.BodyEncoding == hearthv1.BodyEncoding_BODY_ENCODING_SEALED {
		sb := new(hearthv1.SealedBody)
		if err := proto.Unmarshal(env.Body, sb); err != nil {
			return nil, claim.refuse(ErrMalformed, err, "sealed body does not parse")
		}
		if !wellFormedSealed(sb) {
			return nil, claim.refuse(ErrMalformed, nil, "sealed body fields have the wrong sizes")
		}
		m.Sealed = sb
		return m, nil
	}
	if m.Body, err = v.reg.decode(h.MessageType, env.Body); err != nil {
		return nil, claim.refuse(ErrMalformed, err, "body does not decode as "+h.MessageType)
	}
	return m, nil
}

// DecodeSealed opens m's sealed body with key, the recipient's X25519
// private key, and decodes it as the type m's header names, using the
// verifier's registry. Errors are *RefusedError wrapping ErrUnseal (not
// sealed to key, or altered), ErrMalformed or ErrUnknownType.
func (v *Verifier) DecodeSealed(m *Message, key *ecdh.PrivateKey) (proto.Message, error) {
	if m == nil || m.Header == nil || m.Sealed == nil {
		return nil, &RefusedError{Reason: ErrMalformed, Detail: "not a sealed message"}
	}
	claim := claims{Sender: claimed(m.Header.Sender), MessageID: claimed(m.Header.Id), Type: claimed(m.Header.MessageType)}
	plain, err := Unseal(m.RawHeader, m.Sealed, key)
	if err != nil {
		return nil, claim.refuse(ErrUnseal, err, err.Error())
	}
	if !v.reg.Has(m.Header.MessageType) {
		return nil, claim.refuse(ErrUnknownType, nil, fmt.Sprintf("%q is not registered here", claimed(m.Header.MessageType)))
	}
	body, err := v.reg.decode(m.Header.MessageType, plain)
	if err != nil {
		return nil, claim.refuse(ErrMalformed, err, "sealed body does not decode as "+m.Header.MessageType)
	}
	return body, nil
}

// claims is what a header claims about an envelope, for refusals.
type claims struct{ Sender, MessageID, Type string }

func (c claims) refuse(reason, cause error, detail string) *RefusedError {
	return &RefusedError{Reason: reason, Cause: cause, Sender: c.Sender, MessageID: c.MessageID, Type: c.Type, Detail: detail}
}

// maxTypeName bounds message type names.
const maxTypeName = 256

// checkFields checks that the envelope and header fields are present and
// well formed, and returns what is wrong, or "".
func checkFields(env *hearthv1.Envelope, h *hearthv1.Header) string {
	switch {
	case !validID(h.Id):
		return fmt.Sprintf("message id %q is not 32 lowercase hex digits", claimed(h.Id))
	case pki.ValidName(h.Sender) != nil:
		return fmt.Sprintf("sender %q is not a participant name", claimed(h.Sender))
	case pki.ValidName(h.Recipient) != nil:
		return fmt.Sprintf("recipient %q is not a participant name", claimed(h.Recipient))
	case len(h.MessageType) > maxTypeName || !protoreflect.FullName(h.MessageType).IsValid():
		return fmt.Sprintf("message type %q is not a protobuf message name", claimed(h.MessageType))
	case !validKind(h.Kind):
		return fmt.Sprintf("kind %s", h.Kind)
	case h.BodyEncoding != hearthv1.BodyEncoding_BODY_ENCODING_PLAIN && h.BodyEncoding != hearthv1.BodyEncoding_BODY_ENCODING_SEALED:
		return fmt.Sprintf("body encoding %s", h.BodyEncoding)
	case len(h.SenderCertSha256) != sha256.Size:
		return "no sender certificate hash"
	case len(env.SenderCert) == 0:
		return "no sender certificate"
	case len(env.Signature) != ed25519.SignatureSize:
		return fmt.Sprintf("signature is %d bytes, want %d", len(env.Signature), ed25519.SignatureSize)
	}
	if err := checkKindType(h.Kind, h.MessageType); err != nil {
		return err.Error()
	}
	return ""
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func addSat(a, b int64) int64 { // b >= 0
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func subSat(a, b int64) int64 {
	switch {
	case b > 0 && a < math.MinInt64+b:
		return math.MinInt64
	case b < 0 && a > math.MaxInt64+b:
		return math.MaxInt64
	}
	return a - b
}

// certCache keeps parsed certificates that passed Trust.Verify, keyed by
// the SHA-256 of their DER, so that a known sender's certificate is not
// parsed again for every envelope. Only trusted certificates enter it, so
// its size follows the project's participants; it is emptied if it ever
// reaches maxCerts. Trust.Verify still runs on every envelope (validity and
// revocation change over time).
type certCache struct {
	mu sync.RWMutex
	m  map[[32]byte]*x509.Certificate
}

const maxCerts = 4096

func (c *certCache) get(fp [32]byte) (*x509.Certificate, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cert, ok := c.m[fp]
	return cert, ok
}

func (c *certCache) put(fp [32]byte, cert *x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCerts {
		c.m = make(map[[32]byte]*x509.Certificate)
	}
	c.m[fp] = cert
}

// Addressable checks that m's sender may address a participant of kind self
// (pki.MayAddress) and returns a *RefusedError wrapping ErrKindNotAllowed if
// not. The receiving bridge calls it for every opened message, so that a
// site hears nothing from another site or an admin even if NATS permissions
// were to let it through.
func Addressable(m *Message, self pki.Kind) error {
	if pki.MayAddress(m.Sender.Kind, self) {
		return nil
	}
	return &RefusedError{Reason: ErrKindNotAllowed, Sender: m.Sender.Name, MessageID: m.Header.GetId(),
		Type: claimed(m.Header.GetMessageType()), Detail: fmt.Sprintf("%s senders may not address a %s", m.Sender.Kind, self)}
}

// NotAdmitted is the refusal of an opened message that its recipient's
// own rule did not admit (a site hears another site only within a job
// both are in), why naming the rule's reason.
func NotAdmitted(m *Message, why error) error {
	return &RefusedError{Reason: ErrNotAdmitted, Cause: why, Sender: m.Sender.Name, MessageID: m.Header.GetId(),
		Type: claimed(m.Header.GetMessageType()), Detail: Clip(why.Error(), 256)}
}
