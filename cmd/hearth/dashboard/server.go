// Package dashboard is Hearth's web dashboard, `hearth dashboard`: a web
// application on the CA holder's side where the project admin invites
// participants, org admins register their org's sites, everyone uploads
// certificate signing requests made where the key stays (`hearth cert
// request`), the project admin approves them, and each participant
// downloads its startup kit. No private key of a participant ever reaches
// the dashboard; kits are issued by provision.Approve, the code behind
// `hearth cert approve`, so the two are interchangeable.
//
// Security of the web side:
//   - HTTPS only, TLS 1.3; by default a certificate for the listen host
//     issued by the project root at every start (its key only in memory),
//     carrying no participant identity (pki.CA.IssueWebServer).
//   - Accounts: the project admin's password is set through a one-time
//     setup link printed at first start; others through their invitation,
//     a one-time link that expires. Passwords are hashed with argon2id.
//   - Sessions: 32 random bytes in a __Host- cookie (Secure, HttpOnly,
//     SameSite=Strict), stored hashed, with idle and absolute expiry.
//   - Every route names an Action that authorize decides (deny by default)
//     before the handler runs; handlers decide again on the target's org.
//     No route is reachable without a session but sign-in, setup,
//     invitation acceptance and the style sheet.
//   - Every state-changing request carries the session's CSRF token (or,
//     before a session, a double-submit token) and must not come from
//     another origin (Origin, Sec-Fetch-Site).
//   - Sign-in is throttled per account and per client address.
//   - Optionally, sign-in with an OpenID Connect provider (oidc.go): the
//     authorization-code flow with PKCE, for an existing account of the
//     token's verified e-mail.
//   - Every change is in a hash-chained audit table (audit.go).
//
// State lives in WORKSPACE/dashboard/dashboard.db (SQLite, pure Go,
// versioned migrations in migrations/); the project itself stays in the
// workspace that `hearth provision` made, or that the setup page made in an
// empty folder (project.go).
package dashboard

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthfl/hearth/bus/provision"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the dashboard runs with.
type Config struct {
	// Workspace is made by `hearth provision` (holds project.yml and ca/),
	// or an empty folder, where the setup page creates the project.
	Workspace  string
	Passphrase []byte // the CA passphrase: approvals, revocations, the TLS certificate
	Listen     string // host:port, e.g. 127.0.0.1:8443
	// Hosts are extra names for the generated TLS certificate besides the
	// listen host (an unspecified listen host gets localhost and 127.0.0.1).
	Hosts []string
	// CertFile and KeyFile, when both set, are the operator's TLS
	// certificate and key, used instead of one from the project root.
	CertFile, KeyFile string
	Defaults          fs.FS // default policy files for new kits (policies.Defaults())
	Log               *slog.Logger
	Notice            io.Writer // where the one-time setup link is printed (stderr)
	Now               func() time.Time
	HashParams        HashParams    // zero: DefaultHashParams
	InviteTTL         time.Duration // zero: DefaultInviteTTL
	// DialConsole, if set, connects the admin console that the jobs pages
	// and the participants' connected status are read through (`hearth
	// dashboard --admin-kit KIT`); it is called at first use and again
	// after a failure. ConsoleName is that admin's name, shown on the pages.
	DialConsole DialConsole
	ConsoleName string
	// OIDC, if set, adds sign-in with that OpenID Connect provider beside
	// the password (oidc.go).
	OIDC *OIDCConfig
}

