// Package sealing binds a participant's X25519 sealing key to its
// certificate, so that what is sealed to the key (a swarm update, an
// admin's credential) reaches only a holder the project's PKI vouches
// for. A binding is scoped: a swarm job's id, or Credentials for the key
// admins seal their per-site credentials to. A binding made for one scope
// never verifies for another.
package sealing

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Credentials is the scope of a site's credential key (see actors/credential);
// it is not a job id, so it cannot collide with a swarm job's scope.
const Credentials = "credentials"

// keyPurpose is the signing purpose of sealing-key bindings.
const keyPurpose = "hearth.sealing-key.v1"

func keyMessage(scope, site string, pub []byte) []byte {
	msg := append([]byte(scope), 0)
	msg = append(append(msg, site...), 0)
	return append(msg, pub...)
}

// Signer signs on a site's certificate key; *envelope.Signer is one.
type Signer interface {
	SignFor(purpose string, msg []byte) ([]byte, error)
	Identity() pki.Identity
	Certificate() *x509.Certificate
}

// BindKey binds key's public half to the signer's certificate for scope.
func BindKey(s Signer, scope string, key *ecdh.PublicKey) (*hearthv1.SealingKey, error) {
	site := s.Identity().Name
	sig, err := s.SignFor(keyPurpose, keyMessage(scope, site, key.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("bind sealing key: %w", err)
	}
	return &hearthv1.SealingKey{Site: site, JobId: scope, PublicKey: key.Bytes(), Signature: sig, Certificate: s.Certificate().Raw}, nil
}

// maxCertificate bounds a binding's certificate before it is parsed.
const maxCertificate = 16 << 10

// VerifyKey checks a binding for site in scope: the certificate verifies
// against trust now and is site's (a site certificate), and its key signed
// the binding. It returns the sealing key.
func VerifyKey(k *hearthv1.SealingKey, trust *pki.Trust, scope, site string, now time.Time) (*ecdh.PublicKey, error) {
	return verifyKey(k, trust, scope, site, pki.KindSite, now)
}

// VerifyHostKey is VerifyKey for an aggregation host's binding (a
// certificate of kind aggregator). That the key is the host's says nothing
// of where it lives: a site seals to it only once the host's TEE evidence
// binds it too (policies/attestation).
func VerifyHostKey(k *hearthv1.SealingKey, trust *pki.Trust, scope, host string, now time.Time) (*ecdh.PublicKey, error) {
	return verifyKey(k, trust, scope, host, pki.KindAggregator, now)
}

func verifyKey(k *hearthv1.SealingKey, trust *pki.Trust, scope, site string, kind pki.Kind, now time.Time) (*ecdh.PublicKey, error) {
	fail := func(format string, a ...any) (*ecdh.PublicKey, error) {
		return nil, fmt.Errorf("sealing key of %s: "+format, append([]any{site}, a...)...)
	}
	switch {
	case k == nil:
		return fail("none")
	case k.Site != site || k.JobId != scope:
		return fail("bound to %q in job %q", envelope.Clip(k.Site, 64), envelope.Clip(k.JobId, 64))
	}
	pub, err := ecdh.X25519().NewPublicKey(k.PublicKey)
	if err != nil {
		return fail("not an X25519 key: %v", err)
	}
	if err := verifySigned(k.Certificate, k.Signature, keyPurpose, keyMessage(scope, site, k.PublicKey), trust, site, kind, now); err != nil {
		return fail("%v", err)
	}
	return pub, nil
}

// VerifySigned checks that certDER (bounded before it is parsed) is site's
// site certificate, current under trust at now, and that its key signed
// msg for purpose (envelope.Signer.SignFor): what a site signs for others
// to check, a sealing key's binding or an answer to an admin.
func VerifySigned(certDER, sig []byte, purpose string, msg []byte, trust *pki.Trust, site string, now time.Time) error {
	return verifySigned(certDER, sig, purpose, msg, trust, site, pki.KindSite, now)
}

func verifySigned(certDER, sig []byte, purpose string, msg []byte, trust *pki.Trust, site string, kind pki.Kind, now time.Time) error {
	if len(certDER) > maxCertificate {
		return fmt.Errorf("certificate of %d bytes", len(certDER))
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	id, err := trust.VerifyKind(cert, now, kind)
	if err != nil {
		return err
	}
	if id.Name != site {
		return fmt.Errorf("signed by %s's certificate, not %s's", id.Name, site)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !envelope.VerifyFor(pub, purpose, msg, sig) {
		return errors.New("the signature does not verify (changed on the way, or not for this)")
	}
	return nil
}
