package provision

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

// RequestFiles names the files Request wrote.
type RequestFiles struct {
	Key string // the private key (mode 0600); it stays with its owner
	CSR string // the certificate request to send to the project admin
}

// Request makes a private key and a certificate request for id, so that
// the key never leaves its owner: it writes dir/key.pem (0600; an existing
// key is never overwritten) and dir/<name>.csr. Servers are provisioned
// centrally and cannot request; a site may ask only for the names every
// site certificate carries (localhost, 127.0.0.1); others for none.
func Request(dir string, id pki.Identity, hosts []string) (RequestFiles, error) {
	if err := checkRequest(id, hosts); err != nil {
		return RequestFiles{}, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return RequestFiles{}, err
	}
	csr, err := pki.NewCSR(id, key, hosts)
	if err != nil {
		return RequestFiles{}, err
	}
	files := RequestFiles{Key: filepath.Join(dir, kit.KeyFile), CSR: filepath.Join(dir, id.Name+".csr")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return RequestFiles{}, fmt.Errorf("certificate request: %w", err)
	}
	f, err := os.OpenFile(files.Key, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return RequestFiles{}, fmt.Errorf("certificate request: %s already exists: move it away first (it may be the key of an earlier request)", files.Key)
	}
	if err != nil {
		return RequestFiles{}, fmt.Errorf("certificate request: %w", err)
	}
	_, err = f.Write(pki.EncodeKey(key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return RequestFiles{}, fmt.Errorf("certificate request: %w", err)
	}
	if err := os.WriteFile(files.CSR, csr, 0o644); err != nil {
		return RequestFiles{}, fmt.Errorf("certificate request: %w", err)
	}
	return files, nil
}

// CheckRequest refuses a request for id with hosts that Approve would
// refuse for its kind (a server; host names a site's or an admin's
// certificate may not carry), so that it can be refused when uploaded.
func CheckRequest(id pki.Identity, hosts []string) error { return checkRequest(id, hosts) }

// checkRequest refuses what Approve would refuse, before a key is made.
func checkRequest(id pki.Identity, hosts []string) error {
	if err := id.Validate(); err != nil {
		return err
	}
	switch id.Kind {
	case pki.KindServer:
		return fmt.Errorf("participant %s: server certificates come only from `hearth provision`", id.Name)
	case pki.KindSite:
		for _, h := range hosts {
			if !slices.Contains(siteHosts, h) {
				return fmt.Errorf("site %s: host %q: site certificates carry only %v (the site's loopback listener)", id.Name, h, siteHosts)
			}
		}
	default:
		if len(hosts) > 0 {
			return fmt.Errorf("participant %s: %s certificates carry no host names", id.Name, id.Kind)
		}
	}
	return nil
}

// Approve issues a certificate for a request made with `hearth cert
// request` and writes the requester's kit to KitDir(workspace, name),
// without key.pem: its owner copies in the key made with the request (kit
// Load refuses the kit until then). It refuses a server request and a name
// already in the project (names are never reused, even after a
// revocation), adds the participant to project.yml and to the server kit's
// participants.json, and returns the kit folder. defaults are the default
// policy files, as for Provision.
func Approve(workspace string, passphrase []byte, csrPEM []byte, defaults fs.FS, now time.Time) (string, error) {
	return approve(workspace, passphrase, csrPEM, nil, defaults, now)
}

// ApproveSite is Approve for a site request whose kit carries site's leaf
// settings (proxy, websocket, local port, data folder), as a project
// file's site entry would: the web dashboard records them when the site
// registers. site's name and org must be the request's.
func ApproveSite(workspace string, passphrase []byte, csrPEM []byte, site SiteSpec, defaults fs.FS, now time.Time) (string, error) {
	return approve(workspace, passphrase, csrPEM, &site, defaults, now)
}

func approve(workspace string, passphrase []byte, csrPEM []byte, site *SiteSpec, defaults fs.FS, now time.Time) (string, error) {
	if defaults == nil {
		return "", errNoDefaults
	}
	w, err := openWorkspace(workspace)
	if err != nil {
		return "", err
	}
	w.defaults = defaults
	p, err := w.requireProject()
	if err != nil {
		return "", err
	}
	req, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return "", fmt.Errorf("approve: certificate request: %w", err)
	}
	id := req.Identity
	if err := checkRequest(id, req.Hosts); err != nil {
		return "", fmt.Errorf("approve: %w", err)
	}
	issued, err := w.issued()
	if err != nil {
		return "", err
	}
	if _, ok := issued[id.Name]; ok {
		return "", fmt.Errorf("approve: participant %q already holds a certificate in %s (names are never reused: request under a new name)", id.Name, w.dir)
	}
	if m, ok := p.find(id.Name); ok {
		return "", fmt.Errorf("approve: participant %q is already in the project as %s", id.Name, m.field)
	}
	if site != nil && (id.Kind != pki.KindSite || site.Name != id.Name || site.Org != id.Org) {
		return "", fmt.Errorf("approve: the request is for %s, not site %s of org %s", id, site.Name, site.Org)
	}
	var spec any
	switch id.Kind {
	case pki.KindSite:
		spec = SiteSpec{Name: id.Name, Org: id.Org}
		if site != nil {
			spec = *site
		}
	case pki.KindAdmin:
		spec = AdminSpec{Name: id.Name, Org: id.Org, Role: id.Role}
	case pki.KindAggregator:
		spec = AggregatorSpec{Name: id.Name, Org: id.Org}
	}
	next := p.clone()
	next.add(spec)
	if err := next.Validate(); err != nil {
		return "", fmt.Errorf("approve %s: %w", id.Name, err)
	}
	m, _ := next.find(id.Name)
	ca, err := w.openCA(passphrase)
	if err != nil {
		return "", err
	}
	rec, err := w.newKit(ca, next, m, req.PublicKey, nil, nil, now)
	if err != nil {
		return "", err
	}
	issued[id.Name] = rec
	if err := w.record(next, issued); err != nil {
		return "", err
	}
	if err := w.updateServer(ca, next, now); err != nil {
		return "", err
	}
	return KitDir(w.dir, id.Name), nil
}

