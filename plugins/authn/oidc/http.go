package oidc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxResponseBytes bounds any response body read from the provider
// (discovery document, key set, token response); such documents are a
// few kilobytes.
const maxResponseBytes = 1 << 20

// ProviderError is a failure to talk to the provider: it did not answer,
// answered too slowly or too much, or (for discovery and keys) answered
// with a status other than 200. The authenticator turns it into "could
// not decide", never a denial of the token.
type ProviderError struct {
	URL string // the request's URL, without query
	Err error
}

func (e *ProviderError) Error() string { return "oidc provider at " + e.URL + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ProviderError) Unwrap() error { return e.Err }

// NewHTTPClient returns a client for an OIDC provider (the
// authenticator's, the console's, the dashboard's sign-in): TLS 1.2 or newer to
// roots (nil: the system's), no proxy, no redirects, every request and
// its whole response body bounded by timeout, bodies by
// maxResponseBytes. With strictStatus, any status other than 200 is a
// *ProviderError (discovery and keys); without, the caller reads the
// status (a token endpoint answers 400 with an OAuth2 error).
func NewHTTPClient(roots *x509.CertPool, timeout time.Duration, strictStatus bool) *http.Client {
	base := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxResponseHeaderBytes: 64 << 10,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    2,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: &boundedTransport{base: base, timeout: timeout, strictStatus: strictStatus},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// boundedTransport reads each response whole, within the timeout and
// maxResponseBytes, and marks every failure as a *ProviderError so that
// it survives the wrapping of the libraries above (go-oidc wraps the key
// set's transport errors with %w).
type boundedTransport struct {
	base         http.RoundTripper
	timeout      time.Duration
	strictStatus bool
}

func (b *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	where := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	fail := func(err error) (*http.Response, error) { return nil, &ProviderError{URL: where, Err: err} }

	ctx, cancel := context.WithTimeout(req.Context(), b.timeout)
	defer cancel()
	resp, err := b.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fail(fmt.Errorf("read the response: %w", err))
	}
	if len(body) > maxResponseBytes {
		return fail(fmt.Errorf("response larger than %d bytes", maxResponseBytes))
	}
	if b.strictStatus && resp.StatusCode != http.StatusOK {
		return fail(errors.New(resp.Status))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}
