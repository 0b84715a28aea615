package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

// Paths inside a workspace.
const (
	projectFile  = "project.yml"
	caDir        = "ca"
	rootCertFile = "ca/rootCA.pem"
	rootKeyFile  = "ca/rootCA.key"
	issuedFile   = "ca/issued.json"
	crlFile      = "ca/crl.pem"
	revokedFile  = "ca/revoked.json"
	kitsDir      = "kits"
)

// caValidity is how long a project root CA lasts.
const caValidity = 10 * 365 * 24 * time.Hour

// KitDir is the folder of name's startup kit in workspace: workspace/kits/<name>.
func KitDir(workspace, name string) string { return filepath.Join(workspace, kitsDir, name) }

// workspace is a provisioning workspace folder (see the package doc).
// defaults are the default policy files new kits get (nil where no kit is
// made).
type workspace struct {
	dir      string
	defaults fs.FS
}

func openWorkspace(dir string) (workspace, error) {
	if dir == "" {
		return workspace{}, errors.New("no workspace folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return workspace{}, fmt.Errorf("workspace %s: %w", dir, err)
	}
	return workspace{dir: abs}, nil
}

func (w workspace) path(rel string) string { return filepath.Join(w.dir, filepath.FromSlash(rel)) }

// project reads the workspace's project.yml; nil when the workspace is new.
func (w workspace) project() (*Project, error) {
	data, err := os.ReadFile(w.path(projectFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	p, err := ParseProject(data)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %s: %w", w.dir, projectFile, err)
	}
	return p, nil
}

// requireProject is project for operations that need a provisioned workspace.
func (w workspace) requireProject() (*Project, error) {
	p, err := w.project()
	if err == nil && p == nil {
		err = fmt.Errorf("workspace %s holds no project: run `hearth provision` first", w.dir)
	}
	return p, err
}

func (w workspace) writeProject(p *Project) error {
	data, err := p.marshal()
	if err != nil {
		return err
	}
	return w.write(projectFile, data, 0o644)
}

// checkFresh refuses to start a new CA where one, or kits, already exist.
func (w workspace) checkFresh() error {
	for _, rel := range []string{caDir, kitsDir} {
		if _, err := os.Lstat(w.path(rel)); err == nil {
			return fmt.Errorf("workspace %s has %s/ but no %s: refusing to create a new CA over it (restore %s, or use an empty folder)",
				w.dir, rel, projectFile, projectFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("workspace %s: %w", w.dir, err)
		}
	}
	return nil
}

// createCA makes the project root CA and writes ca/rootCA.pem and the
// passphrase-encrypted ca/rootCA.key (0600). The key file is created
// exclusively, so an existing CA is never replaced.
func (w workspace) createCA(project string, passphrase []byte, now time.Time) (*pki.CA, error) {
	ca, err := pki.NewCA(project, now, caValidity)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	encrypted, err := ca.EncryptedKey(passphrase)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := os.MkdirAll(w.path(caDir), 0o700); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	f, err := os.OpenFile(w.path(rootKeyFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	_, err = f.Write(encrypted)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := w.write(rootCertFile, pki.EncodeCert(ca.Cert), 0o644); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return ca, nil
}

// RootFingerprint is the fingerprint of the workspace's project root
// (ca/rootCA.pem), the one every kit made from it carries. It needs no
// passphrase.
func RootFingerprint(workspace string) (kit.Fingerprint, error) {
	w, err := openWorkspace(workspace)
	if err != nil {
		return kit.Fingerprint{}, err
	}
	data, err := os.ReadFile(w.path(rootCertFile))
	if err != nil {
		return kit.Fingerprint{}, fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	root, err := pki.ParseCertPEM(data)
	if err != nil {
		return kit.Fingerprint{}, fmt.Errorf("workspace %s: %s: %w", w.dir, rootCertFile, err)
	}
	return kit.FingerprintOf(root), nil
}

// OpenCA opens the project root CA of workspace with passphrase, for a
// process on the CA holder's side that issues certificates of its own (the
// web dashboard's TLS certificate, pki.CA.IssueWebServer).
func OpenCA(workspace string, passphrase []byte) (*pki.CA, error) {
	w, err := openWorkspace(workspace)
	if err != nil {
		return nil, err
	}
	return w.openCA(passphrase)
}

// ReadProject reads the project as provisioned so far in workspace
// (project.yml); it fails when the workspace holds no project.
func ReadProject(workspace string) (*Project, error) {
	w, err := openWorkspace(workspace)
	if err != nil {
		return nil, err
	}
	return w.requireProject()
}

// openCA opens the workspace's CA with passphrase.
func (w workspace) openCA(passphrase []byte) (*pki.CA, error) {
	certPEM, err := os.ReadFile(w.path(rootCertFile))
	if err != nil {
		return nil, fmt.Errorf("open CA in %s: %w", w.dir, err)
	}
	keyPEM, err := os.ReadFile(w.path(rootKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open CA in %s: %w", w.dir, err)
	}
	ca, err := pki.OpenCA(certPEM, keyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("open CA in %s: %w", w.dir, err)
	}
	return ca, nil
}

// issuedCert is one entry of ca/issued.json.
type issuedCert struct {
	Serial   string    `json:"serial"` // hex
	Kind     pki.Kind  `json:"kind"`
	Org      string    `json:"org"`
	Role     pki.Role  `json:"role,omitempty"`
	NotAfter time.Time `json:"not_after"`
}

func (w workspace) issued() (map[string]issuedCert, error) {
	m := map[string]issuedCert{}
	return m, w.readJSON(issuedFile, &m)
}

func (w workspace) writeIssued(m map[string]issuedCert) error { return w.writeJSON(issuedFile, m) }

// revocations is ca/revoked.json: every revoked certificate and the number
// of the newest revocation list signed.
type revocations struct {
	CRLNumber int64         `json:"crl_number"`
	Revoked   []revokedCert `json:"revoked"`
}

type revokedCert struct {
	Name      string    `json:"name"`
	Serial    string    `json:"serial"` // hex
	RevokedAt time.Time `json:"revoked_at"`
}

func (w workspace) revocations() (*revocations, error) {
	r := &revocations{}
	return r, w.readJSON(revokedFile, r)
}

// readJSON decodes rel into v; a missing file leaves v as it is.
func (w workspace) readJSON(rel string, v any) error {
	data, err := os.ReadFile(w.path(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("workspace %s: %s: %w", w.dir, rel, err)
	}
	return nil
}

func (w workspace) writeJSON(rel string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("workspace %s: %s: %w", w.dir, rel, err)
	}
	return w.write(rel, append(data, '\n'), 0o644)
}

// write replaces rel through a temporary file and a rename.
func (w workspace) write(rel string, data []byte, perm os.FileMode) error {
	name := w.path(rel)
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("workspace %s: %w", w.dir, err)
	}
	return nil
}

func serialHex(n *big.Int) string { return fmt.Sprintf("%x", n) }

func parseSerial(s string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return nil, fmt.Errorf("malformed serial %q", s)
	}
	return n, nil
}
