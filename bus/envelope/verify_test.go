package envelope_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestOpenAccepts(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name     string
		from     string
		data     func(t *testing.T) []byte
		wantKind pki.Kind
		wantBody proto.Message
	}{
		{
			name:     "ping from a site",
			from:     "site-2",
			data:     func(t *testing.T) []byte { return ping(t, fx.site2) },
			wantKind: pki.KindSite,
			wantBody: &hearthv1.Ping{Seq: 7, Text: "hello"},
		},
		{
			name: "notice from an admin",
			from: "admin@a.org",
			data: func(t *testing.T) []byte {
				return mustSign(t, fx.admin, envelope.Outgoing{Recipient: self, Body: &hearthv1.Notice{Text: "hi"}}, t0)
			},
			wantKind: pki.KindAdmin,
			wantBody: &hearthv1.Notice{Text: "hi"},
		},
		{
			name: "error response from the server",
			from: "server",
			data: func(t *testing.T) []byte {
				return mustSign(t, fx.server, envelope.Outgoing{Recipient: self, Kind: hearthv1.Header_KIND_ERROR,
					CorrelationID: "0123456789abcdef0123456789abcdef", Body: &hearthv1.Failure{Kind: hearthv1.FailureCode_FAILURE_CODE_NO_HANDLER}}, t0)
			},
			wantKind: pki.KindServer,
			wantBody: &hearthv1.Failure{Kind: hearthv1.FailureCode_FAILURE_CODE_NO_HANDLER},
		},
		{
			name:     "sent exactly one window ago",
			from:     "site-2",
			data:     func(t *testing.T) []byte { return sentAt(t, fx.site2, t0.Add(-envelope.DefaultWindow)) },
			wantKind: pki.KindSite,
			wantBody: &hearthv1.Ping{Seq: 1},
		},
		{
			name:     "sent exactly the future skew ahead",
			from:     "site-2",
			data:     func(t *testing.T) []byte { return sentAt(t, fx.site2, t0.Add(envelope.DefaultFutureSkew)) },
			wantKind: pki.KindSite,
			wantBody: &hearthv1.Ping{Seq: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data(t)
			m, err := fx.verifier(t, newClock(), nil).Open(tt.from, data)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if m.Sender.Name != tt.from || m.Sender.Kind != tt.wantKind {
				t.Errorf("sender %v, want %s (%s)", m.Sender, tt.from, tt.wantKind)
			}
			if !proto.Equal(m.Body, tt.wantBody) {
				t.Errorf("body %v, want %v", m.Body, tt.wantBody)
			}
			if m.Size != len(data) || m.Sealed != nil || m.Header.Recipient != self || m.Header.Sender != tt.from {
				t.Errorf("message %+v", m)
			}
		})
	}
}

