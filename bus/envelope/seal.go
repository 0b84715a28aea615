package envelope

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// sealInfo is the HKDF info string of sealed bodies; a new format gets a
// new string.
const sealInfo = "hearth.sealed.v1"

// Seal encrypts body to recipient, an X25519 public key, binding it to
// header (the envelope's header bytes) as associated data:
//
//	e       = fresh X25519 key pair
//	shared  = X25519(e.private, recipient)
//	key     = HKDF-SHA256(secret shared, salt e.public || recipient, info "hearth.sealed.v1"), 32 bytes
//	ct      = ChaCha20-Poly1305(key, random 12-byte nonce, body, associated data header)
//
// The result names the recipient key by its SHA-256 (of the 32-byte public
// key). Only the holder of the recipient's private key can open it, and only
// together with the same header bytes.
func Seal(header []byte, body []byte, recipient *ecdh.PublicKey) (*hearthv1.SealedBody, error) {
	if recipient == nil || recipient.Curve() != ecdh.X25519() {
		return nil, errors.New("seal: recipient key must be an X25519 public key")
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal: ephemeral key: %w", err)
	}
	aead, err := sealAEAD(eph, recipient, eph.PublicKey(), recipient)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce) // never fails
	rk := sha256.Sum256(recipient.Bytes())
	return &hearthv1.SealedBody{
		RecipientKeySha256: rk[:],
		EphemeralPublicKey: eph.PublicKey().Bytes(),
		Nonce:              nonce,
		Ciphertext:         aead.Seal(nil, nonce, body, header),
	}, nil
}

// Unseal decrypts sb with key, the recipient's X25519 private key, and
// header, the envelope's header bytes as received. It fails with an error
// wrapping ErrUnseal if sb was sealed to another key, if the header or any
// part of sb was altered, or if key is not an X25519 private key.
func Unseal(header []byte, sb *hearthv1.SealedBody, key *ecdh.PrivateKey) ([]byte, error) {
	fail := func(detail string) ([]byte, error) {
		return nil, fmt.Errorf("%w: %s", ErrUnseal, detail)
	}
	if key == nil || key.Curve() != ecdh.X25519() {
		return fail("key must be an X25519 private key")
	}
	if sb == nil {
		return fail("no sealed body")
	}
	pub := key.PublicKey()
	rk := sha256.Sum256(pub.Bytes())
	if subtle.ConstantTimeCompare(rk[:], sb.GetRecipientKeySha256()) != 1 {
		return fail("sealed to another key")
	}
	eph, err := ecdh.X25519().NewPublicKey(sb.GetEphemeralPublicKey())
	if err != nil {
		return fail("malformed ephemeral key")
	}
	if len(sb.GetNonce()) != chacha20poly1305.NonceSize {
		return fail("malformed nonce")
	}
	aead, err := sealAEAD(key, eph, eph, pub)
	if err != nil {
		return fail(err.Error())
	}
	plain, err := aead.Open(nil, sb.GetNonce(), sb.GetCiphertext(), header)
	if err != nil {
		return fail("ciphertext or header altered, or wrong key")
	}
	return plain, nil
}

// sealAEAD derives the body key from the agreement between priv and peer;
// ephPub and recipientPub make the HKDF salt.
func sealAEAD(priv *ecdh.PrivateKey, peer, ephPub, recipientPub *ecdh.PublicKey) (cipher.AEAD, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("key agreement: %w", err)
	}
	salt := append(append(make([]byte, 0, 64), ephPub.Bytes()...), recipientPub.Bytes()...)
	k, err := hkdf.Key(sha256.New, shared, salt, sealInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return chacha20poly1305.New(k)
}

// wellFormedSealed reports whether sb's fixed-size fields have their sizes.
func wellFormedSealed(sb *hearthv1.SealedBody) bool {
	return len(sb.GetRecipientKeySha256()) == sha256.Size &&
		len(sb.GetEphemeralPublicKey()) == x25519KeySize &&
		len(sb.GetNonce()) == chacha20poly1305.NonceSize
}

// x25519KeySize is the size of an X25519 public key.
const x25519KeySize = 32
