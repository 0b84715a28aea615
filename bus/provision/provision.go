// Package provision turns a project file into a project root CA and one
// startup kit per participant, and keeps that workspace current: adding
// participants, approving certificate requests, revoking certificates.
//
// Workspace layout:
//
//	project.yml      the project as provisioned so far (rewritten as participants are added)
//	ca/rootCA.pem    the project root certificate (10 years)
//	ca/rootCA.key    its private key, encrypted under the CA passphrase (mode 0600)
//	ca/issued.json   name -> serial (hex), kind, org, role, not_after of every certificate issued
//	ca/revoked.json  revoked certificates and the number of the newest revocation list
//	ca/crl.pem       the newest revocation list
//	kits/<name>/     each participant's startup kit (see package kit), mode 0700
//
// Kits are never rewritten once made, with two exceptions that the root
// re-signs or signs itself: the server kit's participants.json (so the hub
// admits participants added later) and crl.pem (after a revocation).
// Workspace operations are not safe to run concurrently on one workspace.
package provision

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

// errNoDefaults refuses to make kits without default policy files: a site
// would start with no authorization policy.
var errNoDefaults = errors.New("provision: no default policy files given")

// backdate is how far before "now" a certificate starts to be valid, so
// that a participant whose clock runs a little behind can use it at once.
const backdate = 5 * time.Minute

// Result says what Provision did.
type Result struct {
	CreatedCA bool     `json:"created_ca"` // a new root CA was made (first run on the workspace)
	Added     []string `json:"added"`      // participants whose kits were made now
	Kept      []string `json:"kept"`       // participants whose kits already existed, left untouched
	Workspace string   `json:"workspace"`  // absolute workspace folder; kits are in KitDir(Workspace, name)
	// RootFingerprint is the project root's fingerprint ("sha256:..."):
	// each participant gives it to `hearth site`/`hearth server` once
	// (--root-fingerprint) to refuse a kit whose root was replaced.
	RootFingerprint string `json:"root_fingerprint"`
}