// Revoke revokes the certificate issued to name: it records it in
// ca/revoked.json, signs a new revocation list with the next CRL number,
// writes it to ca/crl.pem and installs it as crl.pem in every kit under
// kits/. Revoking a name again re-signs and re-distributes the list (with
// a new number), which repairs a revocation that stopped half way.
func Revoke(workspace string, passphrase []byte, name string, now time.Time) error {
	w, err := openWorkspace(workspace)
	if err != nil {
		return err
	}
	if _, err := w.requireProject(); err != nil {
		return err
	}
	issued, err := w.issued()
	if err != nil {
		return err
	}
	rec, ok := issued[name]
	if !ok {
		return fmt.Errorf("revoke %q: no certificate was issued to it in %s", name, w.dir)
	}
	if _, err := parseSerial(rec.Serial); err != nil {
		return fmt.Errorf("revoke %q: %s: %w", name, issuedFile, err)
	}
	ca, err := w.openCA(passphrase)
	if err != nil {
		return err
	}
	if err := w.revoke(ca, name, rec.Serial, now); err != nil {
		return fmt.Errorf("revoke %q: %w", name, err)
	}
	return nil
}

// revoke puts serial (hex, the certificate issued to name) on the
// project's revocation list: it records it in ca/revoked.json (once),
// signs the list with the next CRL number, writes ca/crl.pem and installs
// it in every kit under kits/. Revoke and ChangeServer both publish
// through it, so there is one list.
func (w workspace) revoke(ca *pki.CA, name, serial string, now time.Time) error {
	revs, err := w.revocations()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(revs.Revoked, func(r revokedCert) bool { return r.Serial == serial }) {
		revs.Revoked = append(revs.Revoked, revokedCert{Name: name, Serial: serial, RevokedAt: now.UTC()})
	}
	revs.CRLNumber++
	list := make([]pki.Revocation, 0, len(revs.Revoked))
	for _, r := range revs.Revoked {
		n, err := parseSerial(r.Serial)
		if err != nil {
			return fmt.Errorf("%s: %w", revokedFile, err)
		}
		list = append(list, pki.Revocation{Serial: n, Name: r.Name, At: r.RevokedAt})
	}
	der, err := ca.RevocationList(list, revs.CRLNumber, now)
	if err != nil {
		return err
	}
	crlPEM := pki.EncodeCRL(der)
	// The number is recorded before the list is published, so that no two
	// different lists ever carry the same number.
	if err := w.writeJSON(revokedFile, revs); err != nil {
		return err
	}
	if err := w.write(crlFile, crlPEM, 0o644); err != nil {
		return err
	}
	return w.installCRL(crlPEM)
}

// installCRL writes crlPEM as crl.pem into every kit under kits/.
func (w workspace) installCRL(crlPEM []byte) error {
	entries, err := os.ReadDir(w.path(kitsDir))
	if err != nil {
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || e.Name()[0] == '.' { // temporary folders of an interrupted run
			continue
		}
		if err := kit.InstallCRL(KitDir(w.dir, e.Name()), crlPEM); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
