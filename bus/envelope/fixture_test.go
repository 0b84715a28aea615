package envelope_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// self is the participant whose verifier the tests drive.
const self = "site-1"

// fixture is a small project: a root CA, a trust that honours its CRL,
// signers of every kind, and a few bad ones.
type fixture struct {
	ca    *pki.CA
	trust *pki.Trust
	reg   *envelope.Registry
	allow envelope.AllowList

	server, site2, admin *envelope.Signer
	site2Key             ed25519.PrivateKey

	expired, notYet, revoked *envelope.Signer
	impostor                 *envelope.Signer // "site-2", issued by another CA
	impostorKey, otherKey    ed25519.PrivateKey

	// X25519 keys for sealed bodies: the recipient's and the hub's.
	self25519, hub25519 *ecdh.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ca, err := pki.NewCA("hearth-test", t0.Add(-72*time.Hour), 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{
		ca:    ca,
		trust: pki.NewTrust(ca.Cert),
		reg:   envelope.NewRegistry(&hearthv1.Ping{}, &hearthv1.Pong{}, &hearthv1.Notice{}, &hearthv1.Failure{}),
		allow: envelope.AllowList{
			pki.KindServer: {"hearth.v1.Ping", "hearth.v1.Pong", "hearth.v1.Notice", "hearth.v1.Failure"},
			pki.KindSite:   {"hearth.v1.Ping", "hearth.v1.Pong", "hearth.v1.Failure"},
			pki.KindAdmin:  {"hearth.v1.Ping", "hearth.v1.Notice"}, // Notice: admin (and server) only
		},
	}
	valid := [2]time.Time{t0.Add(-time.Hour), t0.Add(24 * time.Hour)}
	fx.server, _ = issue(t, ca, pki.Identity{Name: "server", Org: "hub-org", Kind: pki.KindServer}, valid)
	fx.site2, fx.site2Key = issue(t, ca, site("site-2"), valid)
	fx.admin, _ = issue(t, ca, pki.Identity{Name: "admin@a.org", Org: "org-a", Kind: pki.KindAdmin, Role: pki.RoleProjectAdmin}, valid)
	fx.expired, _ = issue(t, ca, site("site-old"), [2]time.Time{t0.Add(-48 * time.Hour), t0.Add(-time.Hour)})
	fx.notYet, _ = issue(t, ca, site("site-new"), [2]time.Time{t0.Add(time.Hour), t0.Add(48 * time.Hour)})
	fx.revoked, _ = issue(t, ca, site("site-gone"), valid)

	crl, err := ca.RevocationList([]pki.Revocation{{Serial: fx.revoked.Certificate().SerialNumber, Name: "site-gone", At: t0.Add(-time.Minute)}}, 1, t0.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.trust.SetCRL(crl); err != nil {
		t.Fatal(err)
	}

	other, err := pki.NewCA("other-project", t0.Add(-72*time.Hour), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fx.impostor, fx.impostorKey = issue(t, other, site("site-2"), valid)
	if fx.otherKey, err = pki.NewKey(); err != nil {
		t.Fatal(err)
	}
	if fx.self25519, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if fx.hub25519, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	return fx
}

func site(name string) pki.Identity {
	return pki.Identity{Name: name, Org: "org-" + name, Kind: pki.KindSite}
}

func issue(t testing.TB, ca *pki.CA, id pki.Identity, validity [2]time.Time) (*envelope.Signer, ed25519.PrivateKey) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.Template{Identity: id, PublicKey: key.Public(), NotBefore: validity[0], NotAfter: validity[1]})
	if err != nil {
		t.Fatal(err)
	}
	s, err := envelope.NewSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

// clock is an injectable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// verifier returns a verifier for self on clk; tweak may adjust the config.
func (fx *fixture) verifier(t testing.TB, clk *clock, tweak func(*envelope.Config)) *envelope.Verifier {
	t.Helper()
	cfg := envelope.Config{Self: self, Trust: fx.trust, Registry: fx.reg, Allow: fx.allow, Now: clk.Now}
	if tweak != nil {
		tweak(&cfg)
	}
	v, err := envelope.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ping is the usual test message: a Ping from s to self, sent at t0.
func ping(t testing.TB, s *envelope.Signer) []byte {
	t.Helper()
	return mustSign(t, s, envelope.Outgoing{Recipient: self, JobID: "job-1", Round: 3, Body: &hearthv1.Ping{Seq: 7, Text: "hello"}}, t0)
}

func mustSign(t testing.TB, s *envelope.Signer, m envelope.Outgoing, at time.Time) []byte {
	t.Helper()
	data, _, err := s.Sign(m, at)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tamper rewrites the envelope around data without signing again.
func tamper(t testing.TB, data []byte, f func(env *hearthv1.Envelope)) []byte {
	t.Helper()
	env := new(hearthv1.Envelope)
	if err := proto.Unmarshal(data, env); err != nil {
		t.Fatal(err)
	}
	f(env)
	out, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resign rewrites the header (and, through env, anything else) of data and
// signs the result again with key, as a sender holding key could.
func resign(t testing.TB, data []byte, key ed25519.PrivateKey, f func(h *hearthv1.Header, env *hearthv1.Envelope)) []byte {
	t.Helper()
	return tamper(t, data, func(env *hearthv1.Envelope) {
		h := new(hearthv1.Header)
		if err := proto.Unmarshal(env.Header, h); err != nil {
			t.Fatal(err)
		}
		f(h, env)
		hb, err := proto.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		env.Header = hb
		env.Signature = ed25519.Sign(key, signed(env.Header, env.Body))
	})
}

// signed spells out the signed bytes independently of the package, so the
// tests pin the wire format.
func signed(header, body []byte) []byte {
	out := []byte("hearth.envelope.v1\x00")
	out = binary.BigEndian.AppendUint32(out, uint32(len(header)))
	out = append(out, header...)
	return append(out, body...)
}

func headerOf(t testing.TB, data []byte) *hearthv1.Header {
	t.Helper()
	env := new(hearthv1.Envelope)
	if err := proto.Unmarshal(data, env); err != nil {
		t.Fatal(err)
	}
	h := new(hearthv1.Header)
	if err := proto.Unmarshal(env.Header, h); err != nil {
		t.Fatal(err)
	}
	return h
}
