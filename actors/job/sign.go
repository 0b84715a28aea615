package job

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// signingContext separates job signatures from every other signature made
// with the same keys.
const signingContext = "hearth.job.v1\x00"

// ErrSignature is wrapped by every refusal of a signed job.
var ErrSignature = errors.New("job signature refused")

// Sign signs manifest bytes as admin cert/key. The manifest is parsed first,
// so an invalid job is never signed.
func Sign(manifest []byte, cert *x509.Certificate, key ed25519.PrivateKey) (*hearthv1.SignedJob, error) {
	if _, err := ParseManifest(manifest); err != nil {
		return nil, err
	}
	return &hearthv1.SignedJob{
		Manifest:      manifest,
		Signature:     ed25519.Sign(key, append([]byte(signingContext), manifest...)),
		SubmitterCert: cert.Raw,
	}, nil
}

// Verified is a signed job that passed Verify.
type Verified struct {
	Manifest  *Manifest
	Submitter pki.Identity
}

// Verify checks a signed job: the submitter certificate is the project's,
// current, not revoked and an admin's; the signature covers the manifest
// bytes as they are; the manifest is valid. It runs at the server and at
// every site, each with its own trust.
func Verify(sj *hearthv1.SignedJob, trust *pki.Trust, now time.Time) (*Verified, error) {
	if sj == nil || len(sj.Manifest) == 0 || len(sj.Signature) != ed25519.SignatureSize || len(sj.SubmitterCert) == 0 {
		return nil, fmt.Errorf("%w: manifest, signature and submitter certificate are required", ErrSignature)
	}
	cert, err := x509.ParseCertificate(sj.SubmitterCert)
	if err != nil {
		return nil, fmt.Errorf("%w: submitter certificate: %v", ErrSignature, err)
	}
	id, err := trust.VerifyKind(cert, now, pki.KindAdmin)
	if err != nil {
		return nil, fmt.Errorf("%w: submitter: %w", ErrSignature, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !ed25519.Verify(pub, append([]byte(signingContext), sj.Manifest...), sj.Signature) {
		return nil, fmt.Errorf("%w: the signature of %s does not match the manifest (changed after signing, or not signed by them)", ErrSignature, id.Name)
	}
	m, err := ParseManifest(sj.Manifest)
	if err != nil {
		return nil, err
	}
	return &Verified{Manifest: m, Submitter: id}, nil
}
