package bridge_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/liveness"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// world is a hub and leaf nodes in this process, on loopback with real
// TLS, each participant with its own bridge and actor system.
type world struct {
	project *pkitest.Project
	hub     *bus.Hub
	parts   map[string]*member
	tweak   func(*envelope.Config) // adjusts every verifier; nil keeps the defaults
	// admit decides what a site's bridge admits from another site
	// (bridge.Config.Admit); nil admits nothing.
	admit func(to string, sender pki.Identity, messageType, jobID string) error
}

type member struct {
	part     *pkitest.Participant
	conn     *nats.Conn
	system   *actor.ActorSystem
	bridge   *bridge.Bridge
	signer   *envelope.Signer
	refusals chan error
	sealKey  *ecdh.PrivateKey // opens what is sealed to this member

	mu      sync.Mutex
	refused map[string]int // refusals by envelope.Reason
}

// refusedCount is how many envelopes m's bridge refused for reason.
func (m *member) refusedCount(reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused[reason]
}

func newWorld(t testing.TB, sites ...string) *world { return newWorldWith(t, nil, sites...) }

// newWorldWith is newWorld with every verifier's config adjusted by tweak.
func newWorldWith(t testing.TB, tweak func(*envelope.Config), sites ...string) *world {
	t.Helper()
	tp := bustest.NewTopology(t, sites...)
	w := &world{project: tp.Project, hub: tp.Hub, parts: map[string]*member{}, tweak: tweak}
	w.join(t, tp.Server, tp.HubConn(t))
	for _, s := range sites {
		_, nc := tp.JoinedLeaf(t, s)
		w.join(t, tp.Sites[s], nc)
	}
	// Every bridge must see every other before tests start: interest
	// propagates across leaf links asynchronously.
	for from, f := range w.parts {
		for to, m := range w.parts {
			if from != to && pki.MayAddress(f.part.Identity.Kind, m.part.Identity.Kind) && !pki.PeerToPeer(f.part.Identity.Kind, m.part.Identity.Kind) {
				w.ping(t, from, to)
			}
		}
	}
	return w
}

