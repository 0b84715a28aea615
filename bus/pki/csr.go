package pki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
)

// NewCSR makes a certificate request for id with key, so that a private key
// can be made where it will be used and never travel.
func NewCSR(id Identity, key ed25519.PrivateKey, hosts []string) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: id.Subject()}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), nil
}

// Request is a parsed, self-signature-checked certificate request.
type Request struct {
	Identity  Identity
	PublicKey ed25519.PublicKey
	Hosts     []string
}

// ParseCSR parses a PEM certificate request, checks its self-signature and
// reads the identity it asks for.
func ParseCSR(data []byte) (*Request, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemCSR {
		return nil, errors.New("no PEM CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate request key is %T, want Ed25519", csr.PublicKey)
	}
	id, err := IdentityOf(&x509.Certificate{Subject: csr.Subject})
	if err != nil {
		return nil, err
	}
	r := &Request{Identity: id, PublicKey: pub, Hosts: append([]string{}, csr.DNSNames...)}
	for _, ip := range csr.IPAddresses {
		r.Hosts = append(r.Hosts, ip.String())
	}
	return r, nil
}