// DefaultInviteTTL is how long an invitation link stays valid.
const DefaultInviteTTL = 72 * time.Hour

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Workspace == "" {
		errs = append(errs, errors.New("no workspace"))
	}
	if len(c.Passphrase) == 0 {
		errs = append(errs, errors.New("no CA passphrase"))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.Listen, err))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("give both --cert and --key, or neither"))
	}
	if c.Defaults == nil {
		errs = append(errs, errors.New("no default policy files"))
	}
	if c.HashParams != (HashParams{}) {
		if err := c.HashParams.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OIDC != nil {
		if err := c.OIDC.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Server is a running dashboard's state. New makes it; Serve (or Handler
// and TLSConfig) serve it; Close releases the database.
type Server struct {
	cfg       Config
	ws        string                    // absolute workspace
	ident     atomic.Pointer[projectID] // nil until the project exists (setup page)
	db        *sql.DB
	log       *slog.Logger
	pages     map[string]*template.Template
	routes    []route
	mux       *http.ServeMux
	accounts  *limiter      // failed sign-ins per account name as typed
	addresses *limiter      // and per client address
	hashSlots chan struct{} // bounds concurrent argon2 work (64 MiB each)
	dummyHash string        // verified against for unknown accounts, so they take as long
	tls       *tls.Config
	webCert   atomic.Pointer[tls.Certificate] // the generated certificate (not with --cert/--key)
	console   *consoleConn
	oidc      *oidcSignin // nil: no OIDC sign-in

	wsMu sync.Mutex // workspace operations (approve, revoke) are not concurrency-safe

	// reqMu orders certificate request uploads against approvals: an
	// upload checks and replaces a pending request under it, and an
	// approval claims its request under it (issuing, by name) for as long
	// as it issues the kit, so that an upload meanwhile is refused (409)
	// instead of replacing the request being approved.
	reqMu   sync.Mutex
	issuing map[string]bool
	// issuingHook, if set, runs once an approval has claimed its request
	// and before the kit is issued; tests hold it to upload meanwhile.
	issuingHook func(name string)

	setupMu    sync.Mutex
	setupToken string // "" once the project admin exists

	// hashWaiting counts requests waiting for a hash slot (maxHashWaiting).
	hashWaiting atomic.Int32
	// verify checks a password against its hash (nil: checkPassword); tests
	// hold it to keep sign-ins in flight.
	verify func(password, hash string) (bool, error)
	// shutdownGrace is how long Serve waits at the end for requests in
	// flight before it closes every connection (0: defaultShutdownGrace).
	shutdownGrace time.Duration
}

// defaultShutdownGrace is how long requests in flight get to finish when
// the dashboard stops.
const defaultShutdownGrace = 5 * time.Second

// New opens the workspace and the database and prepares the TLS
// certificate. Where no project admin exists yet it makes the one-time
// setup token (see SetupURL).
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HashParams == (HashParams{}) {
		cfg.HashParams = DefaultHashParams
	}
	if cfg.InviteTTL == 0 {
		cfg.InviteTTL = DefaultInviteTTL
	}
	ws, err := filepath.Abs(cfg.Workspace)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	s := &Server{cfg: cfg, ws: ws, log: cfg.Log, accounts: newLimiter(failuresAllowed), addresses: newLimiter(failuresPerAddress),
		hashSlots: make(chan struct{}, 2), console: &consoleConn{dial: cfg.DialConsole}, issuing: map[string]bool{}}
	if cfg.OIDC != nil {
		s.oidc = newOIDCSignin(*cfg.OIDC)
	}
	empty, err := emptyWorkspace(ws)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if !empty {
		if err := s.loadProject(); err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
	}
	if s.tls, err = s.tlsConfig(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if s.dummyHash, err = hashPassword(randomToken(), cfg.HashParams); err != nil {
		return nil, err
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if s.db, err = openDB(ctx, filepath.Join(ws, filepath.FromSlash(DBFile))); err != nil {
		return nil, err
	}
	var admins int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'project_admin'`).Scan(&admins); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("dashboard database: %w", err)
	}
	if admins == 0 || !s.hasProject() {
		s.setupToken = randomToken()
	}
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.HandleFunc(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/", s.notFound)
	return s, nil
}

// Close closes the admin console's connection and the database.
func (s *Server) Close() error {
	s.console.close()
	return s.db.Close()
}

// Handler serves the dashboard's pages; serve it over TLSConfig only.
func (s *Server) Handler() http.Handler { return securityHeaders(s.mux) }

// TLSConfig is the TLS configuration to serve Handler with (TLS 1.3).
func (s *Server) TLSConfig() *tls.Config { return s.tls.Clone() }

// SetupPath is the one-time setup page's path while no project admin
// exists ("" after).
func (s *Server) SetupPath() string {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.setupToken == "" {
		return ""
	}
	return "/setup/" + s.setupToken
}

// Serve listens on cfg.Listen and serves until ctx ends. While no project
// admin exists it prints the one-time setup link to cfg.Notice.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	base := "https://" + ln.Addr().String()
	if host, _, _ := net.SplitHostPort(s.cfg.Listen); host != "" && net.ParseIP(host) == nil {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		base = "https://" + net.JoinHostPort(host, port)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("dashboard listening", "url", base, "project", s.projectName(), "root", s.rootFingerprint().String())
	if p := s.SetupPath(); p != "" && s.cfg.Notice != nil {
		if s.hasProject() {
			fmt.Fprintf(s.cfg.Notice, "no project admin yet: open this one-time link to set the project admin's password:\n  %s%s\n", base, p)
		} else {
			fmt.Fprintf(s.cfg.Notice, "no project yet: open this one-time link to create the project (its CA and server kit) and set the project admin's password:\n  %s%s\n", base, p)
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("dashboard: %w", err)
	case <-ctx.Done():
	}
	grace := cmp.Or(s.shutdownGrace, defaultShutdownGrace)
	shut, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = srv.Shutdown(shut)
	if errors.Is(err, context.DeadlineExceeded) {
		// Still open after the grace: a request that did not finish, or a
		// connection that never sent one (browsers open such connections
		// ahead of need, and net/http counts one as busy for its first
		// 5 s). Stopping is what was asked: close them.
		s.log.Warn("dashboard: connections still open after the grace are closed", "grace", grace)
		if err = srv.Close(); errors.Is(err, net.ErrClosed) {
			err = nil // the listener, which Shutdown closed
		}
	}
	<-done
	return err
}

// webCertValidity is how long a generated TLS certificate lasts; a new
// one is made at every start.
const webCertValidity = 30 * 24 * time.Hour

// tlsConfig loads the operator's certificate, or serves one issued by the
// project root for the listen host with a fresh ECDSA P-256 key that is
// never written down (before the project exists, a self-signed one).
func (s *Server) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if s.cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, nil
	}
	var cert *tls.Certificate
	var err error
	if s.hasProject() {
		cert, err = s.rootIssuedCert()
	} else {
		cert, err = selfSignedCert(s.webHosts(), s.cfg.Now())
	}
	if err != nil {
		return nil, err
	}
	s.webCert.Store(cert)
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.webCert.Load(), nil }
	return cfg, nil
}

// webHosts are the names the generated certificate carries.
func (s *Server) webHosts() []string {
	host, _, _ := net.SplitHostPort(s.cfg.Listen)
	var hosts []string
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		hosts = []string{"localhost", "127.0.0.1"}
	} else {
		hosts = []string{host}
	}
	return append(hosts, s.cfg.Hosts...)
}

// rootIssuedCert issues the dashboard's certificate from the project root.
func (s *Server) rootIssuedCert() (*tls.Certificate, error) {
	ca, err := provision.OpenCA(s.ws, s.cfg.Passphrase)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	cert, err := ca.IssueWebServer(&key.PublicKey, s.webHosts(), now.Add(-5*time.Minute), now.Add(webCertValidity))
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }
