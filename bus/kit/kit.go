// Package kit is a participant's startup kit: the folder every Hearth
// process (server, site, aggregator, admin console) starts from, written by
// package provision and checked by Load before anything runs.
//
// Layout of a kit folder:
//
//	kit.json           Config: project, identity, the hub's hosts and ports, leaf settings
//	cert.pem           the participant's certificate, issued by the project root CA
//	key.pem            its Ed25519 private key (mode 0600); outside the manifest, because with
//	                   `hearth cert request` its owner makes it and copies it in
//	rootCA.pem         the project root certificate
//	participants.json  server kits only: everyone the hub admits
//	local/             the site's policies (authorization, privacy, resources): the project's
//	                   defaults as NAME.default, handed to provisioning by package policies,
//	                   and the site's own overrides (see PolicyPath)
//	crl.pem            optional: the newest revocation list; root-signed itself, so outside the
//	                   manifest and replaceable without re-signing the kit
//	manifest.json      {"project","participant","created","files":{"relpath":"sha256 hex"}}
//	manifest.sig       base64 Ed25519 signature of manifest.json's exact bytes by the root CA key
//	state/             runtime state (JetStream, logs, the pinned root fingerprint, the newest
//	                   CRL number seen); never in the manifest
//
// The manifest covers every other file, so a file changed, removed or added
// (an extra file under local/ could inject a policy) makes Load refuse the
// kit with an error wrapping ErrTampered. Load proves that the kit is as the
// root in its own rootCA.pem signed it; which root that is, PinRoot checks
// against the fingerprint the operator gives or the one recorded at first
// start, and CheckCRLNumber refuses a revocation list older than one seen
// before (both remembered in state/).
package kit

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// Names of the files and folders in a kit.
const (
	ConfigFile       = "kit.json"
	CertFile         = "cert.pem"
	KeyFile          = "key.pem"
	RootFile         = "rootCA.pem"
	ParticipantsFile = "participants.json"
	LocalDir         = "local"
	CRLFile          = "crl.pem"
	ManifestFile     = "manifest.json"
	SignatureFile    = "manifest.sig"
	StateDirName     = "state"
)

// Kit is a startup kit that Load has verified.
type Kit struct {
	Dir          string // absolute path of the kit folder
	Config       Config
	Cert         *x509.Certificate
	Key          ed25519.PrivateKey
	Root         *x509.Certificate
	CRL          []byte         // DER revocation list from crl.pem; nil when absent
	CRLNumber    int64          // its CRL number (0 when absent)
	Participants []pki.Identity // server kits only (participants.json): everyone the hub admits
}

// Load reads the kit in dir and verifies it: manifest.sig over
// manifest.json against rootCA.pem's key; every listed file present with
// its hash; no file outside the manifest but key.pem, crl.pem and state/;
// kit.json valid; cert.pem issued by rootCA.pem, valid now, carrying
// kit.json's identity (and, for a server, covering every server host);
// crl.pem, if present, signed by the root and not revoking cert.pem; and
// key.pem present, readable by its owner only, and matching cert.pem.
// Manifest failures wrap ErrTampered (*TamperError); every error names the
// kit and the file.
func Load(dir string) (*Kit, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("startup kit %s: %w", dir, err)
	}
	dir = abs
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("startup kit %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("startup kit %s: not a folder", dir)
	}
	fail := func(file string, err error) (*Kit, error) {
		return nil, fmt.Errorf("startup kit %s: %s: %w", dir, file, err)
	}
	v, err := verifyManifest(dir)
	if err != nil {
		return nil, err
	}
	k := &Kit{Dir: dir, Root: v.root}

	if err := strictJSON(v.files[ConfigFile], &k.Config); err != nil {
		return fail(ConfigFile, err)
	}
	if err := k.Config.Validate(); err != nil {
		return fail(ConfigFile, err)
	}
	if v.manifest.Project != k.Config.Project || v.manifest.Participant != k.Config.Name {
		return fail(ManifestFile, fmt.Errorf("signed for participant %q of project %q, but kit.json is %q of %q",
			v.manifest.Participant, v.manifest.Project, k.Config.Name, k.Config.Project))
	}

	participants, listed := v.files[ParticipantsFile]
	switch {
	case k.Config.Kind == pki.KindServer && !listed:
		return nil, &TamperError{Kit: dir, File: ParticipantsFile, Reason: reasonMissing}
	case k.Config.Kind == pki.KindServer:
		if k.Participants, err = parseParticipants(participants); err != nil {
			return fail(ParticipantsFile, err)
		}
	case listed:
		return fail(ParticipantsFile, fmt.Errorf("only server kits carry one, this is a %s kit", k.Config.Kind))
	}

	if k.Cert, err = pki.ParseCertPEM(v.files[CertFile]); err != nil {
		return fail(CertFile, err)
	}
	trust := pki.NewTrust(k.Root)
	crlPEM, err := os.ReadFile(filepath.Join(dir, CRLFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fail(CRLFile, err)
	default:
		if k.CRL, err = pki.DecodeCRL(crlPEM); err != nil {
			return fail(CRLFile, err)
		}
		if err := trust.SetCRL(k.CRL); err != nil {
			return fail(CRLFile, err)
		}
		k.CRLNumber = trust.CRLNumber()
	}
	id, err := trust.Verify(k.Cert, time.Now())
	if errors.Is(err, pki.ErrRevoked) {
		return fail(CertFile, fmt.Errorf("this participant's certificate is revoked (%s): %w", CRLFile, err))
	}
	if err != nil {
		return fail(CertFile, err)
	}
	if id != k.Config.Identity() {
		return fail(CertFile, fmt.Errorf("certificate is for %s, but kit.json says %s", id, k.Config.Identity()))
	}
	if k.Config.Kind == pki.KindServer {
		for _, h := range k.Config.Server.Hosts {
			if err := k.Cert.VerifyHostname(h); err != nil {
				return fail(CertFile, fmt.Errorf("does not cover server host %q: %w", h, err))
			}
		}
	}

	if k.Key, err = loadKey(dir, k.Cert); err != nil {
		return nil, err
	}
	return k, nil
}

// loadKey reads key.pem, refusing it when missing, readable by group or
// others, or not the key of cert.
func loadKey(dir string, cert *x509.Certificate) (ed25519.PrivateKey, error) {
	name := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("startup kit %s: %s missing: copy the private key made by `hearth cert request` into %s", dir, KeyFile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("startup kit %s: %w", dir, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("startup kit %s: %s is not a regular file", dir, KeyFile)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("startup kit %s: %s is readable by group or others (mode %#o): run chmod 600 %s", dir, KeyFile, perm, name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("startup kit %s: %w", dir, err)
	}
	key, err := pki.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("startup kit %s: %s: %w", dir, KeyFile, err)
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("startup kit %s: %s does not match %s", dir, KeyFile, CertFile)
	}
	return key, nil
}

// StateDir returns Dir/state, where runtime state (JetStream, logs) lives,
// creating it with mode 0700 if missing. It is never in the manifest.
func (k *Kit) StateDir() (string, error) {
	dir := filepath.Join(k.Dir, StateDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("startup kit %s: state folder: %w", k.Dir, err)
	}
	return dir, nil
}

// CRLPath is Dir/crl.pem, where a newer revocation list may be installed.
func (k *Kit) CRLPath() string { return filepath.Join(k.Dir, CRLFile) }

// DataDir is the absolute folder of the site's local data ("" when the kit
// names none).
func (k *Kit) DataDir() string {
	if k.Config.Leaf == nil || k.Config.Leaf.DataDir == "" {
		return ""
	}
	if filepath.IsAbs(k.Config.Leaf.DataDir) {
		return filepath.Clean(k.Config.Leaf.DataDir)
	}
	return filepath.Join(k.Dir, k.Config.Leaf.DataDir)
}

// PolicyDir is Dir/local, the site's policy files.
func (k *Kit) PolicyDir() string { return filepath.Join(k.Dir, LocalDir) }

// TLSCertificate is the kit's certificate and key for crypto/tls.
func (k *Kit) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{k.Cert.Raw}, PrivateKey: k.Key, Leaf: k.Cert}
}

// Trust is a pki.Trust for the kit's root with the kit's revocation list
// installed, if it has one.
func (k *Kit) Trust() (*pki.Trust, error) {
	t := pki.NewTrust(k.Root)
	if k.CRL != nil {
		if err := t.SetCRL(k.CRL); err != nil {
			return nil, fmt.Errorf("startup kit %s: %s: %w", k.Dir, CRLFile, err)
		}
	}
	return t, nil
}