func (w *world) join(t testing.TB, part *pkitest.Participant, nc *nats.Conn) {
	t.Helper()
	signer, err := envelope.NewSigner(part.Cert, part.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := envelope.Config{Self: part.Identity.Name, Trust: w.project.Trust,
		Registry: protocol.Registry(), Allow: protocol.Allow(), MaxSize: 64 << 10}
	if w.tweak != nil {
		w.tweak(&cfg)
	}
	verifier, err := envelope.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sealKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{part: part, conn: nc, signer: signer, refusals: make(chan error, 16), refused: map[string]int{}, sealKey: sealKey}
	m.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard() }))
	name := part.Identity.Name
	m.bridge, err = bridge.Start(bridge.Config{Conn: nc, Signer: signer, Verifier: verifier, System: m.system,
		RequestTimeout: 2 * time.Second, SealKey: sealKey, Server: "server",
		Admit: func(sender pki.Identity, messageType, jobID string) error {
			if w.admit == nil {
				return errors.New("the test admits nothing")
			}
			return w.admit(name, sender, messageType, jobID)
		},
		OnRefused: func(_ string, err error) {
			m.mu.Lock()
			m.refused[envelope.Reason(err)]++
			m.mu.Unlock()
			select {
			case m.refusals <- err:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := &liveness.Responder{Self: part.Identity.Name, Log: discard()}
	pid := m.system.Root.Spawn(r.Props())
	m.bridge.Route(protocol.Name(&hearthv1.Ping{}), pid)
	t.Cleanup(func() { m.bridge.Close(); m.system.Shutdown(); nc.Close() })
	w.parts[part.Identity.Name] = m
}

// ping asks until the answer comes, so that interest has propagated.
func (w *world) ping(t testing.TB, from, to string) *bridge.Reply {
	t.Helper()
	var r *bridge.Reply
	bustest.CheckFor(t, 10*time.Second, 0, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var err error
		if r, err = w.parts[from].bridge.Request(ctx, to, &hearthv1.Ping{Seq: 7, Text: "hi"}); err != nil {
			return fmt.Errorf("%s -> %s: %w", from, to, err)
		}
		return nil
	})
	return r
}

func TestRequestResponseBetweenActorsAcrossHubAndLeaves(t *testing.T) {
	w := newWorld(t, "site-1", "site-2")
	for _, c := range []struct{ from, to string }{
		{"site-1", "server"}, {"server", "site-2"}, {"site-2", "server"}, {"server", "site-1"},
	} {
		r := w.ping(t, c.from, c.to)
		pong, ok := r.Msg.(*hearthv1.Pong)
		if !ok || pong.Responder != c.to || pong.Seq != 7 || r.From.Name != c.to {
			t.Fatalf("%s -> %s: reply %+v from %v", c.from, c.to, r.Msg, r.From)
		}
	}
}

// recorder is an actor that records what it receives, with its origin.
type recorder struct {
	mu   sync.Mutex
	got  []proto.Message
	from []bridge.Origin
	seen chan struct{}
}

func (r *recorder) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(proto.Message); ok {
		o, _ := bridge.OriginOf(ctx)
		r.mu.Lock()
		r.got = append(r.got, m)
		r.from = append(r.from, o)
		r.mu.Unlock()
		r.seen <- struct{}{}
	}
}

func TestOneWayMessageReachesTheRoutedActorWithItsOrigin(t *testing.T) {
	w := newWorld(t, "site-1")
	rec := &recorder{seen: make(chan struct{}, 8)}
	site := w.parts["site-1"]
	site.bridge.Route(protocol.Name(&hearthv1.Notice{}), site.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec })))
	server := w.parts["server"]
	server.system.Root.Send(server.bridge.PID(), &bridge.Send{To: "site-1", Msg: &hearthv1.Notice{Text: "round 3 starts"}, JobID: "job-9", Round: 3})
	select {
	case <-rec.seen:
	case <-time.After(5 * time.Second):
		t.Fatal("notice not delivered")
	}
	n := rec.got[0].(*hearthv1.Notice)
	o := rec.from[0]
	if n.Text != "round 3 starts" || o.Sender.Name != "server" || o.Sender.Kind != pki.KindServer || o.JobID != "job-9" || o.Round != 3 || !o.OneWay {
		t.Fatalf("got %v from %+v", n, o)
	}
}

// TestOneWayMessageAnswersGoNowhere: a handler that answers its sender,
// as request handlers do, from its own goroutine too, gets a sender for a
// one-way message (of a request's type, as a peer or a compromised server
// may send it) that drops the answer: no nil PID to panic on, and the
// handler goes on taking messages.
func TestOneWayMessageAnswersGoNowhere(t *testing.T) {
	w := newWorld(t, "site-1")
	site := w.parts["site-1"]
	answered := make(chan bridge.Origin, 4)
	handler := site.system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*hearthv1.Ping); !ok {
			return
		}
		o, _ := bridge.OriginOf(ctx)
		if ctx.Sender() == nil {
			t.Errorf("a one-way message reached its handler with no sender")
			return
		}
		ctx.Respond(&hearthv1.Pong{})
		reply, system := ctx.Sender(), ctx.ActorSystem()
		go func() {
			system.Root.Send(reply, &hearthv1.Pong{}) // as a handler's goroutine answers
			answered <- o
		}()
	}))
	site.bridge.Route(protocol.Name(&hearthv1.Ping{}), handler)
	server := w.parts["server"]
	for range 2 {
		server.system.Root.Send(server.bridge.PID(), &bridge.Send{To: "site-1", Msg: &hearthv1.Ping{}, JobID: "job-9", Round: 1})
		select {
		case o := <-answered:
			if !o.OneWay || o.Sender.Name != "server" {
				t.Fatalf("origin %+v, want one-way from the server", o)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the one-way ping was not handled")
		}
	}
	// A request still gets its answer, and is not marked one-way.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := server.bridge.Request(ctx, "site-1", &hearthv1.Ping{})
	if err != nil {
		t.Fatalf("request after one-way messages: %v", err)
	}
	if _, ok := res.Msg.(*hearthv1.Pong); !ok {
		t.Fatalf("answered %T", res.Msg)
	}
	if o := <-answered; o.OneWay {
		t.Fatalf("a request's origin says one-way: %+v", o)
	}
}

