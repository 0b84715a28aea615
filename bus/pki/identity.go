// Package pki is Hearth's project public-key infrastructure: participant
// identities as carried in X.509 certificates, the project root CA that
// issues them, certificate requests, revocation lists, and the Trust that
// every verifier (TLS listeners, envelope checks, startup kits) consults.
//
// Certificates carry a participant's identity in documented subject fields:
//
//	CN    (2.5.4.3)   participant name, e.g. "site-1" or "admin@hospital.org"
//	O     (2.5.4.10)  organization
//	OU    (2.5.4.11)  participant kind: server | site | admin | aggregator
//	title (2.5.4.12)  admin role: project_admin | org_admin | lead | member
//
// All keys are Ed25519.
package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"regexp"
)

// Kind is the kind of participant a certificate was issued to.
type Kind string

// The participant kinds.
const (
	KindServer     Kind = "server"
	KindSite       Kind = "site"
	KindAdmin      Kind = "admin"
	KindAggregator Kind = "aggregator"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindServer, KindSite, KindAdmin, KindAggregator:
		return true
	}
	return false
}

// Role is an admin's role in the project, following NVIDIA FLARE's roles.
type Role string

// The admin roles.
const (
	RoleProjectAdmin Role = "project_admin"
	RoleOrgAdmin     Role = "org_admin"
	RoleLead         Role = "lead"
	RoleMember       Role = "member"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleProjectAdmin, RoleOrgAdmin, RoleLead, RoleMember:
		return true
	}
	return false
}

// oidTitle is X.520 "title", which carries an admin's role.
var oidTitle = asn1.ObjectIdentifier{2, 5, 4, 12}

// Names are used in NATS subjects and file names, so they are restricted:
// letters, digits, '-', '_', '.', '@'; starting with a letter or digit.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$`)

// ValidName reports whether name may be used as a participant or org name.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("invalid name %q: use 1-63 letters, digits, '.', '_', '-' or '@', starting with a letter or digit", name)
	}
	return nil
}

// Identity is who a certificate says its holder is.
type Identity struct {
	Name string
	Org  string
	Kind Kind
	Role Role // admins only
}

// String renders the identity for logs, e.g. "site-1 (site, org hospital-a)".
func (id Identity) String() string {
	if id.Role != "" {
		return fmt.Sprintf("%s (%s %s, org %s)", id.Name, id.Kind, id.Role, id.Org)
	}
	return fmt.Sprintf("%s (%s, org %s)", id.Name, id.Kind, id.Org)
}

// Validate checks that every field is well formed and that exactly admins
// carry a role.
func (id Identity) Validate() error {
	if err := ValidName(id.Name); err != nil {
		return fmt.Errorf("participant: %w", err)
	}
	if err := ValidName(id.Org); err != nil {
		return fmt.Errorf("participant %s: org: %w", id.Name, err)
	}
	if !id.Kind.Valid() {
		return fmt.Errorf("participant %s: unknown kind %q (want server, site, admin or aggregator)", id.Name, id.Kind)
	}
	switch {
	case id.Kind == KindAdmin && !id.Role.Valid():
		return fmt.Errorf("admin %s: unknown role %q (want project_admin, org_admin, lead or member)", id.Name, id.Role)
	case id.Kind != KindAdmin && id.Role != "":
		return fmt.Errorf("participant %s: only admins carry a role, %s has %q", id.Name, id.Kind, id.Role)
	}
	return nil
}

// Subject is the certificate subject that encodes id.
func (id Identity) Subject() pkix.Name {
	n := pkix.Name{
		CommonName:         id.Name,
		Organization:       []string{id.Org},
		OrganizationalUnit: []string{string(id.Kind)},
	}
	if id.Role != "" {
		n.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidTitle, Value: string(id.Role)}}
	}
	return n
}

// IdentityOf reads the identity from a certificate's subject. It fails if
// the fields are missing, repeated or malformed.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	s := cert.Subject
	if len(s.Organization) != 1 || len(s.OrganizationalUnit) != 1 {
		return Identity{}, fmt.Errorf("%w: certificate %q must carry exactly one O and one OU", ErrBadIdentity, s.CommonName)
	}
	id := Identity{Name: s.CommonName, Org: s.Organization[0], Kind: Kind(s.OrganizationalUnit[0])}
	for _, atv := range s.Names {
		if atv.Type.Equal(oidTitle) {
			role, ok := atv.Value.(string)
			if !ok || id.Role != "" {
				return Identity{}, fmt.Errorf("%w: certificate %q has a malformed role", ErrBadIdentity, s.CommonName)
			}
			id.Role = Role(role)
		}
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	return id, nil
}
