// Package oidc is the OpenID Connect authenticator: a site accepts an
// admin command when its requester attached an ID token, issued by the
// site's own provider for this site, whose subject is the requester's
// certificate name and whose groups map to a local role.
//
// Configure takes the site's Config (JSON, parsed strictly). The
// provider's discovery document and key set (JWKS) are fetched on the
// first Authenticate, through a client with timeouts, no redirects and
// bounded responses, and the keys are refreshed by go-oidc's remote key
// set when a token names a key not yet seen.
//
// Authenticate checks, in this order, and denies at the first that
// fails: a credential is attached; it is a token (not a password) of at
// most MaxTokenBytes, in the JWS compact form, signed with one of the
// configured algorithms ("none" never); its signature verifies with the
// provider's keys; "iss" is the issuer; "aud" contains the audience (the
// site's name by default); "exp" is present and not past, "nbf" and
// "iat" are not in the future, each within the skew; the subject claim
// is a string equal to the certificate's name (and, for "email",
// "email_verified" is true); the groups claim is a list of at most
// MaxGroups strings; a group maps to a role. A provider that cannot be
// reached, or answers badly, is an error (could not decide), never a
// denial of the token.
//
// The token is never logged nor returned: reasons quote only bounded
// claim values. PasswordGrant and Refresh (token.go) are the console's
// side: they obtain the tokens that a site here verifies.
package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/plugins/authn"
)

// Bounds on what a token may carry.
const (
	MaxTokenBytes = 16 << 10 // a signed ID token is one to a few kilobytes
	MaxGroups     = 256
	maxGroupBytes = 256
	// maxQuoted bounds a claim value or an error text quoted in a reason.
	maxQuoted = 120
)

var _ authn.Authenticator = (*Authenticator)(nil)

// Authenticator verifies OIDC ID tokens for one site. The zero value is
// not usable: New makes one, Configure readies it. Its methods are safe
// for concurrent use.
type Authenticator struct {
	// lock serializes Configure and discovery: a one-slot semaphore, so a
	// caller waiting for it still honours its context.
	lock chan struct{}
	cfg  *Config
	// prov is the discovered provider; nil until discovery succeeds.
	prov *provider
}

// provider is what discovery yields: the key set and a verifier over it.
type provider struct {
	keys     oidc.KeySet
	verifier *oidc.IDTokenVerifier
}

// New returns an authenticator to Configure.
func New() *Authenticator {
	return &Authenticator{lock: make(chan struct{}, 1)}
}

// Configure parses config (see Config and ParseConfig). It contacts no
// one: discovery waits for the first Authenticate, so a site whose
// provider is down still starts (and cannot decide until it is back).
// A second Configure replaces the first.
func (a *Authenticator) Configure(ctx context.Context, config []byte) error {
	cfg, err := ParseConfig(config)
	if err != nil {
		return err
	}
	if err := a.acquire(ctx); err != nil {
		return err
	}
	defer a.release()
	a.cfg, a.prov = cfg, nil
	return nil
}

func (a *Authenticator) acquire(ctx context.Context) error {
	select {
	case a.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("oidc: waiting for the authenticator: %w", ctx.Err())
	}
}

func (a *Authenticator) release() { <-a.lock }

// state returns the configuration and the provider, discovering the
// provider if that has not succeeded yet.
func (a *Authenticator) state(ctx context.Context) (*Config, *provider, error) {
	if err := a.acquire(ctx); err != nil {
		return nil, nil, err
	}
	defer a.release()
	if a.cfg == nil {
		return nil, nil, errors.New("oidc: not configured")
	}
	if a.prov == nil {
		p, err := discover(ctx, a.cfg)
		if err != nil {
			return a.cfg, nil, err
		}
		a.prov = p
	}
	return a.cfg, a.prov, nil
}

