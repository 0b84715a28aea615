package oidc

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/hearthfl/hearth/plugins/authn"
)

// Config is an OIDC authenticator's section of a site's policy, as JSON:
//
//	{
//	  "issuer": "https://idp.hospital-a.example/dex",
//	  "ca_file": "/etc/hearth/idp-ca.pem",
//	  "audience": "site-1",
//	  "subject_claim": "preferred_username",
//	  "groups_claim": "groups",
//	  "skew": "30s",
//	  "roles": [{"group": "fl-leads", "role": "lead"}, {"group": "fl-members", "role": "member"}],
//	  "algorithms": ["RS256", "ES256"],
//	  "timeout": "10s"
//	}
//
// Only issuer and roles are required. Unknown fields, trailing data and
// values out of their bounds are refused (ParseConfig).
type Config struct {
	// Issuer is the provider's issuer URL, exactly as its tokens' "iss"
	// claim and its discovery document name it; https only.
	Issuer string `json:"issuer"`
	// CAPEM (PEM text) or CAFile (a PEM file's path, read once by
	// ParseConfig) is the trust for the provider's TLS certificate; with
	// neither, the system's roots. At most one of the two.
	CAPEM  string `json:"ca_pem,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
	// Audience is the client id a token must be meant for (one of its
	// "aud" values). Empty: the name of the site deciding (Request.Site).
	Audience string `json:"audience,omitempty"`
	// SubjectClaim names the claim whose value must equal the requester's
	// certificate name (default "sub"; e.g. "preferred_username" or
	// "email"; "email" also requires "email_verified": true). Name only a
	// claim the provider's users cannot set themselves: where a user may
	// edit their preferred_username, they could claim another admin's
	// name and lend them their groups. Dex's LDAP connector takes it from
	// the directory's uid, which the user cannot change.
	SubjectClaim string `json:"subject_claim,omitempty"`
	// GroupsClaim names the claim listing the person's groups (default
	// "groups"): a list of strings.
	GroupsClaim string `json:"groups_claim,omitempty"`
	// Skew is the clock difference tolerated on "exp", "nbf" and "iat"
	// (default 30s, at most MaxSkew).
	Skew Duration `json:"skew,omitempty"`
	// Roles maps groups to local roles; the first mapping whose group the
	// token lists gives the role. A token with none of them is denied.
	Roles []RoleMapping `json:"roles"`
	// Algorithms are the signature algorithms accepted (default RS256 and
	// ES256); "none" and the HMAC algorithms are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`
	// Timeout bounds each request to the provider (discovery, keys;
	// default 10s, between MinTimeout and MaxTimeout).
	Timeout Duration `json:"timeout,omitempty"`

	// caPool is the parsed CAPEM or CAFile; nil for the system roots.
	caPool *x509.CertPool
}

