package dashboard

// Sign-in with an OpenID Connect provider (`hearth dashboard --oidc-issuer
// URL --oidc-client-id ID --oidc-client-secret-file F`), beside the
// password. The authorization-code flow with PKCE (S256):
//
//  1. GET /signin/oidc (a link, not a form: the CSP's form-action 'self'
//     would stop a form's redirect to the provider) makes a pre-session:
//     random state, nonce and PKCE verifier, kept here in memory under the
//     SHA-256 of a random cookie (__Host-hearth-oidc: Secure, HttpOnly,
//     SameSite=Lax, since the provider's redirect back is a cross-site
//     navigation; 10 min), and redirects to the provider.
//  2. GET /signin/oidc/callback: the pre-session is taken (one use), the
//     state compared with it, the code exchanged with the verifier, the ID
//     token verified by go-oidc (signature against the provider's JWKS,
//     iss, aud = the client id, exp) and its nonce compared; then the
//     token's email, with email_verified true, must be an existing,
//     enabled account. Anything else is refused with the reason, audited
//     as signin.oidc.refused (the reason, never the token nor the code),
//     and counted against the client address by the sign-in limiter, which
//     is asked before any work.
//
// The session cookie is SameSite=Strict, which a browser does not send on
// a navigation that a cross-site page started (the provider's redirect
// chain), so the callback answers a page that moves on to / by itself
// (Refresh) rather than a redirect.

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	authnoidc "github.com/hearthfl/hearth/plugins/authn/oidc"
)

// OIDCConfig is the dashboard's sign-in with an OpenID Connect provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (https), whose discovery
	// document is fetched at the first sign-in through it.
	Issuer string
	// ClientID and ClientSecret are the dashboard's registration at the
	// provider, a confidential client whose redirect URI is
	// https://DASHBOARD_HOST:PORT/signin/oidc/callback.
	ClientID, ClientSecret string
	// Roots verify the provider's TLS certificate (nil: the system's).
	Roots *x509.CertPool
	// Timeout bounds each request to the provider (zero: 10 s).
	Timeout time.Duration
}