// discover fetches the provider's discovery document and sets up its key
// set, over the bounded client.
func discover(ctx context.Context, cfg *Config) (*provider, error) {
	client := NewHTTPClient(cfg.caPool, time.Duration(cfg.Timeout), true)
	cctx := oidc.ClientContext(ctx, client)
	p, err := oidc.NewProvider(cctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", cfg.Issuer, err)
	}
	var doc struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || !strings.HasPrefix(doc.JWKSURL, "https://") {
		return nil, fmt.Errorf("oidc: discovery at %s: no https jwks_uri", cfg.Issuer)
	}
	// The key set keeps cctx's client (and none of its cancellation) for
	// the fetches it makes later.
	keys := oidc.NewRemoteKeySet(cctx, doc.JWKSURL)
	verifier := oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		SkipClientIDCheck:    true, // the audience is checked per request (it may be the site's name)
		SkipExpiryCheck:      true, // exp, nbf and iat are checked below, with the configured skew
		SupportedSigningAlgs: cfg.Algorithms,
	})
	return &provider{keys: keys, verifier: verifier}, nil
}

// Authenticate decides r (see the package documentation for the checks).
func (a *Authenticator) Authenticate(ctx context.Context, r authn.Request) (authn.Decision, error) {
	c := r.Credential
	switch {
	case c == nil:
		return deny("no credential attached for this site; it takes an OIDC ID token")
	case c.Kind != authn.CredentialToken:
		return deny("the credential is a %s; this site takes an OIDC ID token", quote(c.Kind))
	case c.Secret == "":
		return deny("the token is empty")
	case len(c.Secret) > MaxTokenBytes:
		return deny("the token has %d bytes, more than %d", len(c.Secret), MaxTokenBytes)
	}
	raw := c.Secret

	cfg, prov, err := a.state(ctx)
	if err != nil {
		return authn.Decision{}, err
	}
	audience := cfg.Audience
	if audience == "" {
		audience = r.Site
	}
	if audience == "" {
		return authn.Decision{}, errors.New("oidc: no audience: the config names none and the request names no site")
	}

	// The form and the algorithm, before any key is looked at: go-jose
	// refuses "none" and any algorithm not listed.
	algs := make([]jose.SignatureAlgorithm, len(cfg.Algorithms))
	for i, alg := range cfg.Algorithms {
		algs[i] = jose.SignatureAlgorithm(alg)
	}
	if _, err := jose.ParseSignedCompact(raw, algs); err != nil {
		return deny("the token is not a JWS signed with %s: %s", strings.Join(cfg.Algorithms, " or "), clipErr(err))
	}
	// The signature alone first, to tell a provider that cannot be asked
	// (an error) from a token that does not verify (a denial): go-oidc's
	// Verify flattens the key set's error into text. Verify then checks
	// it again from the cached keys, with iss.
	if _, err := prov.keys.VerifySignature(ctx, raw); err != nil {
		if isProviderFailure(err) {
			return authn.Decision{}, fmt.Errorf("oidc: fetching the provider's keys: %w", err)
		}
		return deny("the token's signature does not verify with the keys of %s", cfg.Issuer)
	}
	tok, err := prov.verifier.Verify(ctx, raw)
	if err != nil {
		return deny("the token does not verify: %s", clipErr(err))
	}
	if !slices.Contains(tok.Audience, audience) {
		return deny("the token is meant for %s, not for %s", quoteList(tok.Audience), quote(audience))
	}

	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return deny("the token's claims do not parse: %s", clipErr(err))
	}
	if reason := checkTimes(claims, time.Now(), time.Duration(cfg.Skew)); reason != "" {
		return deny("%s", reason)
	}

	name, reason := subject(claims, cfg.SubjectClaim)
	if reason != "" {
		return deny("%s", reason)
	}
	if name != r.Requester.Name {
		return deny("the token's %s %s is not the certificate's name %s", cfg.SubjectClaim, quote(name), quote(r.Requester.Name))
	}
	groups, reason := groupList(claims, cfg.GroupsClaim)
	if reason != "" {
		return deny("%s", reason)
	}
	for _, m := range cfg.Roles {
		if slices.Contains(groups, m.Group) {
			return authn.Decision{
				Authenticated: true,
				Subject:       tok.Subject,
				Groups:        groups,
				Role:          m.Role,
				Reason: fmt.Sprintf("OIDC token of %s for %s: %s %s is the certificate's name; group %s gives role %s",
					cfg.Issuer, quote(audience), cfg.SubjectClaim, quote(name), quote(m.Group), quote(m.Role)),
			}, nil
		}
	}
	return authn.Decision{Subject: tok.Subject, Groups: groups,
		Reason: fmt.Sprintf("none of %s's groups %s maps to a role here", quote(name), quoteList(groups))}, nil
}

