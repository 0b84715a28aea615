package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/scrypt"
)

// PEM block types written by this package.
const (
	pemCertificate  = "CERTIFICATE"
	pemPrivateKey   = "PRIVATE KEY"
	pemEncryptedKey = "HEARTH ENCRYPTED PRIVATE KEY"
	pemCSR          = "CERTIFICATE REQUEST"
	pemCRL          = "X509 CRL"
)

// NewKey generates an Ed25519 private key.
func NewKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// EncodeCert PEM-encodes a certificate.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: cert.Raw})
}

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemCertificate {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// EncodeKey PEM-encodes a private key (PKCS #8, unencrypted: the caller
// writes it with mode 0600).
func EncodeKey(key ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil { // cannot happen for a valid Ed25519 key
		panic(fmt.Sprintf("pki: marshal Ed25519 key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der})
}

// ParseKeyPEM parses an unencrypted PKCS #8 Ed25519 private key.
func ParseKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemPrivateKey {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want Ed25519", k)
	}
	return key, nil
}

// scrypt parameters for the encrypted root key (N=2^15, r=8, p=1: ~100 ms).
const (
	scryptN = 1 << 15
	scryptR = 8
	scryptP = 1
)

// ErrWrongPassphrase is returned when an encrypted key does not open.
var ErrWrongPassphrase = errors.New("wrong passphrase, or the encrypted key is corrupted")

// EncryptKey encrypts key under passphrase: scrypt derives an AES-256-GCM
// key from the passphrase and a random salt; the PEM block carries salt,
// nonce and ciphertext.
func EncryptKey(key ed25519.PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) < 8 {
		return nil, errors.New("passphrase must be at least 8 characters")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := passphraseAEAD(passphrase, salt)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	body := append(append(append([]byte{}, salt...), nonce...), aead.Seal(nil, nonce, der, []byte(pemEncryptedKey))...)
	return pem.EncodeToMemory(&pem.Block{
		Type:    pemEncryptedKey,
		Headers: map[string]string{"KDF": "scrypt N=32768 r=8 p=1", "Cipher": "AES-256-GCM"},
		Bytes:   body,
	}), nil
}

// DecryptKey reverses EncryptKey.
func DecryptKey(data, passphrase []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemEncryptedKey {
		return nil, fmt.Errorf("no PEM %s block", pemEncryptedKey)
	}
	if len(block.Bytes) < 16+12+16 {
		return nil, ErrWrongPassphrase
	}
	salt, rest := block.Bytes[:16], block.Bytes[16:]
	aead, err := passphraseAEAD(passphrase, salt)
	if err != nil {
		return nil, err
	}
	nonce, ct := rest[:aead.NonceSize()], rest[aead.NonceSize():]
	der, err := aead.Open(nil, nonce, ct, []byte(pemEncryptedKey))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse decrypted key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("encrypted key is %T, want Ed25519", k)
	}
	return key, nil
}

func passphraseAEAD(passphrase, salt []byte) (cipher.AEAD, error) {
	k, err := scrypt.Key(passphrase, salt, scryptN, scryptR, scryptP, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// EncodeCRL PEM-encodes a DER revocation list.
func EncodeCRL(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: der}) }

// DecodeCRL returns the DER of a PEM revocation list.
func DecodeCRL(data []byte) ([]byte, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemCRL {
		return nil, fmt.Errorf("no PEM %s block", pemCRL)
	}
	return block.Bytes, nil
}