// Validate checks the configuration.
func (c OIDCConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("OIDC issuer %q: want an https URL without query or fragment", bounded(c.Issuer)))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("OIDC: no client id"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("OIDC: no client secret"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("OIDC timeout %v: negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// Bounds of the OIDC sign-in's pre-sessions.
const (
	oidcCookie    = "__Host-hearth-oidc"
	oidcLoginTTL  = 10 * time.Minute
	maxOIDCLogins = 10000 // pre-sessions held at once; beyond, 503
	// maxOIDCLoginsPerAddr bounds one client address's pre-sessions, so
	// that one address cannot fill the table for everyone else.
	maxOIDCLoginsPerAddr = 16
	oidcCallback         = "/signin/oidc/callback"
	// maxReason bounds a provider's or a library's text quoted in a reason.
	maxReason = 200
	// discoveryRetry is how long after a failed discovery the provider is
	// not asked again: sign-ins meanwhile are answered 502 at once, so
	// that unauthenticated requests cannot make the dashboard ask a
	// provider that is down at their own pace.
	discoveryRetry = 5 * time.Second
)

// oidcSignin is the configured provider and the pre-sessions in flight.
type oidcSignin struct {
	cfg OIDCConfig
	// discovery is strict (anything but 200 is an error): discovery
	// document and keys; exchange reads the token endpoint's 400s.
	discovery, exchange *http.Client

	// discoverMu is held while the discovery document is fetched: not mu,
	// so that a slow provider holds up no pre-session's hold or take.
	discoverMu sync.Mutex
	provider   *oidc.Provider // nil until discovery succeeds
	failedAt   time.Time      // the last failed discovery (zero: none)

	mu     sync.Mutex
	logins map[string]oidcLogin
}

// oidcLogin is one pre-session: what the callback must find again.
type oidcLogin struct {
	state, nonce, verifier, redirect string
	addr                             string // the client address that began it, as the limiter keys it (an IPv6 /64)
	expires                          time.Time
}

func newOIDCSignin(cfg OIDCConfig) *oidcSignin {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &oidcSignin{cfg: cfg, logins: map[string]oidcLogin{},
		discovery: authnoidc.NewHTTPClient(cfg.Roots, cfg.Timeout, true),
		exchange:  authnoidc.NewHTTPClient(cfg.Roots, cfg.Timeout, false)}
}

// errDiscoveryRetry is discover's answer within discoveryRetry of a
// failed discovery, when it does not ask the provider.
var errDiscoveryRetry = errors.New("OIDC discovery failed moments ago: not asked again yet")

// discover returns the provider, fetching its discovery document the
// first time (and again after a failure, but not within discoveryRetry of
// it: errDiscoveryRetry).
func (o *oidcSignin) discover(ctx context.Context, now time.Time) (*oidc.Provider, error) {
	o.discoverMu.Lock()
	defer o.discoverMu.Unlock()
	switch {
	case o.provider != nil:
		return o.provider, nil
	case !o.failedAt.IsZero() && now.Sub(o.failedAt) < discoveryRetry:
		return nil, errDiscoveryRetry
	}
	// The key set keeps this context's client, and none of its deadline,
	// for the fetches it makes later.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.discovery), o.cfg.Issuer)
	if err != nil {
		o.failedAt = now
		return nil, err
	}
	o.provider = p
	return p, nil
}

// oauth2Config is the authorization-code flow's configuration.
func (o *oidcSignin) oauth2Config(p *oidc.Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email"}}
}

// hold keeps l under cookie's hash, sweeping expired pre-sessions; it
// refuses past maxOIDCLoginsPerAddr from l's address or maxOIDCLogins in all.
func (o *oidcSignin) hold(now time.Time, cookie string, l oidcLogin) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	fromAddr := 0
	for k, v := range o.logins {
		switch {
		case !now.Before(v.expires):
			delete(o.logins, k)
		case v.addr == l.addr:
			fromAddr++
		}
	}
	if fromAddr >= maxOIDCLoginsPerAddr {
		return &httpError{status: http.StatusTooManyRequests, msg: fmt.Sprintf("%d sign-ins from this address are in progress already: finish one, or try again in %v", fromAddr, oidcLoginTTL)}
	}
	if len(o.logins) >= maxOIDCLogins {
		return &httpError{status: http.StatusServiceUnavailable, msg: "too many sign-ins in progress: try again in a few minutes"}
	}
	o.logins[hex.EncodeToString(tokenHash(cookie))] = l
	return nil
}

// take removes and returns cookie's pre-session, if it exists and has not
// expired.
func (o *oidcSignin) take(now time.Time, cookie string) (oidcLogin, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := hex.EncodeToString(tokenHash(cookie))
	l, ok := o.logins[k]
	delete(o.logins, k)
	return l, ok && now.Before(l.expires)
}

// oidcStart begins a sign-in with the provider.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request, rq *request) error {
	if s.oidc == nil {
		return notFound("page")
	}
	p, err := s.oidc.discover(r.Context(), s.now())
	if err != nil {
		if !errors.Is(err, errDiscoveryRetry) {
			s.log.Error("OIDC discovery failed", "issuer", s.oidc.cfg.Issuer, "err", err)
		}
		return &httpError{status: http.StatusBadGateway, msg: fmt.Sprintf("the OIDC provider %s could not be asked (see the dashboard's log): sign in with your password, or try again later", s.oidc.cfg.Issuer)}
	}
	cookie := randomToken()
	l := oidcLogin{state: randomToken(), nonce: randomToken(), verifier: oauth2.GenerateVerifier(),
		redirect: "https://" + r.Host + oidcCallback, addr: addressKey(clientIP(r)), expires: s.now().Add(oidcLoginTTL)}
	if err := s.oidc.hold(s.now(), cookie, l); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: cookie, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcLoginTTL / time.Second)})
	to := s.oidc.oauth2Config(p, l.redirect).AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce))
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// oidcRefusal is a callback refused: its status, and the reason shown and
// audited.
type oidcRefusal struct {
	status int
	reason string
	email  string // the token's, once one verified
}

func refuseOIDC(status int, format string, a ...any) *oidcRefusal {
	return &oidcRefusal{status: status, reason: fmt.Sprintf(format, a...)}
}

// oidcCallback finishes a sign-in with the provider: throttled by client
// address like the password's, refused and audited unless every check
// passes (oidcIdentify), else a new session.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request, rq *request) error {
	if s.oidc == nil {
		return notFound("page")
	}
	// The pre-session cookie is spent whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	now := s.now()
	addr := addressKey(clientIP(r))
	if d, first := s.addresses.reserve(now, addr); d > 0 {
		return s.throttled(w, r, now, "", d, first)
	}
	u, refusal, err := s.oidcIdentify(r, now)
	if err != nil {
		s.addresses.release(addr)
		return err
	}
	s.addresses.settle(now, addr, refusal != nil, false)
	if refusal != nil {
		if err := audit(r.Context(), s.db, now, refusal.email, "signin.oidc.refused", "", refusal.reason+"; from "+clientIP(r)); err != nil {
			return err
		}
		return &httpError{status: refusal.status, msg: "sign-in with " + s.oidc.cfg.Issuer + " refused: " + refusal.reason}
	}
	var id string
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		var err error
		if id, err = s.storeSession(r.Context(), tx, u); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, u.Email, "signin.oidc.ok", "", "through "+s.oidc.cfg.Issuer+", from "+clientIP(r))
	})
	if err != nil {
		return err
	}
	setSessionCookie(w, id)
	w.Header().Set("Refresh", "0; url=/")
	s.render(w, r, rq, http.StatusOK, "signedin.html", "Signed in", map[string]any{"Email": u.Email})
	return nil
}

