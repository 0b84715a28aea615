package oidc

// Against a provider of the test's own (go-oidc's oidctest on an
// httptest TLS server): the claim checks that Dex's tokens never reach
// (Dex sets no nbf, signs only RS256, ...) and the provider's failures.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins/authn"
)

// fakeIdP is a provider on loopback whose keys and answers the test
// controls.
type fakeIdP struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	kid   string
	caPEM string

	mu       sync.Mutex
	override map[string]http.HandlerFunc // by path: a failure to serve instead
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdP{key: key, kid: "key-1", override: map[string]http.HandlerFunc{}}
	idp := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: f.kid, Algorithm: "RS256"}}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		h := f.override[r.URL.Path]
		f.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		idp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	idp.SetIssuer(f.srv.URL)
	f.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}))
	return f
}

// serve makes path answer with h (nil: normally again).
func (f *fakeIdP) serve(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.override[path] = h
}

// claims are a valid token's claims for alice at site-1, changed by edit.
func (f *fakeIdP) claims(edit func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": f.srv.URL, "aud": []string{"site-1"}, "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"email": "alice@hospital-a.example", "email_verified": true,
		"groups": []string{"fl-leads"},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// sign signs claims with the provider's key.
func (f *fakeIdP) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return oidctest.SignIDToken(f.key, f.kid, "RS256", string(b))
}