// Provision makes or extends the workspace for p. On a new workspace it
// creates the root CA (its key encrypted under passphrase) and a kit for
// every participant. On an existing one it opens the CA with passphrase
// (a wrong passphrase is an error, never a new CA), refuses a different
// project or a changed server, keeps existing kits untouched (a participant
// whose spec changed is refused: kits are never rewritten), adds kits for
// new participants, and updates the server kit's participants.json so the
// hub admits them. Participants provisioned before but absent from p are
// kept. defaults are the default policy files every new kit gets in its
// local/ folder (see kit.WriteDefaultPolicies; cmd/hearth hands in
// policies.Defaults()); without them nothing is written. now is the issue
// time.
func Provision(p *Project, workspace string, passphrase []byte, defaults fs.FS, now time.Time) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("invalid project: %w", err)
	}
	if defaults == nil {
		return nil, errNoDefaults
	}
	w, err := openWorkspace(workspace)
	if err != nil {
		return nil, err
	}
	w.defaults = defaults
	done, err := w.project()
	if err != nil {
		return nil, err
	}
	res := &Result{Workspace: w.dir, Added: []string{}, Kept: []string{}}
	fresh := done == nil
	if fresh {
		if err := w.checkFresh(); err != nil {
			return nil, err
		}
		if len(passphrase) < 8 { // checked here too, so that nothing is written
			return nil, errors.New("create CA: passphrase must be at least 8 characters")
		}
		done = &Project{APIVersion: 1, Name: p.Name, Server: p.Server, CertValidityDays: p.validityDays(), Limits: p.Limits}
		done.Server.Hosts = append([]string(nil), p.Server.Hosts...)
	} else {
		if done.Name != p.Name {
			return nil, fmt.Errorf("workspace %s holds project %s, not %s", w.dir, done.Name, p.Name)
		}
		if !reflect.DeepEqual(done.Server, p.Server) {
			return nil, fmt.Errorf("server: differs from the server provisioned in %s (every kit carries its address and its certificate names its hosts; start a new project to change it)", w.dir)
		}
		done.CertValidityDays = p.validityDays()
	}
	issued, err := w.issued()
	if err != nil {
		return nil, err
	}

	// Sort p's participants into kept and new; a changed one is an error.
	final := done.clone()
	var add []member
	for _, m := range p.members() {
		prev, known := done.find(m.id.Name)
		switch {
		case !known:
			final.add(m.spec)
			add = append(add, m)
		case !reflect.DeepEqual(prev.spec, m.spec) || prev.id.Name != m.id.Name:
			return nil, fmt.Errorf("%s: participant %q differs from the one provisioned in %s (kits are never rewritten: revoke it and provision it under a new name)",
				m.field, m.id.Name, w.dir)
		case m.id.Kind == pki.KindServer:
			if _, ok := issued[m.id.Name]; !ok { // an earlier run stopped before the server kit
				add = append(add, m)
			}
		}
	}
	if err := final.Validate(); err != nil {
		return nil, fmt.Errorf("invalid project after adding participants: %w", err)
	}
	for _, m := range done.members() {
		if _, ok := issued[m.id.Name]; ok {
			res.Kept = append(res.Kept, m.id.Name)
		}
	}

	var ca *pki.CA
	if fresh {
		if err := os.MkdirAll(w.dir, 0o700); err != nil {
			return nil, fmt.Errorf("workspace: %w", err)
		}
		if ca, err = w.createCA(p.Name, passphrase, now); err != nil {
			return nil, err
		}
		res.CreatedCA = true
		if err := w.writeProject(done); err != nil {
			return nil, err
		}
	} else if ca, err = w.openCA(passphrase); err != nil {
		return nil, err
	}
	res.RootFingerprint = kit.FingerprintOf(ca.Cert).String()

	// Make the new kits, the server's last so that its participants.json
	// names exactly the participants that have kits. After each kit the
	// workspace records it, so a run that stops half way can be resumed.
	var server *member
	for i := range add {
		m := add[i]
		if m.id.Kind == pki.KindServer {
			server = &add[i]
			continue
		}
		key, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		rec, err := w.newKit(ca, final, m, key.Public().(ed25519.PublicKey), key, nil, now)
		if err != nil {
			return nil, err
		}
		issued[m.id.Name] = rec
		done.add(m.spec)
		if err := w.record(done, issued); err != nil {
			return nil, err
		}
		res.Added = append(res.Added, m.id.Name)
	}
	if server != nil {
		key, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		rec, err := w.newKit(ca, final, *server, key.Public().(ed25519.PublicKey), key, done.others(), now)
		if err != nil {
			return nil, err
		}
		issued[server.id.Name] = rec
		if err := w.record(done, issued); err != nil {
			return nil, err
		}
		res.Added = append(res.Added, server.id.Name)
	} else if err := w.updateServer(ca, done, now); err != nil {
		return nil, err
	}
	return res, nil
}

// record writes project.yml and ca/issued.json.
func (w workspace) record(p *Project, issued map[string]issuedCert) error {
	if err := w.writeIssued(issued); err != nil {
		return err
	}
	return w.writeProject(p)
}

// updateServer rewrites the server kit's participants.json to name every
// other participant of p, re-signing its manifest; nothing changes when it
// already does.
func (w workspace) updateServer(ca *pki.CA, p *Project, now time.Time) error {
	dir := KitDir(w.dir, p.Server.Name)
	if err := kit.UpdateParticipants(dir, p.others(), ca.Cert, ca, now); err != nil {
		return fmt.Errorf("update the server kit's participants: %w", err)
	}
	return nil
}

