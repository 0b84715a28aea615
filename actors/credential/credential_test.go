package credential_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func newKey(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The requester's certificate key, and another's (the server's, say).
var (
	adminPub, adminKey, _ = ed25519.GenerateKey(rand.Reader)
	_, otherKey, _        = ed25519.GenerateKey(rand.Reader)
)

var (
	secret  = authn.Credential{Kind: authn.CredentialPassword, User: "lead@a", Secret: "s3cret"}
	binding = credential.Binding{Site: "site-1", Command: authn.CommandSubmit, Requester: "lead@a", JobHash: []byte("hash-of-job-one")}
)

func TestOpenAcceptsTheBoundCommandOnce(t *testing.T) {
	key := newKey(t)
	o := credential.NewOpener("site-1", key)
	now := time.Now()
	sc, err := credential.Seal(o.Public(), secret, binding, adminKey, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Open(sc, binding, adminPub, now)
	if err != nil || *got != secret {
		t.Fatalf("Open = %+v, %v; want the credential", got, err)
	}
	if _, err := o.Open(sc, binding, adminPub, now); !errors.Is(err, credential.ErrReplayed) {
		t.Fatalf("a second Open = %v, want ErrReplayed", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	key := newKey(t)
	now := time.Now()
	sealed := func(t *testing.T, b credential.Binding) *hearthv1.SealedCredential {
		sc, err := credential.Seal(key.PublicKey(), secret, b, adminKey, now, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	// handMade seals a Credential the console's Seal would not make.
	handMade := func(t *testing.T, c *hearthv1.Credential) *hearthv1.SealedCredential {
		body, _ := proto.Marshal(c)
		signed, _ := proto.Marshal(&hearthv1.SignedCredential{Credential: body, Signature: ed25519.Sign(adminKey, append([]byte("hearth.credential.v1\x00"), body...))})
		sb, err := envelope.Seal([]byte("hearth.credential.v1"), signed, key.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return &hearthv1.SealedCredential{Site: "site-1", Sealed: sb}
	}
	valid := func() *hearthv1.Credential {
		return &hearthv1.Credential{Kind: "password", Secret: "x", Site: "site-1", Command: "submit", Requester: "lead@a",
			JobSha256: binding.JobHash, CommandId: make([]byte, 16), NotAfterUnixNano: now.Add(time.Minute).UnixNano()}
	}
	moved := binding
	moved.JobHash = []byte("hash-of-job-two")
	other := binding
	other.Requester = "mallory@b"
	abort := binding
	abort.Command, abort.JobHash, abort.JobID = authn.CommandAbort, nil, "job-0123456789ab"
	for _, tc := range []struct {
		name string
		sc   func(t *testing.T) *hearthv1.SealedCredential
		want credential.Binding
		at   time.Time
		err  error
	}{
		{"none attached", func(*testing.T) *hearthv1.SealedCredential { return nil }, binding, now, credential.ErrNone},
		{"moved onto another job", func(t *testing.T) *hearthv1.SealedCredential { return sealed(t, binding) }, moved, now, credential.ErrMisbound},
		{"presented for another requester", func(t *testing.T) *hearthv1.SealedCredential { return sealed(t, binding) }, other, now, credential.ErrMisbound},
		{"presented for another command", func(t *testing.T) *hearthv1.SealedCredential { return sealed(t, binding) }, abort, now, credential.ErrMisbound},
		{"sealed for another site", func(t *testing.T) *hearthv1.SealedCredential {
			b := binding
			b.Site = "site-2"
			return sealed(t, b)
		}, binding, now, credential.ErrMisbound},
		{"relabelled for this site", func(t *testing.T) *hearthv1.SealedCredential {
			b := binding
			b.Site = "site-2"
			sc := sealed(t, b)
			sc.Site = "site-1"
			return sc
		}, binding, now, credential.ErrMisbound},
		{"expired", func(t *testing.T) *hearthv1.SealedCredential { return sealed(t, binding) }, binding, now.Add(2 * time.Minute), credential.ErrExpired},
		{"valid for too long", func(t *testing.T) *hearthv1.SealedCredential {
			c := valid()
			c.NotAfterUnixNano = now.Add(time.Hour).UnixNano()
			return handMade(t, c)
		}, binding, now, credential.ErrExpired},
		{"sealed to another key (the site restarted)", func(t *testing.T) *hearthv1.SealedCredential {
			sc, err := credential.Seal(newKey(t).PublicKey(), secret, binding, adminKey, now, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return sc
		}, binding, now, credential.ErrInvalid},
		{"ciphertext altered", func(t *testing.T) *hearthv1.SealedCredential {
			sc := sealed(t, binding)
			sc.Sealed.Ciphertext[0] ^= 1
			return sc
		}, binding, now, credential.ErrInvalid},
		{"oversized", func(t *testing.T) *hearthv1.SealedCredential {
			sc := sealed(t, binding)
			sc.Sealed.Ciphertext = make([]byte, credential.MaxSealed+1)
			return sc
		}, binding, now, credential.ErrInvalid},
		{"an unknown kind", func(t *testing.T) *hearthv1.SealedCredential {
			c := valid()
			c.Kind = "cookie"
			return handMade(t, c)
		}, binding, now, credential.ErrInvalid},
		{"made by another than the requester (the server trying passwords)", func(t *testing.T) *hearthv1.SealedCredential {
			sc, err := credential.Seal(key.PublicKey(), secret, binding, otherKey, now, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return sc
		}, binding, now, credential.ErrNotTheRequesters},
		{"no command id", func(t *testing.T) *hearthv1.SealedCredential {
			c := valid()
			c.CommandId = nil
			return handMade(t, c)
		}, binding, now, credential.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := credential.NewOpener("site-1", key)
			got, err := o.Open(tc.sc(t), tc.want, adminPub, tc.at)
			if !errors.Is(err, tc.err) || got != nil {
				t.Fatalf("Open = %+v, %v; want %v", got, err, tc.err)
			}
		})
	}
}

func TestARefusalDoesNotBurnTheCommandID(t *testing.T) {
	key := newKey(t)
	o := credential.NewOpener("site-1", key)
	now := time.Now()
	sc, err := credential.Seal(o.Public(), secret, binding, adminKey, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	moved := binding
	moved.JobHash = []byte("another")
	if _, err := o.Open(sc, moved, adminPub, now); !errors.Is(err, credential.ErrMisbound) {
		t.Fatalf("Open(moved) = %v", err)
	}
	if _, err := o.Open(sc, binding, adminPub, now); err != nil {
		t.Fatalf("Open after a refusal = %v, want the credential", err)
	}
}

func TestSealRefusesWhatNoSiteWouldOpen(t *testing.T) {
	pub := newKey(t).PublicKey()
	now := time.Now()
	for _, tc := range []struct {
		name     string
		c        authn.Credential
		lifetime time.Duration
	}{
		{"no secret", authn.Credential{Kind: authn.CredentialToken}, time.Minute},
		{"a secret too long", authn.Credential{Kind: authn.CredentialToken, Secret: string(make([]byte, credential.MaxSecret+1))}, time.Minute},
		{"an unknown kind", authn.Credential{Kind: "cookie", Secret: "x"}, time.Minute},
		{"valid for too long", secret, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := credential.Seal(pub, tc.c, binding, adminKey, now, tc.lifetime); err == nil {
				t.Fatal("sealed")
			}
		})
	}
}
