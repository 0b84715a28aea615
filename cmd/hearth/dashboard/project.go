package dashboard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
)

// The project a dashboard serves is either in its workspace when it starts
// (`hearth provision` made it), or made by the setup page in an empty
// folder: the project admin names the project and the server, and
// provision.Provision creates the CA and the server's kit, as `hearth
// provision` does with a project file holding only the server.

// The defaults the setup page offers for a new project's server, the
// ports of project.example.yml.
const (
	DefaultServerName = "server"
	DefaultLeafPort   = 7422
	DefaultClientPort = 4222
)

// projectID is what the pages show of the project: its name and root.
type projectID struct {
	name string
	root kit.Fingerprint
}

// projectName is the project's name ("" before the setup page made it).
func (s *Server) projectName() string {
	if id := s.ident.Load(); id != nil {
		return id.name
	}
	return ""
}

// rootFingerprint is the project root's fingerprint (zero before setup).
func (s *Server) rootFingerprint() kit.Fingerprint {
	if id := s.ident.Load(); id != nil {
		return id.root
	}
	return kit.Fingerprint{}
}

// hasProject reports whether the workspace holds a project.
func (s *Server) hasProject() bool { return s.ident.Load() != nil }

// loadProject reads the workspace's project and root into s.ident.
func (s *Server) loadProject() error {
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	root, err := provision.RootFingerprint(s.ws)
	if err != nil {
		return err
	}
	s.ident.Store(&projectID{name: p.Name, root: root})
	return nil
}

// emptyWorkspace reports whether ws holds no project yet: it does not
// exist, or holds nothing but the dashboard's own folder. A folder that
// holds anything else and no project.yml is refused.
func emptyWorkspace(ws string) (bool, error) {
	if _, err := os.Stat(filepath.Join(ws, "project.yml")); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	entries, err := os.ReadDir(ws)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Name() != filepath.Dir(filepath.FromSlash(DBFile)) {
			return false, fmt.Errorf("workspace %s holds no project.yml but is not empty (%s): give a workspace `hearth provision` made, or an empty folder for the setup page to create the project in", ws, e.Name())
		}
	}
	return true, nil
}

// newProjectForm reads the setup page's project fields into a project of
// only the server (org: the project admin's), checked as a project file is.
func newProjectForm(r *http.Request, org string) (*provision.Project, error) {
	server, err := serverForm(r, DefaultServerName, org)
	if err != nil {
		return nil, badRequest("project: %v", err)
	}
	p := &provision.Project{APIVersion: 1, Name: strings.TrimSpace(r.PostFormValue("project")), Server: server,
		CertValidityDays: provision.DefaultCertValidityDays}
	if err := p.Validate(); err != nil {
		return nil, badRequest("project: %v", err)
	}
	return p, nil
}

// serverForm reads a form's server fields (hosts, leaf_port, client_port,
// websocket_port: empty is the default) into the server name of org.
func serverForm(r *http.Request, name, org string) (provision.ServerSpec, error) {
	var errs []error
	port := func(field string, def int) int {
		v := strings.TrimSpace(r.PostFormValue(field))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a number", field, bounded(v)))
		}
		return n
	}
	sv := provision.ServerSpec{Name: name, Org: org, Hosts: splitHosts(r.PostFormValue("hosts")),
		LeafPort: port("leaf_port", DefaultLeafPort), ClientPort: port("client_port", DefaultClientPort), WebsocketPort: port("websocket_port", 0)}
	return sv, errors.Join(errs...)
}

// projectPage shows the project's server and the form to change it.
func (s *Server) projectPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	s.render(w, r, rq, http.StatusOK, "project.html", "Project", map[string]any{"Server": p.Server, "Hosts": strings.Join(p.Server.Hosts, ", "), "Aggregators": p.Aggregators})
	return nil
}

// changeServer changes the server's hosts and ports through
// provision.ChangeServer, which re-issues the server's kit, and refuses
// (409) once any other participant has a kit: each carries the server's
// address and trusts its certificate's names. Refusals are audited
// (project.server.refused) as the change is (project.server), as a
// rename's are.
func (s *Server) changeServer(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	now := s.now()
	refuse := func(refusal error) error { // an *httpError, whose Error is its message
		if err := audit(r.Context(), s.db, now, rq.user.Email, "project.server.refused", s.projectName(), refusal.Error()); err != nil {
			return err
		}
		return refusal
	}
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	server, err := serverForm(r, p.Server.Name, p.Server.Org)
	if err != nil {
		return refuse(badRequest("%v", err))
	}
	changed := *p
	changed.Server = server
	if err := changed.Validate(); err != nil {
		return refuse(badRequest("%v", err))
	}
	if err := provision.ChangeServer(s.ws, s.cfg.Passphrase, server, s.cfg.Defaults, now); err != nil {
		return refuse(conflict("%v", err))
	}
	if err := audit(r.Context(), s.db, now, rq.user.Email, "project.server", server.Name, serverDetail(server)+"; its kit re-issued"); err != nil {
		return err
	}
	http.Redirect(w, r, "/project", http.StatusSeeOther)
	return nil
}

