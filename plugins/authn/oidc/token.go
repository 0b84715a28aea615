package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TokenConfig is how the admin console asks a provider for ID tokens
// meant for one site.
type TokenConfig struct {
	// Issuer is the provider's issuer URL (https).
	Issuer string
	// ClientID and ClientSecret are the console's client at the provider;
	// ClientSecret is empty for a public client.
	ClientID     string
	ClientSecret string
	// Audience is the site's client id at the provider: the token's "aud"
	// will contain it, and the site checks that it does.
	Audience string
	// CA is the provider's TLS trust (PEM); nil for the system's roots.
	CA []byte
	// Scopes are asked for; nil for DefaultScopes(Audience), which is
	// Dex's form of asking for another client's audience.
	Scopes []string
	// Timeout bounds each request (0: DefaultTimeout).
	Timeout time.Duration
}

// AudienceScope is the scope with which a Dex client that a peer trusts
// (the peer's trustedPeers) asks for a token whose audience is the peer.
func AudienceScope(clientID string) string { return "audience:server:client_id:" + clientID }

// DefaultScopes are the scopes asked for when TokenConfig names none: the
// ID token with profile, email and groups, a refresh token, and the
// site's audience.
func DefaultScopes(audience string) []string {
	return []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, "groups", oidc.ScopeOfflineAccess, AudienceScope(audience)}
}

// Token is what the provider issued: the ID token a site verifies, the
// refresh token that obtains the next one, and the ID token's expiry.
// Its String, GoString and LogValue print no secret.
type Token struct {
	IDToken      string    `json:"id_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

// ExpiresWithin reports whether the ID token expires before now+d: the
// console refreshes it (Refresh) before sending it.
func (t *Token) ExpiresWithin(now time.Time, d time.Duration) bool {
	return !t.Expiry.After(now.Add(d))
}

// String describes the token without its secrets.
func (t Token) String() string {
	return fmt.Sprintf("OIDC token (expires %s, refreshable %t)", stamp(t.Expiry), t.RefreshToken != "")
}

// GoString is String, so %#v prints no secret either.
func (t Token) GoString() string { return t.String() }

// LogValue logs the expiry only.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expiry", t.Expiry), slog.Bool("refreshable", t.RefreshToken != ""))
}

// ErrRefused is the provider refusing the request (a wrong password, an
// unknown user, a revoked or expired refresh token, a client not trusted
// for the audience), as opposed to a provider that could not be asked.
var ErrRefused = errors.New("the provider refused")

// PasswordGrant obtains a token for cfg.Audience with the resource owner
// password grant (RFC 6749, 4.3): user and password go to the provider's
// token endpoint, found through its discovery document. The returned ID
// token is verified (signature, issuer, audience, expiry) before it is
// returned. A refusal wraps ErrRefused.
func PasswordGrant(ctx context.Context, cfg TokenConfig, user, password string) (*Token, error) {
	s, err := openSession(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t, err := s.oauth.PasswordCredentialsToken(s.ctx, user, password)
	if err != nil {
		return nil, tokenError("password grant", cfg.Issuer, err)
	}
	return s.token(t, "")
}

// Refresh obtains a new token for cfg.Audience with tok's refresh token;
// the provider may rotate the refresh token (the new one is returned).
// A refusal wraps ErrRefused.
func Refresh(ctx context.Context, cfg TokenConfig, tok *Token) (*Token, error) {
	if tok == nil || tok.RefreshToken == "" {
		return nil, errors.New("oidc: refresh: the token has no refresh token (ask for offline_access)")
	}
	s, err := openSession(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t, err := s.oauth.TokenSource(s.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		return nil, tokenError("refresh", cfg.Issuer, err)
	}
	return s.token(t, tok.RefreshToken)
}

// session is one conversation with the provider: its discovery, the
// OAuth2 client, and a context carrying the bounded HTTP client.
type session struct {
	ctx      context.Context
	cfg      TokenConfig
	provider *oidc.Provider
	oauth    *oauth2.Config
}

func openSession(ctx context.Context, cfg TokenConfig) (*session, error) {
	if err := validIssuer(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("oidc: issuer: %w", err)
	}
	if cfg.ClientID == "" || cfg.Audience == "" {
		return nil, errors.New("oidc: a client id and an audience are required")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	client, err := consoleClient(cfg.CA, timeout)
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(oidc.ClientContext(ctx, client), oauth2.HTTPClient, client)
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", cfg.Issuer, err)
	}
	scopes := cfg.Scopes
	if scopes == nil {
		scopes = DefaultScopes(cfg.Audience)
	}
	oc := &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(), Scopes: scopes}
	return &session{ctx: ctx, cfg: cfg, provider: p, oauth: oc}, nil
}

// token verifies the ID token the provider returned in t and makes the
// Token; oldRefresh is kept when the provider did not rotate it.
func (s *session) token(t *oauth2.Token, oldRefresh string) (*Token, error) {
	raw, _ := t.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("oidc: %s returned no ID token", s.cfg.Issuer)
	}
	id, err := s.provider.Verifier(&oidc.Config{ClientID: s.cfg.Audience}).Verify(s.ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("oidc: the ID token from %s does not verify for %q: %w", s.cfg.Issuer, s.cfg.Audience, err)
	}
	refresh := t.RefreshToken
	if refresh == "" {
		refresh = oldRefresh
	}
	return &Token{IDToken: raw, RefreshToken: refresh, Expiry: id.Expiry}, nil
}

// tokenError wraps a token endpoint's failure; a 4xx answer is a
// refusal (ErrRefused).
func tokenError(op, issuer string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		return fmt.Errorf("oidc: %s at %s: %w: %w", op, issuer, ErrRefused, err)
	}
	return fmt.Errorf("oidc: %s at %s: %w", op, issuer, err)
}

// consoleClient is the bounded client for the console: the same bounds
// as the authenticator's, but a token endpoint's 400 answers are read
// (they carry the OAuth2 error), not refused.
func consoleClient(caPEM []byte, timeout time.Duration) (*http.Client, error) {
	if len(caPEM) == 0 {
		return NewHTTPClient(nil, timeout, false), nil
	}
	pool, err := parseCA(caPEM)
	if err != nil {
		return nil, fmt.Errorf("oidc: CA: %w", err)
	}
	return NewHTTPClient(pool, timeout, false), nil
}
