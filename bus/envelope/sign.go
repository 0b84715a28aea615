package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// signingContext prefixes the signed bytes, so that an envelope signature
// can never be mistaken for a signature made for another purpose with the
// same key.
const signingContext = "hearth.envelope.v1\x00"

// signedData is what the signature covers:
// "hearth.envelope.v1\x00" || uint32be(len(header)) || header || body.
// The caller guarantees len(header) fits in 32 bits (MaxSize does).
func signedData(header, body []byte) []byte {
	buf := make([]byte, 0, len(signingContext)+4+len(header)+len(body))
	buf = append(buf, signingContext...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(header)))
	buf = append(buf, header...)
	return append(buf, body...)
}

// Signer signs envelopes with one participant's certificate key. It is
// immutable and safe for concurrent use.
type Signer struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	fp   [32]byte
	id   pki.Identity
}

// NewSigner returns a Signer for cert and its private key. It fails if the
// key does not match the certificate or the certificate carries no valid
// identity. It does not check the certificate against a Trust: receivers do.
func NewSigner(cert *x509.Certificate, key ed25519.PrivateKey) (*Signer, error) {
	if cert == nil {
		return nil, errors.New("envelope signer: no certificate")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("envelope signer: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("envelope signer: certificate key is %T, want Ed25519", cert.PublicKey)
	}
	if !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("envelope signer: private key does not match the certificate of %q", cert.Subject.CommonName)
	}
	id, err := pki.IdentityOf(cert)
	if err != nil {
		return nil, fmt.Errorf("envelope signer: %w", err)
	}
	return &Signer{cert: cert, key: key, fp: pki.Fingerprint(cert), id: id}, nil
}

// Identity is the signer's identity, as its certificate carries it.
func (s *Signer) Identity() pki.Identity { return s.id }

// Certificate is the signer's certificate, attached to every envelope.
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

// Outgoing is a message to sign.
type Outgoing struct {
	Recipient     string               // participant name of the recipient (required)
	Kind          hearthv1.Header_Kind // KIND_MESSAGE when unspecified
	CorrelationID string               // required for KIND_RESPONSE and KIND_ERROR: the request's id
	JobID         string
	Round         int64
	Body          proto.Message // required; a *hearthv1.Failure for KIND_ERROR
}

// Sign marshals m into a signed envelope sent at now. It returns the
// envelope bytes and the message id (random 128-bit, hex) that the header
// carries.
func (s *Signer) Sign(m Outgoing, now time.Time) (data []byte, id string, err error) {
	return s.sign(m, now, hearthv1.BodyEncoding_BODY_ENCODING_PLAIN, nil)
}

// SignSealed is Sign with the body sealed to recipient, an X25519 public key
// (see Seal): only the holder of the matching private key can read it; the
// hub that relays it cannot. The header stays readable and signed, and is
// bound to the ciphertext as associated data.
func (s *Signer) SignSealed(m Outgoing, recipient *ecdh.PublicKey, now time.Time) ([]byte, string, error) {
	if recipient == nil {
		return nil, "", errors.New("sign sealed envelope: no recipient key")
	}
	return s.sign(m, now, hearthv1.BodyEncoding_BODY_ENCODING_SEALED, recipient)
}