// oidcIdentify runs the callback's checks, in order, and returns the
// account signed in, or the first refusal; err is a failure of the
// dashboard itself (its database).
func (s *Server) oidcIdentify(r *http.Request, now time.Time) (*User, *oidcRefusal, error) {
	c, err := r.Cookie(oidcCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, refuseOIDC(http.StatusBadRequest, "this browser did not start this sign-in (no pre-session cookie): start again from the sign-in page"), nil
	}
	l, ok := s.oidc.take(now, c.Value)
	if !ok {
		return nil, refuseOIDC(http.StatusBadRequest, "this sign-in is unknown, used already or older than %v: start again from the sign-in page", oidcLoginTTL), nil
	}
	q := r.URL.Query()
	// The state first: a provider's error answer carries it too (RFC 6749
	// 4.1.2.1), and the error's text is shown and audited only from the
	// sign-in this browser began, never from a link anyone could make.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		return nil, refuseOIDC(http.StatusBadRequest, "the state sent back is not this sign-in's (a callback meant for another browser, or altered)"), nil
	}
	if e := q.Get("error"); e != "" {
		return nil, refuseOIDC(http.StatusUnauthorized, "the provider answered %q (%s)", envelope.Clip(e, maxReason), envelope.Clip(q.Get("error_description"), maxReason)), nil
	}
	code := q.Get("code")
	if code == "" {
		return nil, refuseOIDC(http.StatusBadRequest, "the provider sent back no code"), nil
	}
	p, err := s.oidc.discover(r.Context(), now)
	if err != nil {
		if !errors.Is(err, errDiscoveryRetry) {
			s.log.Error("OIDC discovery failed", "issuer", s.oidc.cfg.Issuer, "err", err)
		}
		return nil, refuseOIDC(http.StatusBadGateway, "the provider could not be asked (see the dashboard's log)"), nil
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, s.oidc.exchange)
	tok, err := s.oidc.oauth2Config(p, l.redirect).Exchange(ctx, code, oauth2.VerifierOption(l.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, refuseOIDC(http.StatusUnauthorized, "the provider did not take the code (%s: %s): a code works once, briefly, and only with its sign-in's PKCE verifier",
				envelope.Clip(re.ErrorCode, maxReason), envelope.Clip(re.ErrorDescription, maxReason)), nil
		}
		s.log.Error("OIDC code exchange failed", "issuer", s.oidc.cfg.Issuer, "err", err)
		return nil, refuseOIDC(http.StatusBadGateway, "the provider's token endpoint could not be asked (see the dashboard's log)"), nil
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refuseOIDC(http.StatusBadGateway, "the provider's answer holds no ID token"), nil
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: s.oidc.cfg.ClientID, Now: s.now}).Verify(r.Context(), raw)
	if err != nil {
		return nil, refuseOIDC(http.StatusUnauthorized, "the ID token does not verify: %s", envelope.Clip(err.Error(), maxReason)), nil
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.nonce)) != 1 {
		return nil, refuseOIDC(http.StatusUnauthorized, "the ID token's nonce is not this sign-in's (a token issued for another sign-in)"), nil
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return nil, refuseOIDC(http.StatusUnauthorized, "the ID token's claims do not parse"), nil
	}
	email, reason := verifiedEmail(claims)
	if reason != "" {
		return nil, refuseOIDC(http.StatusForbidden, "%s", reason), nil
	}
	u, _, err := s.userByEmail(r.Context(), email)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, &oidcRefusal{status: http.StatusForbidden, email: email,
			reason: fmt.Sprintf("no dashboard account has the e-mail %s: ask the project admin for an invitation", bounded(email))}, nil
	case err != nil:
		return nil, nil, err
	case u.Disabled:
		return nil, &oidcRefusal{status: http.StatusForbidden, email: email,
			reason: fmt.Sprintf("the account %s is disabled (its certificate was revoked)", u.Email)}, nil
	}
	return u, nil, nil
}

// verifiedEmail reads the token's email, which must be one an account can
// have (checkAccount's rule, so at most 63 bytes: what reaches the
// database, the audit and the page is bounded, whatever the provider
// sends) and which the provider must say it verified (email_verified the
// JSON true); else why not.
func verifiedEmail(claims map[string]json.RawMessage) (email, reason string) {
	if err := json.Unmarshal(claims["email"], &email); err != nil || strings.TrimSpace(email) == "" {
		return "", "the ID token has no email claim (the dashboard asks for the scope \"email\")"
	}
	if pki.ValidName(email) != nil || !strings.Contains(email, "@") {
		return "", fmt.Sprintf("the ID token's email %q (%d bytes) is no address a dashboard account can have", bounded(email), len(email))
	}
	var verified bool
	if err := json.Unmarshal(claims["email_verified"], &verified); err != nil || !verified {
		return "", fmt.Sprintf("the provider does not say it verified the e-mail %s (email_verified is not true)", bounded(email))
	}
	return email, ""
}
