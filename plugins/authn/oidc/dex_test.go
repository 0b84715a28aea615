package oidc

// Against a real provider: Dex on loopback (HTTPS), whose LDAP connector
// logs people in against a real slapd and takes their groups from its
// groupOfNames entries. The console's side (PasswordGrant, Refresh)
// obtains the tokens; the authenticator verifies them through Dex's
// discovery document and key set.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/authntest"
)

// people is the directory behind Dex: alice leads, bob is a member,
// carol is in no group a site maps. Dex reaches it over ldaps.
var people = authntest.Directory{
	TLS: true,
	People: []authntest.Person{
		{UID: "alice", Password: "alice-pw", Email: "alice@hospital-a.example"},
		{UID: "bob", Password: "bob-pw", Email: "bob@hospital-a.example"},
		{UID: "carol", Password: "carol-pw", Email: "carol@hospital-a.example"},
	},
	Groups: []authntest.Group{
		{Name: "fl-leads", Members: []string{"alice"}},
		{Name: "fl-members", Members: []string{"alice", "bob"}},
		{Name: "staff", Members: []string{"carol"}},
	},
}

// startDex starts slapd with people and Dex on it.
func startDex(t *testing.T, expiry time.Duration) *authntest.Dex {
	t.Helper()
	dir := authntest.StartSlapd(t, people)
	return authntest.StartDex(t, authntest.DexConfig{Directory: dir, IDTokenExpiry: expiry})
}