func (s *Signer) sign(m Outgoing, now time.Time, enc hearthv1.BodyEncoding, sealTo *ecdh.PublicKey) ([]byte, string, error) {
	kind, err := m.check()
	if err != nil {
		return nil, "", err
	}
	id := newID()
	header := &hearthv1.Header{
		Id:               id,
		Sender:           s.id.Name,
		Recipient:        m.Recipient,
		MessageType:      string(proto.MessageName(m.Body)),
		JobId:            m.JobID,
		Round:            m.Round,
		SentUnixNano:     now.UnixNano(),
		SenderCertSha256: s.fp[:],
		CorrelationId:    m.CorrelationID,
		Kind:             kind,
		BodyEncoding:     enc,
	}
	det := proto.MarshalOptions{Deterministic: true}
	headerBytes, err := det.Marshal(header)
	if err != nil {
		return nil, "", fmt.Errorf("sign envelope: marshal header: %w", err)
	}
	body, err := det.Marshal(m.Body)
	if err != nil {
		return nil, "", fmt.Errorf("sign envelope: marshal %s: %w", header.MessageType, err)
	}
	if sealTo != nil {
		sb, err := Seal(headerBytes, body, sealTo)
		if err != nil {
			return nil, "", fmt.Errorf("sign envelope: %w", err)
		}
		if body, err = det.Marshal(sb); err != nil {
			return nil, "", fmt.Errorf("sign envelope: marshal sealed body: %w", err)
		}
	}
	if int64(len(headerBytes)) > math.MaxUint32 {
		return nil, "", errors.New("sign envelope: header too large")
	}
	env := &hearthv1.Envelope{
		Header:     headerBytes,
		Body:       body,
		Signature:  ed25519.Sign(s.key, signedData(headerBytes, body)),
		SenderCert: s.cert.Raw,
	}
	data, err := det.Marshal(env)
	if err != nil {
		return nil, "", fmt.Errorf("sign envelope: marshal envelope: %w", err)
	}
	return data, id, nil
}

// check validates m and returns its effective kind.
func (m Outgoing) check() (hearthv1.Header_Kind, error) {
	if m.Body == nil {
		return 0, errors.New("sign envelope: no body")
	}
	if err := pki.ValidName(m.Recipient); err != nil {
		return 0, fmt.Errorf("sign envelope: recipient: %w", err)
	}
	kind := m.Kind
	if kind == hearthv1.Header_KIND_UNSPECIFIED {
		kind = hearthv1.Header_KIND_MESSAGE
	}
	if !validKind(kind) {
		return 0, fmt.Errorf("sign envelope: unknown kind %d", int32(kind))
	}
	if (kind == hearthv1.Header_KIND_RESPONSE || kind == hearthv1.Header_KIND_ERROR) && m.CorrelationID == "" {
		return 0, fmt.Errorf("sign envelope: a %s needs the request's id as correlation id", kind)
	}
	if err := checkKindType(kind, string(proto.MessageName(m.Body))); err != nil {
		return 0, fmt.Errorf("sign envelope: %w", err)
	}
	return kind, nil
}

func validKind(k hearthv1.Header_Kind) bool {
	switch k {
	case hearthv1.Header_KIND_MESSAGE, hearthv1.Header_KIND_REQUEST,
		hearthv1.Header_KIND_RESPONSE, hearthv1.Header_KIND_ERROR:
		return true
	}
	return false
}

// failureType is the body type of every KIND_ERROR message.
var failureType = string(proto.MessageName(&hearthv1.Failure{}))

// checkKindType enforces the one pairing of kind and type that the wire
// contract fixes: an error response carries a hearth.v1.Failure.
func checkKindType(kind hearthv1.Header_Kind, typ string) error {
	if kind == hearthv1.Header_KIND_ERROR && typ != failureType {
		return fmt.Errorf("a KIND_ERROR message carries %s, not %q", failureType, claimed(typ))
	}
	return nil
}

// newID returns a random 128-bit id in lowercase hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b[:])
}

// SignFor signs msg for a purpose other than an envelope: the signature
// covers purpose || "\x00" || msg, so that it can be mistaken neither for an
// envelope signature nor for one made for another purpose. purpose is a
// versioned name such as "hearth.sealing-key.v1"; it must not be empty or
// contain a NUL. The private key never leaves the Signer.
func (s *Signer) SignFor(purpose string, msg []byte) ([]byte, error) {
	if purpose == "" || strings.ContainsRune(purpose, 0) || purpose+"\x00" == signingContext {
		return nil, fmt.Errorf("sign for %q: not a purpose", purpose)
	}
	return ed25519.Sign(s.key, append(append([]byte(purpose), 0), msg...)), nil
}

// VerifyFor checks a SignFor signature by pub.
func VerifyFor(pub ed25519.PublicKey, purpose string, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || purpose == "" || purpose+"\x00" == signingContext {
		return false
	}
	return ed25519.Verify(pub, append(append([]byte(purpose), 0), msg...), sig)
}
