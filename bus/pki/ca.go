package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is the project root certificate authority. Its private key never leaves
// this value; it is written to disk only encrypted (see EncryptKey).
type CA struct {
	Cert *x509.Certificate
	key  ed25519.PrivateKey
}

// NewCA creates a self-signed root CA for project, valid from now for validity.
func NewCA(project string, now time.Time, validity time.Duration) (*CA, error) {
	if err := ValidName(project); err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: project + " root CA", Organization: []string{project}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(pub),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

// OpenCA loads a CA from its certificate and encrypted key PEM.
func OpenCA(certPEM, encryptedKeyPEM, passphrase []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("root certificate: %w", err)
	}
	key, err := DecryptKey(encryptedKeyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("root key does not match the root certificate")
	}
	return &CA{Cert: cert, key: key}, nil
}

// EncryptedKey returns the CA's private key encrypted under passphrase.
func (ca *CA) EncryptedKey(passphrase []byte) ([]byte, error) {
	return EncryptKey(ca.key, passphrase)
}

// Template describes a certificate to issue.
type Template struct {
	Identity  Identity
	PublicKey crypto.PublicKey // Ed25519
	Hosts     []string         // DNS names or IP addresses; servers and sites
	NotBefore time.Time
	NotAfter  time.Time
}

// Issue signs a leaf certificate for t. Key usages follow the kind: servers
// and sites may serve TLS (the hub, a site's loopback listener) and act as
// TLS clients; admins and aggregators are clients only. Every kind signs
// envelopes (digital signature).
func (ca *CA) Issue(t Template) (*x509.Certificate, error) {
	if err := t.Identity.Validate(); err != nil {
		return nil, err
	}
	pub, ok := t.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("participant %s: public key is %T, want Ed25519", t.Identity.Name, t.PublicKey)
	}
	if !t.NotAfter.After(t.NotBefore) {
		return nil, fmt.Errorf("participant %s: validity ends before it starts", t.Identity.Name)
	}
	// A certificate never outlives, nor predates, its issuer.
	if t.NotAfter.After(ca.Cert.NotAfter) {
		t.NotAfter = ca.Cert.NotAfter
	}
	if t.NotBefore.Before(ca.Cert.NotBefore) {
		t.NotBefore = ca.Cert.NotBefore
	}
	if !t.NotAfter.After(t.NotBefore) {
		return nil, fmt.Errorf("participant %s: validity lies outside the root CA's", t.Identity.Name)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        t.Identity.Subject(),
		NotBefore:      t.NotBefore,
		NotAfter:       t.NotAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		SubjectKeyId:   keyID(pub),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	switch t.Identity.Kind {
	case KindServer, KindSite:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range t.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	default:
		if len(t.Hosts) > 0 {
			return nil, fmt.Errorf("participant %s: %s certificates carry no host names", t.Identity.Name, t.Identity.Kind)
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("participant %s: sign certificate: %w", t.Identity.Name, err)
	}
	return x509.ParseCertificate(der)
}

// IssueWebServer signs a TLS server certificate for hosts (DNS names or
// IP addresses) that carries no participant identity: its subject has no
// O, OU or role, so IdentityOf refuses it and no Hearth listener or
// envelope check accepts it as a participant of any kind. It is for the
// web dashboard. pub may be Ed25519 or ECDSA: browsers sign TLS
// handshakes with ECDSA but not Ed25519.
func (ca *CA) IssueWebServer(pub crypto.PublicKey, hosts []string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	switch pub.(type) {
	case ed25519.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("web server certificate: public key is %T, want Ed25519 or ECDSA", pub)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("web server certificate: %w", err)
	}
	if len(hosts) == 0 {
		return nil, errors.New("web server certificate: no host names")
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, errors.New("web server certificate: validity ends before it starts")
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: hosts[0]},
		NotBefore:      notBefore,
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SubjectKeyId:   skid(spki),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("web server certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Sign signs data with the root key (startup kit manifests).
func (ca *CA) Sign(data []byte) []byte { return ed25519.Sign(ca.key, data) }

// Revocation is one entry of a revocation list.
type Revocation struct {
	Serial *big.Int
	Name   string // for humans; not part of the CRL
	At     time.Time
}

// RevocationList signs a CRL listing revoked. number must grow with every
// new list so that verifiers can refuse to go back to an older one.
func (ca *CA) RevocationList(revoked []Revocation, number int64, now time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                now,
		NextUpdate:                ca.Cert.NotAfter,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign revocation list: %w", err)
	}
	return der, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func skid(spki []byte) []byte {
	sum := sha256.Sum256(spki)
	return sum[:20]
}

func keyID(pub ed25519.PublicKey) []byte {
	sum := sha256.Sum256(pub)
	return sum[:20]
}

// Fingerprint is the SHA-256 of a certificate's DER encoding.
func Fingerprint(cert *x509.Certificate) [32]byte { return sha256.Sum256(cert.Raw) }
