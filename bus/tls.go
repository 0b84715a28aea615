package bus

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// Refusal is a connection the bus turned away at the TLS layer, or a
// permission violation the hub reported.
type Refusal struct {
	Listener string // "leaf", "client", "websocket", "local", "hub" (a leaf checking the hub)
	Peer     string // the certificate CN as presented, or the NATS user
	Err      error  // wraps a pki reason (errors.Is(err, pki.ErrRevoked), ...) or ErrPermission
}

// Reason is a short code for the refusal: a pki.Code ("revoked",
// "wrong_kind", ...), "permission" or "no_certificate".
func (r Refusal) Reason() string {
	if errors.Is(r.Err, ErrPermission) {
		return "permission"
	}
	if code := pki.Code(r.Err); code != "" {
		return code
	}
	return "no_certificate"
}

// ErrPermission marks a NATS permission violation reported by the hub.
var ErrPermission = errors.New("nats permission violation")

// peerVerifier checks the client certificate of every TLS connection to a
// listener: it must chain to the project root, be current, not revoked,
// and be of one of the allowed kinds.
func peerVerifier(listener string, trust *pki.Trust, now func() time.Time, report func(Refusal), kinds ...pki.Kind) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			err := fmt.Errorf("%s listener: no client certificate presented", listener)
			report(Refusal{Listener: listener, Err: err})
			return err
		}
		cert := cs.PeerCertificates[0]
		if _, err := trust.VerifyKind(cert, now(), kinds...); err != nil {
			report(Refusal{Listener: listener, Peer: cert.Subject.CommonName, Err: err})
			return err
		}
		return nil
	}
}

// serverTLS is the configuration of a listener that requires client
// certificates checked by peerVerifier. Go's own chain check is replaced by
// ours (RequireAnyClientCert) so that each refusal carries its own reason.
func serverTLS(cert tls.Certificate, verify func(tls.ConnectionState) error) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verify,
	}
}

// clientTLS is the configuration of a connection to a listener whose
// certificate must be the project's, of one of kinds, and valid for host.
func clientTLS(cert tls.Certificate, trust *pki.Trust, now func() time.Time, report func(Refusal), listener string, kinds ...pki.Kind) *tls.Config {
	check := peerVerifier(listener, trust, now, report, kinds...)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      trust.Pool(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			return check(cs)
		},
	}
}

// natsUser is the NATS user name that verify_and_map derives from a
// certificate of id: the RFC 2253 string of its subject as Go renders it.
func natsUser(id pki.Identity) string {
	n := pkix.Name{CommonName: id.Name, Organization: []string{id.Org}, OrganizationalUnit: []string{string(id.Kind)}}
	return n.ToRDNSequence().String()
}