func TestRefusedEnvelopesNeverReachAnActor(t *testing.T) {
	w := newWorld(t, "site-1", "site-2")
	site1, site2, server := w.parts["site-1"], w.parts["site-2"], w.parts["server"]
	rec := &recorder{seen: make(chan struct{}, 64)}
	server.bridge.Route(protocol.Name(&hearthv1.Notice{}), server.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec })))
	rogue := w.project.Issue(t, "site-1", site1.part.Identity.Org, pki.KindSite) // another key

	sign := func(s *envelope.Signer, to string, msg proto.Message) []byte {
		data, _, err := s.Sign(envelope.Outgoing{Recipient: to, Body: msg}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	mutate := func(data []byte, f func(*hearthv1.Envelope)) []byte {
		var env hearthv1.Envelope
		if err := proto.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		f(&env)
		out, _ := proto.Marshal(&env)
		return out
	}
	genuine := sign(site1.signer, "server", &hearthv1.Ping{Seq: 1})
	if err := site1.conn.Publish(bus.Direct("server", "site-1"), genuine); err != nil {
		t.Fatal(err)
	}
	waitRefusalOrNone(t, server, nil) // the genuine one is answered, not refused

	cases := []struct {
		name string
		from *member
		data []byte
		want error
	}{
		{"tampered body", site1, mutate(sign(site1.signer, "server", &hearthv1.Ping{Seq: 2, Text: "abc"}), func(e *hearthv1.Envelope) { e.Body[len(e.Body)-1] ^= 1 }), envelope.ErrBadSignature},
		{"forged signature", site1, mutate(sign(site1.signer, "server", &hearthv1.Ping{Seq: 3}), func(e *hearthv1.Envelope) {
			// Signed by a key the certificate does not hold.
			e.Signature = ed25519.Sign(rogue.Key, append(append([]byte{}, e.Header...), e.Body...))
		}), envelope.ErrBadSignature},
		{"replayed envelope", site1, genuine, envelope.ErrReplay},
		{"message type not allowed for a site", site1, sign(site1.signer, "server", &hearthv1.Notice{Text: "sites may not send notices"}), envelope.ErrTypeNotAllowed},
		{"oversize message", site1, sign(site1.signer, "server", &hearthv1.Ping{Payload: make([]byte, 100<<10)}), envelope.ErrTooLarge},
		{"another site's envelope relayed on its own subject", site1, sign(site2.signer, "server", &hearthv1.Ping{Seq: 4}), envelope.ErrSenderMismatch},
		{"envelope for another recipient", site1, sign(site1.signer, "site-2", &hearthv1.Ping{Seq: 5}), envelope.ErrWrongRecipient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.from.conn.Publish(bus.Direct("server", tc.from.part.Identity.Name), tc.data); err != nil {
				t.Fatal(err)
			}
			waitRefusalOrNone(t, server, tc.want)
		})
	}
	select {
	case <-rec.seen:
		t.Fatalf("an actor received %v", rec.got)
	default:
	}
}

