package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/hearthfl/hearth/plugins/authn"
)

// Bounds on what one decision accepts.
const (
	// MaxGroups is the most groups a user may be in: the group search's
	// size limit. A user in more is denied (their role cannot be known
	// from part of their groups).
	MaxGroups = 256
	// MaxUserName and MaxPassword bound the credential, in bytes.
	MaxUserName = 256
	MaxPassword = 1024
	// maxValuesPerGroup bounds the names one group entry contributes.
	maxValuesPerGroup = 16
	// maxDirectoryBytes bounds what one decision reads from the
	// directory, so that no answer can exhaust memory.
	maxDirectoryBytes = 1 << 20
	// maxListed is how many of a user's groups a denial names.
	maxListed = 8
)

// Authenticator is the LDAP authenticator. It is safe for concurrent
// use; each decision opens its own connection to the directory.
type Authenticator struct {
	settings atomic.Pointer[settings] // nil until Configure succeeds
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New returns an authenticator that is not configured yet: until
// Configure succeeds, Authenticate answers "could not decide".
func New() *Authenticator { return &Authenticator{} }

// settings is a configuration made ready for use.
type settings struct {
	cfg   *Config
	addr  string      // host:port to dial
	ldaps bool        // TLS from the start
	tls   *tls.Config // nil without TLS
}

// errNotConfigured answers every decision until Configure succeeds.
var errNotConfigured = errors.New("ldap: not configured")

// Configure parses config (see the package documentation) and, for
// ca_file, reads the CA file. On error the authenticator is left
// unconfigured, so that every decision fails closed.
func (a *Authenticator) Configure(ctx context.Context, config []byte) error {
	a.settings.Store(nil)
	cfg, err := ParseConfig(config)
	if err != nil {
		return err
	}
	u, _ := url.Parse(cfg.URL) // Validate parsed it
	s := &settings{cfg: cfg, ldaps: u.Scheme == "ldaps", addr: u.Host}
	if u.Port() == "" {
		port := goldap.DefaultLdapPort
		if s.ldaps {
			port = goldap.DefaultLdapsPort
		}
		s.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if cfg.TLS() {
		pem := []byte(cfg.CAPEM)
		if cfg.CAFile != "" {
			if pem, err = readCAFile(cfg.CAFile); err != nil {
				return configErr("ca_file", err, "%v", err)
			}
		}
		pool, err := parseCA(pem)
		if err != nil {
			return configErr("ca_file", err, "%s: %v", cfg.CAFile, err)
		}
		s.tls = tlsConfig(pool, cfg.ServerName, u.Hostname())
	}
	a.settings.Store(s)
	return nil
}

// tlsConfig verifies the directory's certificate against pool, for
// serverName or else the URL's host.
func tlsConfig(pool *x509.CertPool, serverName, host string) *tls.Config {
	if serverName == "" {
		serverName = host
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// readCAFile reads a CA file of bounded size.
func readCAFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCAFile {
		return nil, fmt.Errorf("%s: more than %d bytes", name, maxCAFile)
	}
	return data, nil
}

// Authenticate decides r: the package documentation lists what it
// denies and what it cannot decide.
func (a *Authenticator) Authenticate(ctx context.Context, r authn.Request) (authn.Decision, error) {
	s := a.settings.Load()
	if s == nil {
		return authn.Decision{}, errNotConfigured
	}
	user, password, reason := credential(r)
	if reason != "" {
		return authn.Decision{Reason: reason}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	conn, err := s.connect(ctx)
	if err != nil {
		return authn.Decision{}, s.fail(ctx, "connect", err)
	}
	defer conn.close()

	dn := userDN(s.cfg.UserDN, user)
	_, err = conn.SimpleBind(&goldap.SimpleBindRequest{Username: dn, Password: password})
	switch {
	case goldap.IsErrorAnyOf(err, goldap.LDAPResultInvalidCredentials, goldap.LDAPResultInappropriateAuthentication):
		// Inappropriate authentication: an entry without a password, in
		// some directories; read alike, so that no one learns it exists.
		return authn.Decision{Reason: "invalid credentials"}, nil
	case goldap.IsErrorAnyOf(err, goldap.LDAPResultUnwillingToPerform, goldap.LDAPResultInvalidDNSyntax):
		// A locked account (password policies answer so), a name the
		// directory cannot take.
		var le *goldap.Error
		errors.As(err, &le)
		return authn.Decision{Reason: "the directory refused the bind: " + goldap.LDAPResultCodeMap[le.ResultCode]}, nil
	case err != nil:
		return authn.Decision{}, s.fail(ctx, "bind", err)
	}

	groups, reason, err := s.groups(conn, dn, user)
	if err != nil {
		return authn.Decision{}, s.fail(ctx, "search groups", err)
	}
	d := authn.Decision{Subject: dn, Groups: groups}
	if reason != "" {
		d.Reason = reason
		return d, nil
	}
	for _, m := range s.cfg.Roles {
		for _, g := range groups {
			if strings.EqualFold(g, m.Group) {
				d.Authenticated = true
				d.Role = string(m.Role)
				d.Reason = fmt.Sprintf("bound to the directory as %q; group %s gives role %s", dn, quote(g), m.Role)
				return d, nil
			}
		}
	}
	d.Reason = fmt.Sprintf("no group of %q maps to a role here: %s", dn, listGroups(groups))
	return d, nil
}

// credential checks the request's credential and returns the directory
// user and password, or the reason to deny. It decides before the
// directory is reached.
func credential(r authn.Request) (user, password, reason string) {
	c := r.Credential
	switch {
	case c == nil:
		return "", "", "no credential: this site authenticates with an LDAP password"
	case c.Kind == authn.CredentialToken:
		return "", "", "the credential is a token: this site authenticates with an LDAP password"
	case c.Kind != authn.CredentialPassword:
		return "", "", "unknown credential kind " + quote(c.Kind) + ": this site authenticates with an LDAP password"
	}
	user = r.Requester.Name
	switch {
	case user == "":
		return "", "", "the requester's certificate carries no name"
	case len(user) > MaxUserName || !utf8.ValidString(user):
		return "", "", "the certificate's name is not a directory user name (over " + fmt.Sprint(MaxUserName) + " bytes or not UTF-8)"
	case c.User != "" && c.User != user:
		return "", "", "the credential is for directory user " + quote(c.User) + ", not the certificate's name " + quote(user)
	case c.Secret == "":
		// LDAP takes a simple bind without a password as an
		// unauthenticated bind, which succeeds.
		return "", "", "empty password"
	case len(c.Secret) > MaxPassword:
		return "", "", fmt.Sprintf("password longer than %d bytes", MaxPassword)
	}
	return user, c.Secret, ""
}

// groups searches the user's groups, bound as the user, and returns
// their names; a non-empty reason denies.
func (s *settings) groups(conn *dirConn, dn, user string) (names []string, reason string, err error) {
	res, err := conn.Search(&goldap.SearchRequest{
		BaseDN:           s.cfg.GroupBase,
		Scope:            goldap.ScopeWholeSubtree,
		DerefAliases:     goldap.NeverDerefAliases,
		SizeLimit:        MaxGroups,
		EnforceSizeLimit: true,
		TimeLimit:        int((s.cfg.Timeout + time.Second - 1) / time.Second),
		Filter:           groupFilter(s.cfg.GroupFilter, dn, user),
		Attributes:       []string{s.cfg.GroupAttr},
	})
	switch {
	case errors.Is(err, goldap.ErrSizeLimitExceeded) || goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded):
		return nil, fmt.Sprintf("%q is in more than %d groups, this authenticator's limit", dn, MaxGroups), nil
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		return nil, "", fmt.Errorf("group_base %s does not exist: %w", s.cfg.GroupBase, err)
	case err != nil:
		return nil, "", err
	}
	for _, e := range res.Entries {
		values := e.GetEqualFoldAttributeValues(s.cfg.GroupAttr)
		if len(values) > maxValuesPerGroup {
			values = values[:maxValuesPerGroup]
		}
		for _, v := range values {
			// A name longer than any mapped one can match none.
			if v != "" && len(v) <= MaxGroupName && len(names) < MaxGroups {
				names = append(names, v)
			}
		}
	}
	return names, "", nil
}

// fail wraps a directory failure, naming the cause when it is ctx's
// (a timeout or a cancellation).
func (s *settings) fail(ctx context.Context, op string, err error) error {
	cause := ctx.Err()
	if deadline, ok := ctx.Deadline(); ok && cause == nil && !time.Now().Before(deadline) {
		// The connection's deadline, which is ctx's, passed an instant
		// before ctx noticed.
		cause = context.DeadlineExceeded
	}
	if cause != nil {
		return fmt.Errorf("ldap: %s at %s: %w: %w", op, s.cfg.URL, cause, err)
	}
	return fmt.Errorf("ldap: %s at %s: %w", op, s.cfg.URL, err)
}

// dirConn is one decision's connection to the directory.
type dirConn struct {
	*goldap.Conn
	stop func() bool // stops the cancellation hook
}

func (c *dirConn) close() {
	c.stop()
	c.Conn.Close()
}

// connect opens a connection that ctx bounds: its deadline is the
// connection's, and its cancellation breaks the connection off. TLS
// (ldaps:// or StartTLS) is established before it is returned.
func (s *settings) connect(ctx context.Context) (*dirConn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		raw.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	var nc net.Conn = &budgetConn{Conn: raw, left: maxDirectoryBytes}
	if s.ldaps {
		tc := tls.Client(nc, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			raw.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	conn := goldap.NewConn(nc, s.ldaps)
	conn.Start()
	conn.SetTimeout(s.cfg.Timeout)
	c := &dirConn{Conn: conn, stop: stop}
	if s.cfg.StartTLS {
		if err := conn.StartTLS(s.tls); err != nil {
			c.close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return c, nil
}

// budgetConn fails reads once the connection has read its budget of
// bytes. Only the connection's reader goroutine reads it.
type budgetConn struct {
	net.Conn
	left int
}

var errOverBudget = fmt.Errorf("the directory sent more than %d bytes for one decision", maxDirectoryBytes)

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errOverBudget
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

// quote quotes s for a reason, cut to 64 bytes.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}

// listGroups names up to maxListed groups for a denial.
func listGroups(groups []string) string {
	if len(groups) == 0 {
		return "in no group"
	}
	var b strings.Builder
	b.WriteString("groups ")
	for i, g := range groups {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(groups)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(g))
	}
	return b.String()
}
