package job

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// signingContext separates job signatures from every other signature made
// with the same keys (v1 signed the manifest alone, with no nonce or
// not-after: such jobs no longer verify).
const signingContext = "hearth.job.v2\x00"

// preflightContext is what a pre-flight's job is signed under instead: a
// job signed to ask the sites whether they would run it never verifies as
// one to run (a server cannot turn a dry run into a job).
const preflightContext = "hearth.job-preflight.v2\x00"

// NonceSize is the length of a signed job's nonce.
const NonceSize = 16

// Freshness bounds of a signed job.
const (
	// DefaultLifetime is how long after signing a job may be submitted and
	// first joined (Sign's not-after).
	DefaultLifetime = 10 * time.Minute
	// MaxLifetime is the latest not-after the server accepts, from now: a
	// job cannot be signed to be replayable for long.
	MaxLifetime = 24 * time.Hour
)

// Errors wrapped by refusals of a signed job.
var (
	ErrSignature = errors.New("job signature refused")
	// ErrExpired: the job's not-after has passed (or lies too far ahead).
	ErrExpired = errors.New("signed job is not fresh")
)

// Sign signs manifest bytes as admin cert/key, valid for DefaultLifetime
// from now (SignAt).
func Sign(manifest []byte, cert *x509.Certificate, key ed25519.PrivateKey) (*hearthv1.SignedJob, error) {
	return SignAt(manifest, cert, key, time.Now(), DefaultLifetime)
}

// SignAt signs manifest bytes as admin cert/key, with a fresh nonce and a
// not-after of now+lifetime. The manifest is parsed first, so an invalid
// job is never signed.
func SignAt(manifest []byte, cert *x509.Certificate, key ed25519.PrivateKey, now time.Time, lifetime time.Duration) (*hearthv1.SignedJob, error) {
	if _, err := ParseManifest(manifest); err != nil {
		return nil, err
	}
	if lifetime <= 0 || lifetime > MaxLifetime {
		return nil, fmt.Errorf("job lifetime %v: want more than 0, at most %v", lifetime, MaxLifetime)
	}
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sj := &hearthv1.SignedJob{Manifest: manifest, SubmitterCert: cert.Raw, Nonce: nonce, NotAfterUnixNano: now.Add(lifetime).UnixNano()}
	sj.Signature = ed25519.Sign(key, signedBytes(sj, signingContext))
	return sj, nil
}

// SignPreflight signs manifest bytes for a pre-flight (a dry run): the
// same as Sign, under another signing context, so that it verifies only
// with VerifyPreflight.
func SignPreflight(manifest []byte, cert *x509.Certificate, key ed25519.PrivateKey) (*hearthv1.SignedJob, error) {
	sj, err := SignAt(manifest, cert, key, time.Now(), DefaultLifetime)
	if err != nil {
		return nil, err
	}
	sj.Signature = ed25519.Sign(key, signedBytes(sj, preflightContext))
	return sj, nil
}

// signedBytes is what a job signature under context covers.
func signedBytes(sj *hearthv1.SignedJob, context string) []byte {
	b := make([]byte, 0, len(context)+NonceSize+8+len(sj.Manifest))
	b = append(b, context...)
	b = append(b, sj.Nonce...)
	b = binary.BigEndian.AppendUint64(b, uint64(sj.NotAfterUnixNano))
	return append(b, sj.Manifest...)
}

// Hash is the SHA-256 of what sj's signature covers (its nonce, not-after
// and manifest): the job's identity for what is bound to it, such as an
// admin's credentials.
func Hash(sj *hearthv1.SignedJob) []byte {
	h := sha256.Sum256(signedBytes(sj, signingContext))
	return h[:]
}

// Verified is a signed job that passed Verify.
type Verified struct {
	Manifest  *Manifest
	Submitter pki.Identity
	// SubmitterKey is the submitter's certificate key, which signed the
	// job (and what else they attach to it, such as credentials).
	SubmitterKey ed25519.PublicKey
	// Nonce is the job's nonce, hex; NotAfter its not-after.
	Nonce    string
	NotAfter time.Time
}

// Fresh says whether the job may still be submitted or first joined at
// now: before its not-after, which lies at most MaxLifetime ahead. A job
// that already runs (resumed after a restart, or a site's own job that it
// recorded) is not checked again.
func (v *Verified) Fresh(now time.Time) error {
	switch {
	case now.After(v.NotAfter):
		return fmt.Errorf("%w: its not-after %s has passed", ErrExpired, v.NotAfter.UTC().Format(time.RFC3339))
	case v.NotAfter.Sub(now) > MaxLifetime:
		return fmt.Errorf("%w: its not-after %s is more than %v ahead", ErrExpired, v.NotAfter.UTC().Format(time.RFC3339), MaxLifetime)
	}
	return nil
}

// Verify checks a signed job: the manifest is at most MaxManifestBytes; the
// submitter certificate is the project's, current, not revoked and an
// admin's; the signature covers the nonce, the not-after and the manifest
// bytes as they are; only then is the manifest parsed (so only a current
// admin's signed bytes ever reach the parser) and validated. It runs at the
// server and at every site, each with its own trust. Freshness is the
// caller's: see Verified.Fresh.
func Verify(sj *hearthv1.SignedJob, trust *pki.Trust, now time.Time) (*Verified, error) {
	return verify(sj, trust, now, signingContext)
}

// VerifyPreflight is Verify for a job signed for a pre-flight
// (SignPreflight); a job signed to run does not verify here, nor the other
// way round.
func VerifyPreflight(sj *hearthv1.SignedJob, trust *pki.Trust, now time.Time) (*Verified, error) {
	return verify(sj, trust, now, preflightContext)
}

func verify(sj *hearthv1.SignedJob, trust *pki.Trust, now time.Time, context string) (*Verified, error) {
	switch {
	case sj == nil || len(sj.Manifest) == 0 || len(sj.Signature) != ed25519.SignatureSize || len(sj.SubmitterCert) == 0:
		return nil, fmt.Errorf("%w: manifest, signature and submitter certificate are required", ErrSignature)
	case len(sj.Nonce) != NonceSize:
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrSignature, len(sj.Nonce), NonceSize)
	case len(sj.Manifest) > MaxManifestBytes:
		return nil, fmt.Errorf("%w: manifest is %d bytes, more than the %d allowed", ErrSignature, len(sj.Manifest), MaxManifestBytes)
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
	if !ok || !ed25519.Verify(pub, signedBytes(sj, context), sj.Signature) {
		return nil, fmt.Errorf("%w: the signature of %s does not match the manifest (changed after signing, or not signed by them)", ErrSignature, id.Name)
	}
	m, err := ParseManifest(sj.Manifest)
	if err != nil {
		return nil, err
	}
	return &Verified{Manifest: m, Submitter: id, SubmitterKey: pub, Nonce: fmt.Sprintf("%x", sj.Nonce), NotAfter: time.Unix(0, sj.NotAfterUnixNano)}, nil
}