// RoleMapping gives members of Group the local role Role.
type RoleMapping struct {
	Group string `json:"group"`
	Role  string `json:"role"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("30s", "2m").
type Duration time.Duration

// UnmarshalJSON reads a duration string; numbers are refused (their unit
// would be a guess).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Defaults and bounds of Config.
const (
	DefaultSubjectClaim = "sub"
	DefaultGroupsClaim  = "groups"
	DefaultSkew         = 30 * time.Second
	MaxSkew             = 5 * time.Minute
	DefaultTimeout      = 10 * time.Second
	MinTimeout          = 100 * time.Millisecond
	MaxTimeout          = time.Minute

	maxConfigBytes = 1 << 20 // the whole JSON section, CA PEM included
	maxRoles       = 256
	maxNameBytes   = 256 // a group, a role, an audience
)

// DefaultAlgorithms returns the signature algorithms accepted when
// Config names none: RS256 and ES256.
func DefaultAlgorithms() []string { return []string{oidc.RS256, oidc.ES256} }

// allowedAlgorithms are the asymmetric algorithms go-oidc verifies.
// "none" and HS256/384/512 (a shared secret any client holds) are absent
// on purpose.
var allowedAlgorithms = map[string]bool{
	oidc.RS256: true, oidc.RS384: true, oidc.RS512: true,
	oidc.ES256: true, oidc.ES384: true, oidc.ES512: true,
	oidc.PS256: true, oidc.PS384: true, oidc.PS512: true,
	oidc.EdDSA: true,
}

// claimName is what a configured claim name may look like.
var claimName = regexp.MustCompile(`^[A-Za-z0-9_:./-]{1,64}$`)

// ParseConfig reads an authenticator's JSON section strictly (unknown
// fields, trailing data and oversized input refused) over the defaults,
// reads CAFile if named, and validates the result.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("oidc config: %d bytes, more than %d", len(data), maxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	// The defaults first: what the JSON names replaces them, so that an
	// explicit "skew": "0s" is zero, not the default.
	c := Config{
		SubjectClaim: DefaultSubjectClaim,
		GroupsClaim:  DefaultGroupsClaim,
		Skew:         Duration(DefaultSkew),
		Algorithms:   DefaultAlgorithms(),
		Timeout:      Duration(DefaultTimeout),
	}
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("oidc config: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("oidc config: data after the JSON object")
	}
	if c.CAFile != "" {
		if c.CAPEM != "" {
			return nil, errors.New("oidc config: ca_pem and ca_file are both set; name one")
		}
		pemBytes, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("oidc config: ca_file: %w", err)
		}
		c.CAPEM = string(pemBytes)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every field against its bounds and parses the CA.
func (c *Config) Validate() error {
	if err := validIssuer(c.Issuer); err != nil {
		return fmt.Errorf("oidc config: issuer: %w", err)
	}
	c.caPool = nil
	if c.CAPEM != "" {
		pool, err := parseCA([]byte(c.CAPEM))
		if err != nil {
			return fmt.Errorf("oidc config: CA: %w", err)
		}
		c.caPool = pool
	}
	if len(c.Audience) > maxNameBytes {
		return fmt.Errorf("oidc config: audience longer than %d bytes", maxNameBytes)
	}
	for _, f := range []struct{ name, v string }{{"subject_claim", c.SubjectClaim}, {"groups_claim", c.GroupsClaim}} {
		if !claimName.MatchString(f.v) {
			return fmt.Errorf("oidc config: %s %s: use 1-64 letters, digits or _:./-", f.name, strconv.Quote(f.v))
		}
	}
	if c.SubjectClaim == c.GroupsClaim {
		return fmt.Errorf("oidc config: subject_claim and groups_claim are both %q", c.SubjectClaim)
	}
	if skew := time.Duration(c.Skew); skew < 0 || skew > MaxSkew {
		return fmt.Errorf("oidc config: skew %v: between 0 and %v", skew, MaxSkew)
	}
	if t := time.Duration(c.Timeout); t < MinTimeout || t > MaxTimeout {
		return fmt.Errorf("oidc config: timeout %v: between %v and %v", t, MinTimeout, MaxTimeout)
	}
	if len(c.Algorithms) == 0 {
		return errors.New("oidc config: algorithms: none listed")
	}
	for _, a := range c.Algorithms {
		if !allowedAlgorithms[a] {
			return fmt.Errorf("oidc config: algorithm %q not accepted (asymmetric JWS algorithms only: RS*, ES*, PS*, EdDSA)", a)
		}
	}
	if len(c.Roles) == 0 {
		return errors.New("oidc config: roles: no group is mapped to a role, so no one could be authenticated")
	}
	if len(c.Roles) > maxRoles {
		return fmt.Errorf("oidc config: roles: %d mappings, more than %d", len(c.Roles), maxRoles)
	}
	for i, m := range c.Roles {
		if m.Group == "" || m.Role == "" || len(m.Group) > maxNameBytes || len(m.Role) > maxNameBytes {
			return fmt.Errorf("oidc config: roles[%d]: group and role are both required, at most %d bytes each", i, maxNameBytes)
		}
		if err := authn.ValidRole(m.Role); err != nil {
			return fmt.Errorf("oidc config: roles[%d]: %w", i, err)
		}
	}
	return nil
}

// validIssuer accepts an absolute https URL with a host and no user
// info, query or fragment (the issuer identifier of OpenID Connect
// Discovery 1.0, section 3).
func validIssuer(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("%q: https only", s)
	case u.Host == "":
		return fmt.Errorf("%q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q: no user info, query or fragment", s)
	}
	return nil
}

// parseCA reads one or more PEM certificates into a pool; anything else
// in the PEM text is refused.
func parseCA(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, errors.New("text that is not PEM")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM %q block; want CERTIFICATE", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return pool, nil
}
