package dashboard

// The OIDC sign-in's bounds that need no real provider: pre-sessions per
// client address (an IPv6 /64 counting as one), the pace at which a
// provider that is down is asked again, and a provider's error answer
// read only from the sign-in its browser began.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeProvider is an https OIDC provider on loopback that serves only its
// discovery document (no test here gets further than the redirect to it);
// while failing, discovery answers 500. hits counts discovery requests.
type fakeProvider struct {
	ts      *httptest.Server
	failing atomic.Bool
	hits    atomic.Int32
}

func startFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	f := &fakeProvider{}
	f.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		f.hits.Add(1)
		if f.failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"issuer": f.ts.URL, "authorization_endpoint": f.ts.URL + "/auth",
			"token_endpoint": f.ts.URL + "/token", "jwks_uri": f.ts.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"}})
	}))
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fakeProvider) config() *OIDCConfig {
	return &OIDCConfig{Issuer: f.ts.URL, ClientID: "id", ClientSecret: "secret", Roots: newPool(nil), Timeout: 5 * time.Second}
}

// startFrom begins a sign-in from the client address remote (host:port)
// through the dashboard's handler, as a connection from there would.
func startFrom(h *harness, remote string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "https://127.0.0.1/signin/oidc", nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// TestOIDCPreSessionsBoundedPerIPv6Prefix: the pre-sessions one client may
// hold are counted per /64 for IPv6, as the sign-in limiter counts
// addresses: one host usually holds a whole /64, and counted per address
// it could fill the table (maxOIDCLogins) for everyone with a few hundred
// of its addresses. Past maxOIDCLoginsPerAddr the /64 is refused (429);
// another /64 still starts.
func TestOIDCPreSessionsBoundedPerIPv6Prefix(t *testing.T) {
	f := startFakeProvider(t)
	cfg := f.config()
	cfg.Roots.AddCert(f.ts.Certificate())
	h := newHarnessWith(t, nil, func(c *Config) { c.OIDC = cfg })
	for i := range maxOIDCLoginsPerAddr {
		if rec := startFrom(h, fmt.Sprintf("[2001:db8::%x]:4000", i+1)); rec.Code != http.StatusSeeOther {
			t.Fatalf("sign-in %d from 2001:db8::/64: %d\n%s", i, rec.Code, excerpt(rec.Body.String()))
		}
	}
	rec := startFrom(h, "[2001:db8::ffff]:4000")
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "from this address are in progress already") {
		t.Fatalf("a sign-in past the bound from another address of the same /64: %d, want 429\n%s", rec.Code, excerpt(rec.Body.String()))
	}
	if rec := startFrom(h, "[2001:db8:0:1::1]:4000"); rec.Code != http.StatusSeeOther {
		t.Fatalf("a sign-in from another /64: %d, want 303", rec.Code)
	}
}

// TestOIDCDiscoveryRetry: a provider that is down is asked once; sign-ins
// within discoveryRetry of the failure are answered 502 without asking it
// again (an unauthenticated client cannot make the dashboard hammer it),
// it is asked again after that, and once it answers it is not asked
// again at all.
func TestOIDCDiscoveryRetry(t *testing.T) {
	f := startFakeProvider(t)
	f.failing.Store(true)
	cfg := f.config()
	cfg.Roots.AddCert(f.ts.Certificate())
	h := newHarnessWith(t, nil, func(c *Config) { c.OIDC = cfg })
	c := h.client()
	for range 5 {
		c.get("/signin/oidc").want(t, http.StatusBadGateway, "could not be asked")
	}
	if n := f.hits.Load(); n != 1 {
		t.Fatalf("the provider, down, was asked %d times by 5 sign-ins within %v, want once", n, discoveryRetry)
	}
	h.clock.Advance(discoveryRetry)
	c.get("/signin/oidc").want(t, http.StatusBadGateway)
	if n := f.hits.Load(); n != 2 {
		t.Fatalf("after %v the provider was asked %d times in all, want 2", discoveryRetry, n)
	}
	f.failing.Store(false)
	h.clock.Advance(discoveryRetry)
	for range 3 {
		c.get("/signin/oidc").want(t, http.StatusSeeOther)
	}
	if n := f.hits.Load(); n != 3 {
		t.Fatalf("the provider, up, was asked %d times in all, want 3 (once more, then never)", n)
	}
}

// TestOIDCProviderErrorNeedsTheState: an error answer (error=...) counts
// as the provider's only with this sign-in's state: from a link with any
// other state it is refused for the state, and its text is neither shown
// nor audited (anyone could make such a link, text and all); with the
// state it is shown and audited as the provider's.
func TestOIDCProviderErrorNeedsTheState(t *testing.T) {
	h := newHarnessWith(t, nil, func(c *Config) {
		c.OIDC = &OIDCConfig{Issuer: "https://127.0.0.1:1/never-asked", ClientID: "id", ClientSecret: "secret"}
	})
	const lure = "your account is locked: call +1 555 0100"
	callback := func(cookie, state string) response {
		req, _ := http.NewRequest("GET", h.ts.URL+oidcCallback+"?error=access_denied&error_description="+url.QueryEscape(lure)+"&state="+state, nil)
		req.AddCookie(&http.Cookie{Name: oidcCookie, Value: cookie})
		return h.client().do(req)
	}
	hold := func(cookie, state string) {
		if err := h.srv.oidc.hold(h.clock.Now(), cookie, oidcLogin{state: state, addr: "127.0.0.1", expires: h.clock.Now().Add(oidcLoginTTL)}); err != nil {
			t.Fatal(err)
		}
	}

	hold("cookie-1", "state-1")
	r := callback("cookie-1", "a-state-of-the-attacker").want(t, http.StatusBadRequest, "the state sent back is not this sign-in's")
	if strings.Contains(r.body, lure) {
		t.Fatalf("the page shows the link's error text:\n%s", excerpt(r.body))
	}
	row := lastRefusal(t, h, 1)
	if strings.Contains(row.Detail, lure) {
		t.Fatalf("the audit holds the link's error text: %+v", row)
	}

	hold("cookie-2", "state-2")
	callback("cookie-2", "state-2").want(t, http.StatusUnauthorized, `the provider answered "access_denied" (`+lure+`)`)
	if row := lastRefusal(t, h, 2); !strings.Contains(row.Detail, lure) {
		t.Fatalf("the provider's own error answer is not audited: %+v", row)
	}
}