// waitRefusalOrNone waits for m's bridge to refuse an envelope with want,
// or, with want nil, checks that nothing was refused.
func waitRefusalOrNone(t *testing.T, m *member, want error) {
	t.Helper()
	if want == nil {
		select {
		case err := <-m.refusals:
			t.Fatalf("refused: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		return
	}
	select {
	case err := <-m.refusals:
		if !errors.Is(err, want) {
			t.Fatalf("refused with %v, want %v", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("not refused; want %v", want)
	}
}

func TestAskFailures(t *testing.T) {
	w := newWorld(t, "site-1")
	site := w.parts["site-1"]
	ctx := context.Background()

	// No actor handles Pong at the server: it answers no_handler.
	_, err := site.bridge.Request(ctx, "server", &hearthv1.Pong{})
	var remote *bridge.RemoteError
	if !errors.As(err, &remote) || remote.Code != hearthv1.FailureCode_FAILURE_CODE_NO_HANDLER ||
		!strings.Contains(err.Error(), "server answered no_handler: no handler for") {
		t.Fatalf("unrouted type: %v, want a no_handler failure", err)
	}
	// Nobody is there to answer.
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := w.parts["server"].bridge.Request(tctx, "site-9", &hearthv1.Ping{}); !errors.Is(err, bridge.ErrTimeout) {
		t.Fatalf("absent recipient: %v, want timeout", err)
	}
}

// TestSitesHearSitesOnlyWhenAdmitted: an envelope from one site to another
// (swarm learning) must be sealed (an unsealed one is refused at the
// sender), and reaches an actor only when the recipient's rule admits it
// and it opens with the recipient's key; every other is refused with its
// reason, before any actor sees it.
func TestSitesHearSitesOnlyWhenAdmitted(t *testing.T) {
	w := newWorld(t, "site-1", "site-2")
	w.admit = func(_ string, sender pki.Identity, messageType, jobID string) error {
		if jobID != "job-000000000001" || sender.Name != "site-1" {
			return fmt.Errorf("%s is in no job %q here", sender.Name, jobID)
		}
		return nil
	}
	site1, site2 := w.parts["site-1"], w.parts["site-2"]
	rec := &recorder{seen: make(chan struct{}, 8)}
	site2.bridge.Route(protocol.Name(&hearthv1.SwarmReceived{}), site2.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec })))
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	send := func(job string, round int64, sealTo *ecdh.PublicKey) {
		site1.system.Root.Send(site1.bridge.PID(), &bridge.Send{To: "site-2", Msg: &hearthv1.SwarmReceived{JobId: job, Round: round},
			JobID: job, Round: round, SealTo: sealTo})
	}
	waitRefused := func(reason string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for site2.refusedCount(reason) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("site-2 refused %v, want a %s refusal", site2.refused, reason)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send("job-00000000000f", 1, site2.sealKey.PublicKey()) // a job the rule does not admit
	waitRefused("not_admitted")
	send("job-000000000001", 2, other.PublicKey()) // sealed to another key
	waitRefused("unseal_failed")
	// Unsealed, a site's envelope to a site is refused where it is sent.
	res, err := site1.system.Root.RequestFuture(site1.bridge.PID(), &bridge.Ask{To: "site-2", Msg: &hearthv1.SwarmReceived{JobId: "job-000000000001"},
		JobID: "job-000000000001", Timeout: time.Second}, 2*time.Second).Result()
	if f, ok := res.(*bridge.Failed); err != nil || !ok || !strings.Contains(f.Err.Error(), "must be sealed") {
		t.Fatalf("an unsealed ask to a site: %v %v, want it refused at the sender", res, err)
	}
	send("job-000000000001", 3, site2.sealKey.PublicKey())
	send("job-000000000001", 4, site2.sealKey.PublicKey())
	for range 2 {
		select {
		case <-rec.seen:
		case <-time.After(5 * time.Second):
			t.Fatal("the admitted envelopes were not delivered")
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 2 {
		t.Fatalf("delivered %d envelopes, want the 2 admitted", len(rec.got))
	}
	for i, want := range []struct {
		round  int64
		sealed bool
	}{{3, true}, {4, true}} {
		got, o := rec.got[i].(*hearthv1.SwarmReceived), rec.from[i]
		if got.Round != want.round || o.Sealed != want.sealed || o.Sender.Name != "site-1" {
			t.Errorf("delivery %d: round %d sealed %v from %s, want round %d sealed %v from site-1", i, got.Round, o.Sealed, o.Sender.Name, want.round, want.sealed)
		}
	}
}

// TestFailureCodesPrintReadably: a failure code prints as its name; one
// from a newer peer, unknown here, survives decoding and prints as its
// number.
func TestFailureCodesPrintReadably(t *testing.T) {
	tests := []struct {
		name string
		code hearthv1.FailureCode
		want string
	}{
		{"unspecified", hearthv1.FailureCode_FAILURE_CODE_UNSPECIFIED, "unspecified"},
		{"one word", hearthv1.FailureCode_FAILURE_CODE_REFUSED, "refused"},
		{"two words", hearthv1.FailureCode_FAILURE_CODE_NO_HANDLER, "no_handler"},
		{"from a newer peer", hearthv1.FailureCode(4242), "4242"},
		{"negative", hearthv1.FailureCode(-3), "-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := proto.Marshal(&hearthv1.Failure{Kind: tc.code, Message: "why"})
			if err != nil {
				t.Fatal(err)
			}
			var f hearthv1.Failure
			if err := proto.Unmarshal(wire, &f); err != nil {
				t.Fatal(err)
			}
			if got := bridge.CodeName(f.Kind); got != tc.want {
				t.Fatalf("CodeName(%d) = %q, want %q", int32(f.Kind), got, tc.want)
			}
			e := &bridge.RemoteError{From: "site-1", Code: f.Kind, Message: f.Message}
			if want := "site-1 answered " + tc.want + ": why"; e.Error() != want {
				t.Fatalf("Error() = %q, want %q", e.Error(), want)
			}
		})
	}
	// Every code this build knows has a name of its own.
	seen := map[string]bool{}
	for n := range hearthv1.FailureCode_name {
		name := bridge.CodeName(hearthv1.FailureCode(n))
		if seen[name] || strings.ToLower(name) != name {
			t.Fatalf("code %d: name %q twice or not lower case", n, name)
		}
		seen[name] = true
	}
}

// slowResponder answers each request after delay.
type slowResponder struct{ delay time.Duration }

func (s *slowResponder) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*hearthv1.Ping); ok {
		reply, system := ctx.Sender(), ctx.ActorSystem()
		answer := func() { system.Root.Send(reply, &hearthv1.Pong{Responder: "server"}) }
		if s.delay == 0 {
			answer()
			return
		}
		time.AfterFunc(s.delay, answer)
	}
}

// asker sends one Ask on start and records every answer it gets.
type asker struct {
	bridge  *actor.PID
	timeout time.Duration
	got     chan any
}

func (a *asker) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(a.bridge, &bridge.Ask{To: "server", Msg: &hearthv1.Ping{Seq: 1}, Timeout: a.timeout})
	case *bridge.Reply, *bridge.Failed:
		a.got <- m
	}
}