func TestOpenCarriesHeader(t *testing.T) {
	fx := newFixture(t)
	data, id, err := fx.site2.Sign(envelope.Outgoing{Recipient: self, Kind: hearthv1.Header_KIND_REQUEST,
		CorrelationID: "c1", JobID: "job-9", Round: 4, Body: &hearthv1.Ping{Seq: 1}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := fx.verifier(t, newClock(), nil).Open("site-2", data)
	if err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256(fx.site2.Certificate().Raw)
	want := &hearthv1.Header{Id: id, Sender: "site-2", Recipient: self, MessageType: "hearth.v1.Ping", JobId: "job-9",
		Round: 4, SentUnixNano: t0.UnixNano(), SenderCertSha256: fp[:], CorrelationId: "c1",
		Kind: hearthv1.Header_KIND_REQUEST, BodyEncoding: hearthv1.BodyEncoding_BODY_ENCODING_PLAIN}
	if !proto.Equal(m.Header, want) {
		t.Errorf("header\n got %v\nwant %v", m.Header, want)
	}
	if len(id) != 32 {
		t.Errorf("id %q: want 32 hex digits", id)
	}
}

func sentAt(t testing.TB, s *envelope.Signer, at time.Time) []byte {
	t.Helper()
	return mustSign(t, s, envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{Seq: 1}}, at)
}

// TestOpenRefuses shows every control refusing.
func TestOpenRefuses(t *testing.T) {
	fx := newFixture(t)
	withHeader := func(f func(h *hearthv1.Header, env *hearthv1.Envelope)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return resign(t, ping(t, fx.site2), fx.site2Key, f) }
	}
	tests := []struct {
		name   string
		from   string // the subject's participant; "site-2" when empty
		data   func(t *testing.T) []byte
		tweak  func(*envelope.Config)
		want   error  // the sentinel
		alsoIs error  // a further cause, if any
		reason string // Reason(err)
		text   string // in err.Error()
	}{
		{
			name: "tampered body byte",
			data: func(t *testing.T) []byte {
				return tamper(t, ping(t, fx.site2), func(env *hearthv1.Envelope) { env.Body[len(env.Body)-1] ^= 1 })
			},
			want: envelope.ErrBadSignature, reason: "bad_signature",
			text: `envelope from "site-2" refused: signature does not verify`,
		},
		{
			name: "tampered header byte (job id)",
			data: func(t *testing.T) []byte {
				return tamper(t, ping(t, fx.site2), func(env *hearthv1.Envelope) {
					env.Header = bytes.Replace(env.Header, []byte("job-1"), []byte("job-2"), 1)
				})
			},
			want: envelope.ErrBadSignature, reason: "bad_signature", text: "signature does not verify",
		},
		{
			name: "forged: impostor certificate from another CA",
			data: func(t *testing.T) []byte { return ping(t, fx.impostor) },
			want: envelope.ErrUntrustedSender, alsoIs: pki.ErrUnknownAuthority, reason: "unknown_authority",
			text: "sender certificate not trusted",
		},
		{
			name: "forged: genuine certificate, signature by another key",
			data: func(t *testing.T) []byte {
				return tamper(t, ping(t, fx.site2), func(env *hearthv1.Envelope) {
					env.Signature = ed25519.Sign(fx.otherKey, signed(env.Header, env.Body))
				})
			},
			want: envelope.ErrBadSignature, reason: "bad_signature", text: "signature does not verify",
		},
		{
			name: "expired certificate",
			from: "site-old",
			data: func(t *testing.T) []byte { return ping(t, fx.expired) },
			want: envelope.ErrUntrustedSender, alsoIs: pki.ErrExpired, reason: "expired", text: "certificate expired",
		},
		{
			name: "certificate not yet valid",
			from: "site-new",
			data: func(t *testing.T) []byte { return ping(t, fx.notYet) },
			want: envelope.ErrUntrustedSender, alsoIs: pki.ErrNotYetValid, reason: "not_yet_valid", text: "not yet valid",
		},
		{
			name: "revoked certificate",
			from: "site-gone",
			data: func(t *testing.T) []byte { return ping(t, fx.revoked) },
			want: envelope.ErrUntrustedSender, alsoIs: pki.ErrRevoked, reason: "revoked", text: "certificate revoked",
		},
		{
			name: "relayed: a site's envelope arriving on another site's subject",
			from: "site-3",
			data: func(t *testing.T) []byte { return ping(t, fx.site2) },
			want: envelope.ErrSenderMismatch, reason: "sender_mismatch", text: `arrived on "site-3"'s subject`,
		},
		{
			name: "header sender differs from certificate CN",
			from: "site-3",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.Sender = "site-3" }),
			want: envelope.ErrSenderMismatch, reason: "sender_mismatch",
			text: `header names sender "site-3", certificate is "site-2"'s`,
		},
		{
			name: "attached certificate is not the one the header names",
			data: func(t *testing.T) []byte {
				return tamper(t, ping(t, fx.site2), func(env *hearthv1.Envelope) { env.SenderCert = fx.server.Certificate().Raw })
			},
			want: envelope.ErrSenderMismatch, reason: "sender_mismatch", text: "not the one the header names",
		},
		{
			name: "wrong recipient",
			data: func(t *testing.T) []byte {
				return mustSign(t, fx.site2, envelope.Outgoing{Recipient: "site-3", Body: &hearthv1.Ping{}}, t0)
			},
			want: envelope.ErrWrongRecipient, reason: "wrong_recipient", text: `addressed to "site-3", this is "site-1"`,
		},
		{
			name: "admin-only type from a site",
			data: func(t *testing.T) []byte {
				return mustSign(t, fx.site2, envelope.Outgoing{Recipient: self, Body: &hearthv1.Notice{Text: "x"}}, t0)
			},
			want: envelope.ErrTypeNotAllowed, reason: "type_not_allowed", text: "site senders may not send hearth.v1.Notice",
		},
		{
			name: "unknown type",
			data: func(t *testing.T) []byte {
				return mustSign(t, fx.site2, envelope.Outgoing{Recipient: self, Body: wrapperspb.String("x")}, t0)
			},
			want: envelope.ErrUnknownType, reason: "unknown_type", text: `"google.protobuf.StringValue" is not registered`,
		},
		{
			name: "sent too long ago",
			data: func(t *testing.T) []byte { return sentAt(t, fx.site2, t0.Add(-envelope.DefaultWindow-time.Nanosecond)) },
			want: envelope.ErrOutsideWindow, reason: "outside_window", text: "sent 2m0.000000001s ago, window 2m0s",
		},
		{
			name: "sent too far in the future",
			data: func(t *testing.T) []byte { return sentAt(t, fx.site2, t0.Add(time.Hour)) },
			want: envelope.ErrOutsideWindow, reason: "outside_window", text: "sent 1h0m0s in the future",
		},
		{
			name: "sent just past the future skew, well inside the past window",
			data: func(t *testing.T) []byte {
				return sentAt(t, fx.site2, t0.Add(envelope.DefaultFutureSkew+time.Nanosecond))
			},
			want: envelope.ErrOutsideWindow, reason: "outside_window", text: "sent 10.000000001s in the future, allowed skew 10s",
		},
		{
			name: "arrived on a subject token that names no participant",
			from: "site 2\n",
			data: func(t *testing.T) []byte { return ping(t, fx.site2) },
			want: envelope.ErrSenderMismatch, reason: "sender_mismatch", text: "names no participant",
		},
		{
			name: "sent at the extreme of int64",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.SentUnixNano = -1 << 63 }),
			want: envelope.ErrOutsideWindow, reason: "outside_window", text: "ago",
		},
		{
			name: "oversize",
			data: func(t *testing.T) []byte {
				return mustSign(t, fx.site2, envelope.Outgoing{Recipient: self, Body: &hearthv1.Ping{Payload: make([]byte, envelope.DefaultMaxSize)}}, t0)
			},
			want: envelope.ErrTooLarge, reason: "too_large", text: "limit 1048576",
		},
		{
			name:  "oversize under a smaller limit",
			data:  func(t *testing.T) []byte { return ping(t, fx.site2) },
			tweak: func(c *envelope.Config) { c.MaxSize = 100 },
			want:  envelope.ErrTooLarge, reason: "too_large", text: "limit 100",
		},
		{
			name: "garbage bytes",
			data: func(*testing.T) []byte { return bytes.Repeat([]byte{0xff}, 64) },
			want: envelope.ErrMalformed, reason: "malformed", text: "envelope refused: malformed envelope: envelope does not parse",
		},
		{
			name: "empty input",
			data: func(*testing.T) []byte { return nil },
			want: envelope.ErrMalformed, reason: "malformed", text: "malformed envelope: empty",
		},
		{
			name: "header does not parse",
			data: func(t *testing.T) []byte {
				return tamper(t, ping(t, fx.site2), func(env *hearthv1.Envelope) { env.Header = []byte{0xff} })
			},
			want: envelope.ErrMalformed, reason: "malformed", text: "header does not parse",
		},
		{
			name: "message id not 32 hex digits",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.Id = "not-an-id" }),
			want: envelope.ErrMalformed, reason: "malformed", text: `message id "not-an-id"`,
		},
		{
			name: "no message type",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.MessageType = "" }),
			want: envelope.ErrMalformed, reason: "malformed", text: "not a protobuf message name",
		},
		{
			name: "no recipient",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.Recipient = "" }),
			want: envelope.ErrMalformed, reason: "malformed", text: "recipient",
		},
		{
			name: "kind unspecified",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.Kind = hearthv1.Header_KIND_UNSPECIFIED }),
			want: envelope.ErrMalformed, reason: "malformed", text: "kind KIND_UNSPECIFIED",
		},
		{
			name: "body encoding unspecified",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) {
				h.BodyEncoding = hearthv1.BodyEncoding_BODY_ENCODING_UNSPECIFIED
			}),
			want: envelope.ErrMalformed, reason: "malformed", text: "body encoding",
		},
		{
			name: "error kind without a Failure body",
			data: withHeader(func(h *hearthv1.Header, _ *hearthv1.Envelope) { h.Kind = hearthv1.Header_KIND_ERROR }),
			want: envelope.ErrMalformed, reason: "malformed", text: "KIND_ERROR message carries hearth.v1.Failure",
		},
		{
			name: "no signature",
			data: func(t *testing.T) []byte {
				return tamper(t, ping(t, fx.site2), func(env *hearthv1.Envelope) { env.Signature = nil })
			},
			want: envelope.ErrMalformed, reason: "malformed", text: "signature is 0 bytes",
		},
		{
			name: "sender certificate does not parse",
			data: withHeader(func(h *hearthv1.Header, env *hearthv1.Envelope) {
				env.SenderCert = []byte("not a certificate")
				sum := sha256.Sum256(env.SenderCert)
				h.SenderCertSha256 = sum[:]
			}),
			want: envelope.ErrMalformed, reason: "malformed", text: "sender certificate does not parse",
		},
		{
			name: "signed body that does not decode as its type",
			data: withHeader(func(_ *hearthv1.Header, env *hearthv1.Envelope) { env.Body = []byte{0x0a, 0xff} }),
			want: envelope.ErrMalformed, reason: "malformed", text: "body does not decode as hearth.v1.Ping",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := tt.from
			if from == "" {
				from = "site-2"
			}
			m, err := fx.verifier(t, newClock(), tt.tweak).Open(from, tt.data(t))
			if err == nil {
				t.Fatalf("Open accepted %v", m.Header)
			}
			if m != nil {
				t.Errorf("Open returned a message with its error")
			}
			var re *envelope.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %T (%v), want *RefusedError", err, err)
			}
			if !errors.Is(err, tt.want) || re.Reason != tt.want {
				t.Errorf("error %q: want reason %q", err, tt.want)
			}
			if tt.alsoIs != nil && !errors.Is(err, tt.alsoIs) {
				t.Errorf("error %q: want it to wrap %q", err, tt.alsoIs)
			}
			if got := envelope.Reason(err); got != tt.reason {
				t.Errorf("Reason = %q, want %q", got, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q: want it to contain %q", err, tt.text)
			}
		})
	}
}