// newKit issues a certificate for m's public key and writes m's kit to
// kits/<name>: in a temporary folder first, renamed into place once
// sealed. key may be nil (a certificate request: its owner holds the key).
// participants is the server kit's participants.json (nil for others).
func (w workspace) newKit(ca *pki.CA, p *Project, m member, pub ed25519.PublicKey, key ed25519.PrivateKey, participants []pki.Identity, now time.Time) (issuedCert, error) {
	name := m.id.Name
	final := KitDir(w.dir, name)
	if _, err := os.Lstat(final); err == nil {
		return issuedCert{}, fmt.Errorf("kit for %s: %s exists but no certificate was recorded for %s: move it away and run again", name, final, name)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	cert, err := ca.Issue(pki.Template{
		Identity:  m.id,
		PublicKey: pub,
		Hosts:     m.hosts,
		NotBefore: now.Add(-backdate),
		NotAfter:  now.Add(time.Duration(p.validityDays()) * 24 * time.Hour),
	})
	if err != nil {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(w.dir, kitsDir), 0o700); err != nil {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(w.dir, kitsDir), "."+name+".new-*")
	if err != nil {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) // gone after the rename
	cfg := kit.Config{
		Project: p.Name,
		Name:    name,
		Org:     m.id.Org,
		Kind:    m.id.Kind,
		Role:    m.id.Role,
		Server:  p.serverConfig(),
	}
	if m.id.Kind == pki.KindServer && p.Limits != nil {
		limits := *p.Limits
		cfg.Limits = &limits
	}
	if m.leaf != nil {
		leaf := *m.leaf
		cfg.Leaf = &leaf
	}
	if m.id.Kind == pki.KindServer && participants == nil {
		participants = []pki.Identity{}
	}
	contents := kit.Contents{Config: cfg, Cert: cert, Key: key, Root: ca.Cert, Participants: participants}
	if err := kit.Write(tmp, contents); err != nil {
		return issuedCert{}, err
	}
	if err := kit.WriteDefaultPolicies(filepath.Join(tmp, kit.LocalDir), w.defaults); err != nil {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	if err := kit.Seal(tmp, p.Name, name, ca, now); err != nil {
		return issuedCert{}, err
	}
	// A kit made after a revocation starts with the project's list: its
	// holder learns of revocations only through its own crl.pem, and
	// would otherwise trust a certificate revoked before it existed (the
	// server's old one after ChangeServer, above all).
	if crlPEM, err := os.ReadFile(w.path(crlFile)); err == nil {
		if err := kit.InstallCRL(tmp, crlPEM); err != nil {
			return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return issuedCert{}, fmt.Errorf("kit for %s: %w", name, err)
	}
	return issuedCert{Serial: serialHex(cert.SerialNumber), Kind: m.id.Kind, Org: m.id.Org, Role: m.id.Role, NotAfter: cert.NotAfter}, nil
}

// ChangeServer changes the server's hosts and ports (its name and org
// stay) in a workspace where no participant but the server has a kit yet,
// and re-issues the server's kit for them: a new key and certificate, the
// old kit (its key with it) deleted and the old certificate's serial put
// on the project's revocation list (Revoke's), so that a copy of the old
// kit is refused wherever the list is honoured. Once another participant has a kit it
// is refused: that kit carries the server's address and trusts the names
// in the server's certificate, so a change would need re-issuing every kit
// (start a new project instead).
func ChangeServer(workspace string, passphrase []byte, server ServerSpec, defaults fs.FS, now time.Time) error {
	if defaults == nil {
		return errNoDefaults
	}
	w, err := openWorkspace(workspace)
	if err != nil {
		return err
	}
	w.defaults = defaults
	p, err := w.requireProject()
	if err != nil {
		return err
	}
	if server.Name != p.Server.Name || server.Org != p.Server.Org {
		return fmt.Errorf("server: its name and org stay %s (%s)", p.Server.Name, p.Server.Org)
	}
	issued, err := w.issued()
	if err != nil {
		return err
	}
	var others []string
	for name := range issued {
		if name != p.Server.Name {
			others = append(others, name)
		}
	}
	if len(others) > 0 {
		slices.Sort(others)
		return fmt.Errorf("server: the kits of %s already carry the server's address and trust its certificate's names: a change would need re-issuing the server's kit and every one of theirs (start a new project to change it)",
			strings.Join(others, ", "))
	}
	changed := p.clone()
	changed.Server = server
	changed.Server.Hosts = append([]string(nil), server.Hosts...)
	if err := changed.Validate(); err != nil {
		return fmt.Errorf("invalid project: %w", err)
	}
	ca, err := w.openCA(passphrase)
	if err != nil {
		return err
	}
	var m member
	for _, c := range changed.members() {
		if c.id.Kind == pki.KindServer {
			m = c
		}
	}
	dir := KitDir(w.dir, server.Name)
	old := dir + ".old"
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server kit: %w", err)
	}
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	rec, err := w.newKit(ca, changed, m, key.Public().(ed25519.PublicKey), key, changed.others(), now)
	if err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return errors.Join(err, fmt.Errorf("server kit: restore %s: %w", old, rerr))
		}
		return err
	}
	oldSerial, hadKit := issued[server.Name]
	issued[server.Name] = rec
	if err := w.record(changed, issued); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if !hadKit {
		return nil
	}
	if err := w.revoke(ca, server.Name, oldSerial.Serial, now); err != nil {
		return fmt.Errorf("server kit re-issued, but the old certificate (serial %s) is not on the revocation list yet: %w", oldSerial.Serial, err)
	}
	return nil
}