// authenticator is a site's authenticator for f; tweak edits its config.
func (f *fakeIdP) authenticator(t *testing.T, tweak func(map[string]any)) *Authenticator {
	t.Helper()
	cfg := map[string]any{
		"issuer": f.srv.URL,
		"ca_pem": f.caPEM,
		"roles":  []map[string]string{{"group": "fl-leads", "role": "lead"}, {"group": "fl-members", "role": "member"}},
	}
	if tweak != nil {
		tweak(cfg)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := New()
	if err := a.Configure(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthenticateClaims(t *testing.T) {
	f := newFakeIdP(t)
	plain := f.authenticator(t, nil)
	edited := func(edit func(map[string]any)) string { return f.sign(t, f.claims(edit)) }
	in := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }

	tests := []struct {
		name       string
		a          *Authenticator // nil: plain
		r          authn.Request
		wantRole   string
		wantReason string
	}{
		{name: "valid", r: request("site-1", "alice", edited(nil)), wantRole: "lead"},
		{name: "the first mapping in the config wins, not the token's order", r: request("site-1", "alice", edited(func(c map[string]any) {
			c["groups"] = []string{"fl-members", "fl-leads"}
		})), wantRole: "lead"},
		{name: "aud as one string", r: request("site-1", "alice", edited(func(c map[string]any) { c["aud"] = "site-1" })), wantRole: "lead"},
		{name: "another audience", r: request("site-1", "alice", edited(func(c map[string]any) { c["aud"] = []string{"site-2"} })), wantReason: `meant for ["site-2"], not for "site-1"`},
		{name: "the audience is the site deciding", r: request("site-2", "alice", edited(nil)), wantReason: `not for "site-2"`},
		{name: "a configured audience", a: f.authenticator(t, func(c map[string]any) { c["audience"] = "hearth-site-1" }),
			r: request("site-1", "alice", edited(func(c map[string]any) { c["aud"] = "hearth-site-1" })), wantRole: "lead"},
		{name: "a configured audience, not the site's name", a: f.authenticator(t, func(c map[string]any) { c["audience"] = "hearth-site-1" }),
			r: request("site-1", "alice", edited(nil)), wantReason: `not for "hearth-site-1"`},
		{name: "another issuer", r: request("site-1", "alice", edited(func(c map[string]any) { c["iss"] = "https://idp.evil.example" })), wantReason: "issued by a different provider"},

		{name: "expired an hour ago", r: request("site-1", "alice", edited(func(c map[string]any) { c["exp"] = in(-time.Hour) })), wantReason: "the token expired at"},
		{name: "expired within the skew", r: request("site-1", "alice", edited(func(c map[string]any) { c["exp"] = in(-10 * time.Second) })), wantRole: "lead"},
		{name: "expired, no skew", a: f.authenticator(t, func(c map[string]any) { c["skew"] = "0s" }),
			r: request("site-1", "alice", edited(func(c map[string]any) { c["exp"] = in(-2 * time.Second) })), wantReason: "the token expired at"},
		{name: "no exp", r: request("site-1", "alice", edited(func(c map[string]any) { delete(c, "exp") })), wantReason: "no exp"},
		{name: "exp not a number", r: request("site-1", "alice", edited(func(c map[string]any) { c["exp"] = "tomorrow" })), wantReason: "failed to unmarshal claims"},
		{name: "nbf beyond any date", r: request("site-1", "alice", edited(func(c map[string]any) { c["nbf"] = 1e12 })), wantReason: "nbf claim is not a date"},
		{name: "not valid for an hour (nbf)", r: request("site-1", "alice", edited(func(c map[string]any) { c["nbf"] = in(time.Hour) })), wantReason: "is not valid before"},
		{name: "nbf within the skew", r: request("site-1", "alice", edited(func(c map[string]any) { c["nbf"] = in(10 * time.Second) })), wantRole: "lead"},
		{name: "nbf beyond a small skew", a: f.authenticator(t, func(c map[string]any) { c["skew"] = "5s" }),
			r: request("site-1", "alice", edited(func(c map[string]any) { c["nbf"] = in(time.Minute) })), wantReason: "is not valid before"},
		{name: "issued in the future (iat)", r: request("site-1", "alice", edited(func(c map[string]any) { c["iat"] = in(time.Hour) })), wantReason: "was issued at"},

		{name: "another subject", r: request("site-1", "alice", edited(func(c map[string]any) { c["sub"] = "bob" })), wantReason: `sub "bob" is not the certificate's name "alice"`},
		{name: "a subject that differs in case", r: request("site-1", "alice", edited(func(c map[string]any) { c["sub"] = "Alice" })), wantReason: "not the certificate's name"},
		{name: "a subject claim that is not a string", a: f.authenticator(t, func(c map[string]any) { c["subject_claim"] = "uid" }),
			r: request("site-1", "alice", edited(func(c map[string]any) { c["uid"] = []string{"alice"} })), wantReason: "uid claim is not a non-empty string"},
		{name: "no subject claim", a: f.authenticator(t, func(c map[string]any) { c["subject_claim"] = "preferred_username" }),
			r: request("site-1", "alice", edited(nil)), wantReason: "no preferred_username claim"},
		{name: "a hostile subject is quoted and bounded", r: request("site-1", "alice", edited(func(c map[string]any) { c["sub"] = "bob\nlevel=INFO msg=ok" + strings.Repeat("x", 500) })),
			wantReason: `sub "bob\nlevel=INFO msg=ok` + strings.Repeat("x", maxQuoted-len("bob\nlevel=INFO msg=ok")) + `..." is not`},
		{name: "a verified email as subject", a: f.authenticator(t, func(c map[string]any) { c["subject_claim"] = "email" }),
			r: request("site-1", "alice@hospital-a.example", edited(nil)), wantRole: "lead"},
		{name: "an unverified email as subject", a: f.authenticator(t, func(c map[string]any) { c["subject_claim"] = "email" }),
			r: request("site-1", "alice@hospital-a.example", edited(func(c map[string]any) { c["email_verified"] = false })), wantReason: "is not verified"},
		{name: "an email as subject without email_verified", a: f.authenticator(t, func(c map[string]any) { c["subject_claim"] = "email" }),
			r: request("site-1", "alice@hospital-a.example", edited(func(c map[string]any) { delete(c, "email_verified") })), wantReason: "is not verified"},

		{name: "no groups claim", r: request("site-1", "alice", edited(func(c map[string]any) { delete(c, "groups") })), wantReason: "groups [] maps to a role"},
		{name: "groups not a list", r: request("site-1", "alice", edited(func(c map[string]any) { c["groups"] = "fl-leads" })), wantReason: "groups claim is not a list"},
		{name: "groups holding a number", r: request("site-1", "alice", edited(func(c map[string]any) { c["groups"] = []any{"fl-leads", 7} })), wantReason: "other than strings"},
		{name: "too many groups", r: request("site-1", "alice", edited(func(c map[string]any) { c["groups"] = make([]string, MaxGroups+1) })), wantReason: "257 groups, more than 256"},
		{name: "a group too long", r: request("site-1", "alice", edited(func(c map[string]any) { c["groups"] = []string{strings.Repeat("g", 300)} })), wantReason: "longer than 256"},
		{name: "another groups claim", a: f.authenticator(t, func(c map[string]any) { c["groups_claim"] = "roles" }),
			r: request("site-1", "alice", edited(func(c map[string]any) { c["roles"] = []string{"fl-members"} })), wantRole: "member"},

		{name: "an empty token", r: request("site-1", "alice", ""), wantReason: "no credential"},
		{name: "an empty secret", r: authn.Request{Site: "site-1", Requester: authn.Requester{Name: "alice"}, Credential: &authn.Credential{Kind: authn.CredentialToken}}, wantReason: "the token is empty"},
		{name: "an oversized token", r: request("site-1", "alice", strings.Repeat("a", MaxTokenBytes+1)), wantReason: "more than 16384"},
		{name: "not a JWS", r: request("site-1", "alice", "hello"), wantReason: "not a JWS"},
		{name: "the JSON serialization", r: request("site-1", "alice", jsonSerialization(t, edited(nil))), wantReason: "not a JWS"},
		{name: "HS256 keyed with the provider's public key", r: request("site-1", "alice", hmacToken(t, f, f.claims(nil))), wantReason: `unexpected signature algorithm \"HS256\"`},
		{name: "RS256 where only ES256 is accepted", a: f.authenticator(t, func(c map[string]any) { c["algorithms"] = []string{"ES256"} }),
			r: request("site-1", "alice", edited(nil)), wantReason: "not a JWS signed with ES256"},
		{name: "signed by another key under the provider's key id", r: request("site-1", "alice", forge(t, edited(nil))), wantReason: "signature does not verify"},
		{name: "a key id the provider does not have", r: request("site-1", "alice", oidctest.SignIDToken(f.key, "key-9", "RS256", mustJSON(t, f.claims(nil)))), wantReason: "signature does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			if a == nil {
				a = plain
			}
			dec, err := a.Authenticate(context.Background(), tc.r)
			if err != nil {
				t.Fatalf("could not decide: %v", err)
			}
			checkDecision(t, dec, tc.r, tc.wantRole, tc.wantReason)
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsonSerialization re-encodes a compact JWS in the JWS JSON
// serialization, which a site must not take for a token.
func jsonSerialization(t *testing.T, compact string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.FullSerialize()
}

// hmacToken signs claims with HS256 keyed by the provider's public key
// (the algorithm confusion attack).
func hmacToken(t *testing.T, f *fakeIdP, claims map[string]any) string {
	t.Helper()
	pub, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: f.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(mustJSON(t, claims)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProviderFailures: a provider that fails, answers with too much, or
// hangs leaves the site unable to decide (an error), and the
// authenticator decides again once the provider is back.
func TestProviderFailures(t *testing.T) {
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down for maintenance", code) }
	}
	huge := func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"keys": [` + strings.Repeat(" ", maxResponseBytes) + `]}`))
	}
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	redirect := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://idp.evil.example/keys", http.StatusFound)
	}

	tests := []struct {
		name    string
		path    string // the path that fails
		h       http.HandlerFunc
		tweak   func(map[string]any)
		wantErr string
	}{
		{name: "discovery answers 503", path: "/.well-known/openid-configuration", h: status(503), wantErr: "503 Service Unavailable"},
		{name: "the keys answer 500", path: "/keys", h: status(500), wantErr: "500 Internal Server Error"},
		{name: "the keys are larger than a megabyte", path: "/keys", h: huge, wantErr: "response larger than"},
		{name: "the keys redirect elsewhere", path: "/keys", h: redirect, wantErr: "302 Found"},
		{name: "discovery hangs past the timeout", path: "/.well-known/openid-configuration", h: hang,
			tweak: func(c map[string]any) { c["timeout"] = "200ms" }, wantErr: "deadline exceeded"},
		{name: "the keys hang past the timeout", path: "/keys", h: hang,
			tweak: func(c map[string]any) { c["timeout"] = "200ms" }, wantErr: "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeIdP(t)
			a := f.authenticator(t, tc.tweak)
			tok := f.sign(t, f.claims(nil))
			f.serve(tc.path, tc.h)
			start := time.Now()
			dec, err := a.Authenticate(context.Background(), request("site-1", "alice", tok))
			if err == nil {
				t.Fatalf("decided %+v, want could not decide", dec)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatal("the error carries the token")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("took %v to give up", took)
			}
			// Back: the next calls decide. (go-oidc's key set may hand a
			// call made at once the failed fetch's result: poll.)
			f.serve(tc.path, nil)
			bustest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				dec, err := a.Authenticate(context.Background(), request("site-1", "alice", tok))
				if err != nil || !dec.Authenticated {
					return fmt.Errorf("provider back: %+v, %v; want authenticated", dec, err)
				}
				return nil
			})
		})
	}

	t.Run("the provider is gone", func(t *testing.T) {
		f := newFakeIdP(t)
		a := f.authenticator(t, nil)
		tok := f.sign(t, f.claims(nil))
		f.srv.Close()
		if dec, err := a.Authenticate(context.Background(), request("site-1", "alice", tok)); err == nil {
			t.Fatalf("decided %+v, want could not decide", dec)
		}
	})
	t.Run("new keys cannot be fetched", func(t *testing.T) {
		f := newFakeIdP(t)
		a := f.authenticator(t, nil)
		if dec, err := a.Authenticate(context.Background(), request("site-1", "alice", f.sign(t, f.claims(nil)))); err != nil || !dec.Authenticated {
			t.Fatalf("%+v, %v", dec, err)
		}
		// A token under a key id not yet seen makes the key set fetch
		// again: a failure then is the provider's, not the token's.
		f.serve("/keys", status(502))
		tok := oidctest.SignIDToken(f.key, "key-2", "RS256", mustJSON(t, f.claims(nil)))
		if dec, err := a.Authenticate(context.Background(), request("site-1", "alice", tok)); err == nil {
			t.Fatalf("decided %+v, want could not decide", dec)
		}
	})
	t.Run("the caller gives up", func(t *testing.T) {
		f := newFakeIdP(t)
		a := f.authenticator(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if dec, err := a.Authenticate(ctx, request("site-1", "alice", f.sign(t, f.claims(nil)))); err == nil {
			t.Fatalf("decided %+v, want could not decide", dec)
		}
	})
	t.Run("no audience at all", func(t *testing.T) {
		f := newFakeIdP(t)
		a := f.authenticator(t, nil)
		if dec, err := a.Authenticate(context.Background(), request("", "alice", f.sign(t, f.claims(nil)))); err == nil {
			t.Fatalf("decided %+v, want could not decide", dec)
		}
	})
}

// TestAuthenticateConcurrently: one authenticator serves many requests
// at once (run with -race).
func TestAuthenticateConcurrently(t *testing.T) {
	f := newFakeIdP(t)
	a := f.authenticator(t, nil)
	good, bad := f.sign(t, f.claims(nil)), f.sign(t, f.claims(func(c map[string]any) { c["sub"] = "bob" }))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, want := good, true
			if i%2 == 1 {
				tok, want = bad, false
			}
			for range 20 {
				dec, err := a.Authenticate(context.Background(), request("site-1", "alice", tok))
				if err != nil || dec.Authenticated != want {
					errs <- fmt.Errorf("goroutine %d: %+v, %v; want authenticated %t", i, dec, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