// deny is a denial with a formatted reason.
func deny(format string, args ...any) (authn.Decision, error) {
	return authn.Decision{Reason: fmt.Sprintf(format, args...)}, nil
}

// isProviderFailure tells a provider that could not be asked (transport,
// status, size, the caller's deadline) from a token that does not
// verify.
func isProviderFailure(err error) bool {
	var pe *ProviderError
	return errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// checkTimes checks exp (required), nbf and iat against now with skew;
// it returns why the token is refused, or "".
func checkTimes(claims map[string]json.RawMessage, now time.Time, skew time.Duration) string {
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return err.Error()
	case !ok:
		return "the token has no exp (expiry) claim"
	case now.After(exp.Add(skew)):
		return fmt.Sprintf("the token expired at %s (now %s, skew %v)", stamp(exp), stamp(now), skew)
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := numericDate(claims, name)
		if err != nil {
			return err.Error()
		}
		if ok && t.After(now.Add(skew)) {
			what := "is not valid before"
			if name == "iat" {
				what = "was issued at"
			}
			return fmt.Sprintf("the token %s %s (%s), later than now %s plus skew %v", what, stamp(t), name, stamp(now), skew)
		}
	}
	return ""
}

// numericDate reads a NumericDate claim (seconds since the epoch, a JSON
// number); ok is false when the claim is absent.
func numericDate(claims map[string]json.RawMessage, name string) (t time.Time, ok bool, err error) {
	v, present := claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	var secs float64
	if err := json.Unmarshal(v, &secs); err != nil || math.IsNaN(secs) || math.Abs(secs) > 1e11 {
		return time.Time{}, false, fmt.Errorf("the token's %s claim is not a date (seconds since 1970)", name)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true, nil
}

// subject reads the subject claim: a non-empty string. For "email" the
// address must also be verified by the provider.
func subject(claims map[string]json.RawMessage, claim string) (name, reason string) {
	v, ok := claims[claim]
	if !ok {
		return "", fmt.Sprintf("the token has no %s claim", claim)
	}
	if err := json.Unmarshal(v, &name); err != nil || name == "" {
		return "", fmt.Sprintf("the token's %s claim is not a non-empty string", claim)
	}
	if claim == "email" {
		var verified bool
		if err := json.Unmarshal(claims["email_verified"], &verified); err != nil || !verified {
			return "", fmt.Sprintf("the token's email %s is not verified by the provider (email_verified)", quote(name))
		}
	}
	return name, ""
}

// groupList reads the groups claim: absent is no group; otherwise a list
// of at most MaxGroups strings of bounded length.
func groupList(claims map[string]json.RawMessage, claim string) ([]string, string) {
	v, ok := claims[claim]
	if !ok {
		return nil, ""
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, fmt.Sprintf("the token's %s claim is not a list", claim)
	}
	if len(raw) > MaxGroups {
		return nil, fmt.Sprintf("the token lists %d groups, more than %d", len(raw), MaxGroups)
	}
	groups := make([]string, 0, len(raw))
	for _, g := range raw {
		var s string
		if err := json.Unmarshal(g, &s); err != nil {
			return nil, fmt.Sprintf("the token's %s claim holds something other than strings", claim)
		}
		if len(s) > maxGroupBytes {
			return nil, fmt.Sprintf("the token names a group longer than %d bytes", maxGroupBytes)
		}
		groups = append(groups, s)
	}
	return groups, ""
}

// quote quotes a value that came from the token or the requester,
// bounded, so it can neither forge a log line nor flood one.
func quote(s string) string { return strconv.Quote(envelope.Clip(s, maxQuoted)) }

// quoteList quotes a bounded number of values.
func quoteList(vs []string) string {
	const show = 8
	parts := make([]string, 0, min(len(vs), show)+1)
	for i, v := range vs {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(vs)-show))
			break
		}
		parts = append(parts, quote(v))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// clipErr bounds a library's error text (it may quote the token's
// claims; never the token itself).
func clipErr(err error) string { return strconv.Quote(envelope.Clip(err.Error(), 2*maxQuoted)) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