// splitHosts splits a list of host names at commas and spaces.
func splitHosts(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// createProject provisions p in the empty workspace (the CA, its key
// encrypted under the passphrase, and the server's kit), then serves a
// TLS certificate from its root.
func (s *Server) createProject(p *provision.Project) error {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	if s.hasProject() {
		return badRequest("the project already exists")
	}
	if _, err := provision.Provision(p, s.ws, s.cfg.Passphrase, s.cfg.Defaults, s.now()); err != nil {
		return badRequest("create the project: %v", err)
	}
	if err := s.newRoot(); err != nil {
		return err
	}
	s.log.Info("project created", "project", p.Name, "root", s.rootFingerprint().String())
	return nil
}

// newRoot reads the workspace's project and root again after they were
// made or re-made, and serves new connections a TLS certificate from the
// root (unless the operator gave one).
func (s *Server) newRoot() error {
	if err := s.loadProject(); err != nil {
		return err
	}
	if s.cfg.CertFile == "" {
		cert, err := s.rootIssuedCert()
		if err != nil {
			return err
		}
		s.webCert.Store(cert)
	}
	return nil
}

// renameProject re-creates the project under a new name through
// provision.RenameProject (a new root, so a new fingerprint, and the
// server's kit from it), while no participant but the server has a kit;
// once one has, it is refused (409) with the reason: that kit trusts the
// old root. Refusals are audited (project.rename.refused) as the rename
// is (project.rename).
func (s *Server) renameProject(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	old := s.projectName()
	name := strings.TrimSpace(r.PostFormValue("project"))
	now := s.now()
	refuse := func(refusal error) error {
		var he *httpError
		detail := refusal.Error()
		if errors.As(refusal, &he) {
			detail = he.msg
		}
		if err := audit(r.Context(), s.db, now, rq.user.Email, "project.rename.refused", bounded(name), "from "+old+": "+detail); err != nil {
			return err
		}
		return refusal
	}
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	renamed := *p
	renamed.Name = name
	switch err := renamed.Validate(); {
	case name == p.Name:
		return refuse(badRequest("the project is named %s already", p.Name))
	case err != nil:
		return refuse(badRequest("%v", err))
	}
	res, err := provision.RenameProject(s.ws, s.cfg.Passphrase, name, s.cfg.Defaults, now)
	if err != nil {
		return refuse(conflict("%v", err))
	}
	if err := s.newRoot(); err != nil {
		return err
	}
	if err := audit(r.Context(), s.db, now, rq.user.Email, "project.rename", name, fmt.Sprintf("from %s; a new root %s, the server's kit re-issued from it", old, res.RootFingerprint)); err != nil {
		return err
	}
	s.log.Info("project renamed", "from", old, "project", name, "root", res.RootFingerprint)
	http.Redirect(w, r, "/project", http.StatusSeeOther)
	return nil
}

// selfSignedCert is the TLS certificate served before the project (and so
// its root) exists: self-signed, its key only in memory, replaced by one
// from the root as soon as the setup page creates the project.
func selfSignedCert(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "hearth dashboard setup"},
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(webCertValidity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// serverDetail is a server's address as the audit records it.
func serverDetail(sv provision.ServerSpec) string {
	return fmt.Sprintf("server %s (org %s) hosts %s, leaf_port %d, client_port %d, websocket_port %d",
		sv.Name, sv.Org, strings.Join(sv.Hosts, ","), sv.LeafPort, sv.ClientPort, sv.WebsocketPort)
}

// addAggregator adds an aggregation host to the project from its
// certificate request (`hearth cert request --kind aggregator`, made where
// its key stays): the project admin uploading it is the approval, so its
// kit is issued at once through provision.Approve, which also adds it to
// the server kit's participants.json (so, unlike the server's address,
// this needs no kit re-issued and works at any time). Its name must be
// free, as a site's.
func (s *Server) addAggregator(w http.ResponseWriter, r *http.Request, rq *request) error {
	csr, err := readCSR(r)
	if err != nil {
		return err
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return badRequest("certificate request: %v", err)
	}
	id := req.Identity
	if id.Kind != pki.KindAggregator {
		return badRequest("the certificate request is for a %s, not an aggregation host: make it with --kind aggregator", id.Kind)
	}
	if _, err := checkCSR(csr, pki.Identity{Name: id.Name, Org: id.Org, Kind: pki.KindAggregator}); err != nil {
		return err
	}
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	used, err := s.nameInUse(r.Context(), id.Name)
	if err != nil {
		return err
	}
	if used || nameTaken(p, id.Name) {
		return conflict("the name %s is taken: an aggregation host's name is never a participant's, an account's, an invitation's or a site's", id.Name)
	}
	now := s.now()
	dir, err := provision.Approve(s.ws, s.cfg.Passphrase, csr, s.cfg.Defaults, now)
	if err != nil {
		return conflict("%v", err)
	}
	if err := audit(r.Context(), s.db, now, rq.user.Email, "aggregator.add", id.Name, "org "+id.Org+", kit "+dir); err != nil {
		return err
	}
	http.Redirect(w, r, "/project", http.StatusSeeOther)
	return nil
}

// downloadAggregatorKit hands out an aggregation host's kit (no key in
// it), unless its certificate was revoked.
func (s *Server) downloadAggregatorKit(w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("name")
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(p.Aggregators, func(a provision.AggregatorSpec) bool { return a.Name == name }) {
		return notFound("aggregation host")
	}
	return s.sendKit(w, r, rq, name)
}