// dexAuthenticator is a site's authenticator for d: the subject is the
// LDAP uid (Dex's preferred_username), leads and members mapped.
func dexAuthenticator(t *testing.T, d *authntest.Dex, tweak func(map[string]any)) *Authenticator {
	t.Helper()
	cfg := map[string]any{
		"issuer":        d.Issuer,
		"ca_pem":        string(d.CAPEM),
		"subject_claim": "preferred_username",
		"roles":         []map[string]string{{"group": "fl-leads", "role": "lead"}, {"group": "fl-members", "role": "member"}},
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

// tokenConfig is the console's view of d, asking for tokens for site.
func tokenConfig(d *authntest.Dex, site string) TokenConfig {
	return TokenConfig{Issuer: d.Issuer, ClientID: authntest.DexConsole, Audience: site, CA: d.CAPEM}
}

// login obtains a token for site as user with the password grant.
func login(t *testing.T, d *authntest.Dex, site, user, password string) *Token {
	t.Helper()
	tok, err := PasswordGrant(context.Background(), tokenConfig(d, site), user, password)
	if err != nil {
		t.Fatalf("password grant for %s at %s: %v", user, site, err)
	}
	return tok
}

// request is the question a site asks its authenticator for a command
// by name, with token attached.
func request(site, name, token string) authn.Request {
	r := authn.Request{Site: site, Command: authn.CommandSubmit, Requester: authn.Requester{Name: name, Org: "hospital-a", Role: "member"}}
	if token != "" {
		r.Credential = &authn.Credential{Kind: authn.CredentialToken, Secret: token}
	}
	return r
}

// TestDexTokens: what a site accepts and refuses of the tokens a real
// provider issues, and of tokens made to look like them.
func TestDexTokens(t *testing.T) {
	d := startDex(t, 0)
	site1 := dexAuthenticator(t, d, nil)
	site2 := dexAuthenticator(t, d, nil)

	alice := login(t, d, "site-1", "alice", "alice-pw")
	bob := login(t, d, "site-1", "bob", "bob-pw")
	carol := login(t, d, "site-1", "carol", "carol-pw")
	aliceAt2 := login(t, d, "site-2", "alice", "alice-pw")
	forged := forge(t, alice.IDToken)

	tests := []struct {
		name       string
		a          *Authenticator
		r          authn.Request
		wantRole   string // "" for a denial
		wantReason string // part of the denial's reason
	}{
		{name: "a lead at site-1", a: site1, r: request("site-1", "alice", alice.IDToken), wantRole: "lead"},
		{name: "a member at site-1", a: site1, r: request("site-1", "bob", bob.IDToken), wantRole: "member"},
		{name: "alice's site-2 token at site-2", a: site2, r: request("site-2", "alice", aliceAt2.IDToken), wantRole: "lead"},
		{name: "site-1's token at site-2 (another audience)", a: site2, r: request("site-2", "alice", alice.IDToken), wantReason: `is meant for ["site-1" "hearth-console"], not for "site-2"`},
		{name: "bob's token for alice's certificate", a: site1, r: request("site-1", "alice", bob.IDToken), wantReason: `preferred_username "bob" is not the certificate's name "alice"`},
		{name: "alice's token for mallory's certificate", a: site1, r: request("site-1", "mallory", alice.IDToken), wantReason: `"alice" is not the certificate's name "mallory"`},
		{name: "in no mapped group", a: site1, r: request("site-1", "carol", carol.IDToken), wantReason: `groups ["staff"] maps to a role`},
		{name: "no credential", a: site1, r: request("site-1", "alice", ""), wantReason: "no credential attached"},
		{name: "a password instead of a token", a: site1, r: passwordRequest("site-1", "alice", "alice-pw"), wantReason: `credential is a "password"`},
		{name: "forged: the right claims signed by another key", a: site1, r: request("site-1", "alice", forged), wantReason: "signature does not verify"},
		{name: "alg none", a: site1, r: request("site-1", "alice", algNone(t, alice.IDToken)), wantReason: "not a JWS signed with RS256 or ES256"},
		{name: "a tampered payload", a: site1, r: request("site-1", "mallory", tamper(t, alice.IDToken, "preferred_username", "mallory")), wantReason: "signature does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := tc.a.Authenticate(context.Background(), tc.r)
			if err != nil {
				t.Fatalf("could not decide: %v", err)
			}
			checkDecision(t, dec, tc.r, tc.wantRole, tc.wantReason)
		})
	}
}

// checkDecision checks dec against the wanted role or denial reason, and
// that it does not carry the request's secret.
func checkDecision(t *testing.T, dec authn.Decision, r authn.Request, wantRole, wantReason string) {
	t.Helper()
	t.Logf("authenticated %t, role %q: %s", dec.Authenticated, dec.Role, dec.Reason)
	if wantRole != "" {
		if !dec.Authenticated || dec.Role != wantRole {
			t.Fatalf("got %+v, want authenticated with role %q", dec, wantRole)
		}
	} else {
		if dec.Authenticated {
			t.Fatalf("authenticated (%+v), want a denial", dec)
		}
		if !strings.Contains(dec.Reason, wantReason) {
			t.Fatalf("denied with %q, want a reason containing %q", dec.Reason, wantReason)
		}
	}
	if r.Credential != nil && r.Credential.Secret != "" && strings.Contains(fmt.Sprint(dec), r.Credential.Secret) {
		t.Fatalf("the decision carries the credential: %+v", dec)
	}
}

func passwordRequest(site, name, password string) authn.Request {
	r := request(site, name, "")
	r.Credential = &authn.Credential{Kind: authn.CredentialPassword, User: name, Secret: password}
	return r
}

// forge signs the claims of real (a genuine token) with a key of its own,
// under the genuine token's key id: a token a site must refuse.
func forge(t *testing.T, real string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(real, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: jws.Signatures[0].Header.KeyID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// algNone is real's claims under {"alg":"none"} with an empty signature.
func algNone(t *testing.T, real string) string {
	t.Helper()
	parts := strings.Split(real, ".")
	if len(parts) != 3 {
		t.Fatalf("a JWS has 3 parts, this one %d", len(parts))
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

// tamper sets claim to value in real's payload and keeps its signature.
func tamper(t *testing.T, real, claim, value string) string {
	t.Helper()
	parts := strings.Split(real, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims[claim] = value
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestDexExpiry: a token past its expiry (plus the skew) is refused, and
// the console's refresh token obtains a new one that is accepted.
func TestDexExpiry(t *testing.T) {
	d := startDex(t, 2*time.Second)
	site1 := dexAuthenticator(t, d, func(c map[string]any) { c["skew"] = "1s" })
	tok := login(t, d, "site-1", "alice", "alice-pw")
	if !tok.ExpiresWithin(time.Now(), 3*time.Second) || tok.ExpiresWithin(time.Now(), -time.Minute) {
		t.Fatalf("token expires at %v, want about 2 s from now", tok.Expiry)
	}
	dec, err := site1.Authenticate(context.Background(), request("site-1", "alice", tok.IDToken))
	if err != nil || !dec.Authenticated {
		t.Fatalf("fresh token: %+v, %v; want authenticated", dec, err)
	}

	bustest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		dec, err := site1.Authenticate(context.Background(), request("site-1", "alice", tok.IDToken))
		switch {
		case err != nil:
			return fmt.Errorf("could not decide: %w", err)
		case dec.Authenticated:
			return fmt.Errorf("a token that expires at %v is still accepted at %v", tok.Expiry, time.Now())
		case !strings.Contains(dec.Reason, "the token expired at"):
			t.Fatalf("denied with %q, want expired", dec.Reason)
		}
		return nil
	})

	fresh, err := Refresh(context.Background(), tokenConfig(d, "site-1"), tok)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.IDToken == tok.IDToken || !fresh.Expiry.After(tok.Expiry) {
		t.Fatalf("refresh returned the old token (expiry %v, was %v)", fresh.Expiry, tok.Expiry)
	}
	dec, err = site1.Authenticate(context.Background(), request("site-1", "alice", fresh.IDToken))
	if err != nil || !dec.Authenticated || dec.Role != "lead" {
		t.Fatalf("refreshed token: %+v, %v; want authenticated as lead", dec, err)
	}
}

// TestDexConsole: the console's password grant and refresh refuse what
// they must.
func TestDexConsole(t *testing.T) {
	d := startDex(t, 0)
	ctx := context.Background()

	tests := []struct {
		name     string
		cfg      TokenConfig
		user, pw string
		refused  bool // the provider refused (ErrRefused); otherwise another error
	}{
		{name: "wrong password", cfg: tokenConfig(d, "site-1"), user: "alice", pw: "bob-pw", refused: true},
		{name: "unknown user", cfg: tokenConfig(d, "site-1"), user: "mallory", pw: "mallory-pw", refused: true},
		{name: "an audience that does not trust the console", cfg: tokenConfig(d, "site-9"), user: "alice", pw: "alice-pw", refused: true},
		{name: "a provider whose certificate is not trusted", cfg: TokenConfig{Issuer: d.Issuer, ClientID: authntest.DexConsole, Audience: "site-1"}, user: "alice", pw: "alice-pw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := PasswordGrant(ctx, tc.cfg, tc.user, tc.pw)
			if err == nil {
				t.Fatalf("got a token (%v), want an error", tok)
			}
			if errors.Is(err, ErrRefused) != tc.refused {
				t.Fatalf("error %v: refused %t, want %t", err, errors.Is(err, ErrRefused), tc.refused)
			}
			if strings.Contains(err.Error(), tc.pw) {
				t.Fatalf("the error names the password: %v", err)
			}
		})
	}

	t.Run("a refresh token that is not one", func(t *testing.T) {
		_, err := Refresh(ctx, tokenConfig(d, "site-1"), &Token{RefreshToken: "not-a-refresh-token"})
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("got %v, want a refusal", err)
		}
	})
	t.Run("the token prints no secret", func(t *testing.T) {
		tok := login(t, d, "site-1", "alice", "alice-pw")
		for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", *tok), fmt.Sprintf("%#v", tok)} {
			if strings.Contains(s, tok.IDToken) || strings.Contains(s, tok.RefreshToken) {
				t.Fatalf("printed %q", s)
			}
		}
	})
}

// TestDexDown: a provider that cannot be reached, or whose certificate
// is not trusted, leaves the site unable to decide: an error, not a
// denial of the token.
func TestDexDown(t *testing.T) {
	d := startDex(t, 0)
	tok := login(t, d, "site-1", "alice", "alice-pw")

	untrusting := dexAuthenticator(t, d, func(c map[string]any) { delete(c, "ca_pem") })
	if dec, err := untrusting.Authenticate(context.Background(), request("site-1", "alice", tok.IDToken)); err == nil {
		t.Fatalf("without the provider's CA: %+v, want could not decide", dec)
	}

	site1 := dexAuthenticator(t, d, nil)
	d.Stop()
	dec, err := site1.Authenticate(context.Background(), request("site-1", "alice", tok.IDToken))
	if err == nil {
		t.Fatalf("provider down: %+v, want could not decide", dec)
	}
	if strings.Contains(err.Error(), tok.IDToken) {
		t.Fatalf("the error carries the token: %v", err)
	}
}