// RenameProject re-creates the project under name in a workspace where no
// participant but the server has a kit yet: the root CA and every kit
// carry the project's name, so renaming is a new project with the same
// server: a new root (so a new fingerprint), its key encrypted under
// passphrase (which must open the current root first), and the server's
// kit issued from it; the old root, its key, its revocation list and the
// old server kit are deleted. Once another participant has a kit, or the
// project names one, it is refused: that kit trusts the old root. The new
// project is made beside the old one in the workspace and swapped in by
// renames, so a failure part way leaves the old project in place.
func RenameProject(workspace string, passphrase []byte, name string, defaults fs.FS, now time.Time) (*Result, error) {
	if defaults == nil {
		return nil, errNoDefaults
	}
	w, err := openWorkspace(workspace)
	if err != nil {
		return nil, err
	}
	p, err := w.requireProject()
	if err != nil {
		return nil, err
	}
	if name == p.Name {
		return nil, fmt.Errorf("rename: the project is named %s already", p.Name)
	}
	// Everything but the name carries over (the server, the validity,
	// the limits on what one admin may hold); the participants are none
	// but the server, or the rename is refused below.
	renamed := p.clone()
	renamed.Name = name
	if err := renamed.Validate(); err != nil {
		return nil, fmt.Errorf("rename: %w", err)
	}
	issued, err := w.issued()
	if err != nil {
		return nil, err
	}
	others := map[string]bool{}
	for n := range issued {
		if n != p.Server.Name {
			others[n] = true
		}
	}
	for _, id := range p.others() {
		others[id.Name] = true
	}
	if len(others) > 0 {
		names := slices.Sorted(maps.Keys(others))
		return nil, fmt.Errorf("rename: the kits of %s already trust this project's root and carry its name: renaming would need a new root and every kit re-issued (start a new project instead)",
			strings.Join(names, ", "))
	}
	if _, err := w.openCA(passphrase); err != nil { // whoever renames holds the current root
		return nil, fmt.Errorf("rename: %w", err)
	}
	fresh, err := os.MkdirTemp(w.dir, ".rename-new-")
	if err != nil {
		return nil, fmt.Errorf("rename: %w", err)
	}
	defer os.RemoveAll(fresh)
	res, err := Provision(renamed, fresh, passphrase, defaults, now)
	if err != nil {
		return nil, fmt.Errorf("rename: %w", err)
	}
	res.Workspace = w.dir
	retired, err := os.MkdirTemp(w.dir, ".rename-old-")
	if err != nil {
		return nil, fmt.Errorf("rename: %w", err)
	}
	if err := swapIn(w.dir, fresh, retired, []string{caDir, kitsDir, projectFile}); err != nil {
		return nil, fmt.Errorf("rename: %w", err)
	}
	if err := os.RemoveAll(retired); err != nil {
		return nil, fmt.Errorf("rename: project %s is in place; removing the old one (%s): %w", name, retired, err)
	}
	return res, nil
}

// swapIn moves each of names from dir into retired, then from fresh into
// dir; on a failure it moves back what it moved, so dir holds either the
// old entries or the new ones.
func swapIn(dir, fresh, retired string, names []string) error {
	type move struct{ from, to string }
	var done []move
	undo := func(err error) error {
		for i := len(done) - 1; i >= 0; i-- {
			if rerr := os.Rename(done[i].to, done[i].from); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore %s: %w", done[i].from, rerr))
			}
		}
		return err
	}
	for _, n := range names {
		m := move{filepath.Join(dir, n), filepath.Join(retired, n)}
		if err := os.Rename(m.from, m.to); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // never made (no kit yet, say): nothing to retire
			}
			return undo(err)
		}
		done = append(done, m)
	}
	for _, n := range names {
		m := move{filepath.Join(fresh, n), filepath.Join(dir, n)}
		if err := os.Rename(m.from, m.to); err != nil {
			return undo(err)
		}
		done = append(done, m)
	}
	return nil
}
