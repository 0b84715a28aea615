// Package swarm holds what both ends of a swarm job compute and check
// alike: the rotation that names each round's aggregator (so that no
// aggregator picks its successor and every site can check the pick), and
// the binding of a site's sealing key to its certificate (so that updates
// and models are sealed only to a key the project's PKI vouches for).
//
// The rotation is a permutation of the eligible sites fixed by the signed
// job's nonce: sites are ordered by SHA-256(nonce || name). Round r's
// attempt a is aggregated by order[(r-1+a) mod n]: consecutive rounds move
// to the next site, and a failover (attempt a+1) moves on too. Nobody
// chooses the order: the submitter's console draws the nonce at random
// before any site has joined, and the nonce is signed with the manifest.
package swarm

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Rotation is the order in which eligible sites aggregate a job's rounds.
type Rotation []string

// NewRotation orders eligible (duplicates dropped) by SHA-256(nonce ||
// name).
func NewRotation(nonce []byte, eligible []string) Rotation {
	sites := slices.Clone(eligible)
	slices.Sort(sites)
	sites = slices.Compact(sites)
	rank := func(s string) []byte {
		h := sha256.Sum256(append(append(slices.Clone(nonce), 0), s...))
		return h[:]
	}
	slices.SortFunc(sites, func(a, b string) int { return bytes.Compare(rank(a), rank(b)) })
	return Rotation(sites)
}

// Aggregator names the aggregator of a round's attempt, "" for a round
// below 1, a negative attempt or an empty rotation.
func (r Rotation) Aggregator(round, attempt int64) string {
	if len(r) == 0 || round < 1 || attempt < 0 {
		return ""
	}
	return r[(round-1+attempt)%int64(len(r))]
}

// Check says why aggregator may not aggregate a round's attempt, nil if it
// is the rotation's pick. Attempts are bounded by the rotation's length: by
// then every eligible site has had its turn at the round.
func (r Rotation) Check(round, attempt int64, aggregator string) error {
	switch {
	case len(r) == 0:
		return errors.New("no site is eligible to aggregate")
	case attempt < 0 || attempt >= int64(len(r)):
		return fmt.Errorf("attempt %d of round %d: want 0..%d (one for each eligible site)", attempt, round, len(r)-1)
	}
	if want := r.Aggregator(round, attempt); want != aggregator {
		return fmt.Errorf("round %d attempt %d is %s's to aggregate, not %s's", round, attempt, want, aggregator)
	}
	return nil
}

// keyPurpose is the signing purpose of sealing-key bindings.
const keyPurpose = "hearth.sealing-key.v1"

func keyMessage(jobID, site string, pub []byte) []byte {
	msg := append([]byte(jobID), 0)
	msg = append(append(msg, site...), 0)
	return append(msg, pub...)
}

// Signer signs on a site's certificate key; *envelope.Signer is one.
type Signer interface {
	SignFor(purpose string, msg []byte) ([]byte, error)
	Identity() pki.Identity
	Certificate() *x509.Certificate
}

// BindKey binds key's public half to the signer's certificate for job.
func BindKey(s Signer, jobID string, key *ecdh.PublicKey) (*hearthv1.SealingKey, error) {
	site := s.Identity().Name
	sig, err := s.SignFor(keyPurpose, keyMessage(jobID, site, key.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("bind sealing key: %w", err)
	}
	return &hearthv1.SealingKey{Site: site, JobId: jobID, PublicKey: key.Bytes(), Signature: sig, Certificate: s.Certificate().Raw}, nil
}

// maxCertificate bounds a binding's certificate before it is parsed.
const maxCertificate = 16 << 10

// VerifyKey checks a binding for site in job: the certificate verifies
// against trust now and is site's (a site certificate), and its key signed
// the binding. It returns the sealing key.
func VerifyKey(k *hearthv1.SealingKey, trust *pki.Trust, jobID, site string, now time.Time) (*ecdh.PublicKey, error) {
	fail := func(format string, a ...any) (*ecdh.PublicKey, error) {
		return nil, fmt.Errorf("sealing key of %s: "+format, append([]any{site}, a...)...)
	}
	switch {
	case k == nil:
		return fail("none")
	case k.Site != site || k.JobId != jobID:
		return fail("bound to %q in job %q", envelope.Clip(k.Site, 64), envelope.Clip(k.JobId, 64))
	case len(k.Certificate) > maxCertificate:
		return fail("certificate of %d bytes", len(k.Certificate))
	}
	cert, err := x509.ParseCertificate(k.Certificate)
	if err != nil {
		return fail("certificate: %v", err)
	}
	id, err := trust.VerifyKind(cert, now, pki.KindSite)
	if err != nil {
		return fail("%v", err)
	}
	if id.Name != site {
		return fail("certificate is %s's", id.Name)
	}
	pub, err := ecdh.X25519().NewPublicKey(k.PublicKey)
	if err != nil {
		return fail("not an X25519 key: %v", err)
	}
	edPub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !envelope.VerifyFor(edPub, keyPurpose, keyMessage(jobID, site, k.PublicKey), k.Signature) {
		return fail("the binding's signature does not verify")
	}
	return pub, nil
}

// Digest is a model's SHA-256 over each tensor's name, shape and float32
// values in order: the same at every site that holds the same model,
// whatever the wire encoding was.
func Digest(m *model.Model) []byte {
	h := sha256.New()
	var b [8]byte
	for _, t := range m.Tensors {
		h.Write([]byte(t.Name))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(b[:], uint64(len(t.Shape)))
		h.Write(b[:])
		for _, d := range t.Shape {
			binary.BigEndian.PutUint64(b[:], uint64(d))
			h.Write(b[:])
		}
		if littleEndian {
			h.Write(bytesOf(t.Data)) // the values' memory is their little-endian bytes
			continue
		}
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
			h.Write(b[:4])
		}
	}
	return h.Sum(nil)
}
