package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"
)

// Trust answers "is this certificate one of our project's, valid now, and
// not revoked?" for every verifier in a process. It holds the project root
// and the newest revocation list it has been given; the list can be
// replaced at run time (SetCRL) and only by a newer one signed by the root.
type Trust struct {
	root  *x509.Certificate
	pool  *x509.CertPool
	crl   atomic.Pointer[crlState]
	setMu sync.Mutex

	chains sync.Map // fingerprint -> struct{}: certificates whose chain verified
}

type crlState struct {
	number  *big.Int
	revoked map[string]time.Time // serial (decimal) -> revocation time
	changed chan struct{}        // closed when a newer list replaces this one
}

// NewTrust trusts certificates issued by root.
func NewTrust(root *x509.Certificate) *Trust {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	t := &Trust{root: root, pool: pool}
	t.crl.Store(&crlState{number: big.NewInt(0), revoked: map[string]time.Time{}, changed: make(chan struct{})})
	return t
}

// Root is the project root certificate.
func (t *Trust) Root() *x509.Certificate { return t.root }

// Pool is a pool holding only the project root.
func (t *Trust) Pool() *x509.CertPool { return t.pool }

// ErrStaleCRL is returned by SetCRL for a list not newer than the current one.
var ErrStaleCRL = errors.New("revocation list is not newer than the one in use")

// SetCRL installs a DER revocation list after checking that the root signed
// it and that it is newer than the one in use. An equal number is accepted
// as a no-op, so the same list can be delivered twice.
func (t *Trust) SetCRL(der []byte) error {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("parse revocation list: %w", err)
	}
	if err := crl.CheckSignatureFrom(t.root); err != nil {
		return fmt.Errorf("revocation list not signed by the project root: %w", err)
	}
	if crl.Number == nil {
		return errors.New("revocation list has no CRL number")
	}
	t.setMu.Lock()
	defer t.setMu.Unlock()
	cur := t.crl.Load()
	switch crl.Number.Cmp(cur.number) {
	case 0:
		return nil
	case -1:
		return fmt.Errorf("%w (got number %s, have %s)", ErrStaleCRL, crl.Number, cur.number)
	}
	next := &crlState{number: crl.Number, revoked: make(map[string]time.Time, len(crl.RevokedCertificateEntries)),
		changed: make(chan struct{})}
	for _, e := range crl.RevokedCertificateEntries {
		next.revoked[e.SerialNumber.String()] = e.RevocationTime
	}
	t.crl.Store(next)
	close(cur.changed)
	return nil
}

// CRLChanged returns a channel that is closed once a revocation list newer
// than the one in use now is installed. Whoever holds live connections
// (the hub) waits on it and then checks them against Verify: take the
// channel before checking, so that a list installed meanwhile is not missed.
func (t *Trust) CRLChanged() <-chan struct{} { return t.crl.Load().changed }

// CRLNumber is the number of the revocation list in use (0: none).
func (t *Trust) CRLNumber() int64 { return t.crl.Load().number.Int64() }

// Verify checks cert against the project root, the clock and the revocation
// list, and returns the identity it carries. Errors are *CertError wrapping
// ErrUnknownAuthority, ErrExpired, ErrNotYetValid, ErrRevoked or ErrBadIdentity.
// Chain verification is cached per certificate; validity and revocation are
// checked on every call.
func (t *Trust) Verify(cert *x509.Certificate, now time.Time) (Identity, error) {
	refuse := func(reason error, detail string) (Identity, error) {
		return Identity{}, &CertError{Name: cert.Subject.CommonName, Serial: serialString(cert), Reason: reason, Detail: detail}
	}
	fp := Fingerprint(cert)
	if _, ok := t.chains.Load(fp); !ok {
		// The clock is checked below, with its own error; the chain is
		// checked at a moment inside the certificate's validity.
		at := now
		if at.After(cert.NotAfter) {
			at = cert.NotAfter
		} else if at.Before(cert.NotBefore) {
			at = cert.NotBefore
		}
		_, err := cert.Verify(x509.VerifyOptions{
			Roots:       t.pool,
			CurrentTime: at,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return refuse(ErrUnknownAuthority, err.Error())
		}
		t.chains.Store(fp, struct{}{})
	}
	switch {
	case now.After(cert.NotAfter):
		return refuse(ErrExpired, "expired "+cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return refuse(ErrNotYetValid, "valid from "+cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if at, revoked := t.crl.Load().revoked[cert.SerialNumber.String()]; revoked {
		return refuse(ErrRevoked, "revoked "+at.UTC().Format(time.RFC3339))
	}
	id, err := IdentityOf(cert)
	if err != nil {
		return refuse(ErrBadIdentity, err.Error())
	}
	return id, nil
}

// VerifyKind is Verify plus a check that the identity's kind is one of kinds.
func (t *Trust) VerifyKind(cert *x509.Certificate, now time.Time, kinds ...Kind) (Identity, error) {
	id, err := t.Verify(cert, now)
	if err != nil {
		return id, err
	}
	for _, k := range kinds {
		if id.Kind == k {
			return id, nil
		}
	}
	return Identity{}, &CertError{Name: id.Name, Serial: serialString(cert), Reason: ErrWrongKind,
		Detail: fmt.Sprintf("%s certificate presented where %v is required", id.Kind, kinds)}
}

func serialString(cert *x509.Certificate) string {
	if cert.SerialNumber == nil {
		return ""
	}
	return fmt.Sprintf("%x", cert.SerialNumber)
}