// TestLateResponsesAreDropped: a request gets exactly one answer: a
// response that comes after the asker's timeout reaches no actor (the
// request is no longer pending), so a workflow never sees a reply to a
// question it stopped waiting for.
func TestLateResponsesAreDropped(t *testing.T) {
	w := newWorld(t, "site-1")
	server, site := w.parts["server"], w.parts["site-1"]
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		timeout time.Duration
		want    string
	}{
		{"answered in time", 0, 2 * time.Second, "reply"},
		{"answered after the timeout", 400 * time.Millisecond, 150 * time.Millisecond, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server.bridge.Route(protocol.Name(&hearthv1.Ping{}), server.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &slowResponder{delay: tc.delay} })))
			a := &asker{bridge: site.bridge.PID(), timeout: tc.timeout, got: make(chan any, 8)}
			site.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
			var first any
			select {
			case first = <-a.got:
			case <-time.After(5 * time.Second):
				t.Fatal("no answer")
			}
			switch f := first.(type) {
			case *bridge.Reply:
				if tc.want != "reply" {
					t.Fatalf("got a reply, want %s", tc.want)
				}
			case *bridge.Failed:
				if tc.want != "timeout" || !errors.Is(f.Err, bridge.ErrTimeout) {
					t.Fatalf("got %v, want %s", f.Err, tc.want)
				}
			}
			select {
			case second := <-a.got:
				t.Fatalf("a second answer reached the asker: %v", second)
			case <-time.After(tc.delay + 500*time.Millisecond):
			}
		})
	}
}
