package kit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// Manifest is manifest.json: the SHA-256 of every kit file the root CA
// vouches for. manifest.sig holds the root's Ed25519 signature over the
// exact bytes of manifest.json.
type Manifest struct {
	Project     string            `json:"project"`
	Participant string            `json:"participant"`
	Created     time.Time         `json:"created"`
	Files       map[string]string `json:"files"` // slash-separated relative path -> lowercase hex SHA-256
}

// Signer signs manifests with the project root key; *pki.CA is one.
type Signer interface {
	Sign(data []byte) []byte
}

var _ Signer = (*pki.CA)(nil)

// Contents is what Write puts in a new kit.
type Contents struct {
	Config       Config
	Cert         *x509.Certificate
	Key          ed25519.PrivateKey // nil when the owner made the key (`hearth cert request`): key.pem is not written
	Root         *x509.Certificate
	Participants []pki.Identity // server kits only: everyone the hub admits
}

// Write creates the kit folder dir (mode 0700) and writes kit.json,
// cert.pem, key.pem (0600, when c.Key is set), rootCA.pem and, for a
// server, participants.json. The caller then adds local/ and calls Seal.
func Write(dir string, c Contents) error {
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("write kit %s: %s: %w", dir, ConfigFile, err)
	}
	id, err := pki.IdentityOf(c.Cert)
	if err != nil {
		return fmt.Errorf("write kit %s: %s: %w", dir, CertFile, err)
	}
	if id != c.Config.Identity() {
		return fmt.Errorf("write kit %s: certificate is for %s, kit.json says %s", dir, id, c.Config.Identity())
	}
	if c.Key != nil {
		if pub, ok := c.Cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(c.Key.Public()) {
			return fmt.Errorf("write kit %s: key does not match the certificate", dir)
		}
	}
	if c.Config.Kind != pki.KindServer && c.Participants != nil {
		return fmt.Errorf("write kit %s: only server kits carry %s", dir, ParticipantsFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write kit: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("write kit: %w", err)
	}
	cfg, err := json.MarshalIndent(c.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("write kit %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{ConfigFile, append(cfg, '\n'), 0o644},
		{CertFile, pki.EncodeCert(c.Cert), 0o644},
		{RootFile, pki.EncodeCert(c.Root), 0o644},
	}
	if c.Key != nil {
		files = append(files, struct {
			name string
			data []byte
			perm os.FileMode
		}{KeyFile, pki.EncodeKey(c.Key), 0o600})
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("write kit: %w", err)
		}
	}
	if c.Config.Kind == pki.KindServer {
		return writeParticipants(dir, c.Participants)
	}
	return nil
}

// Seal writes manifest.json, listing the SHA-256 of every file in dir
// except key.pem, crl.pem, the manifest itself and state/, and manifest.sig,
// the signer's signature over manifest.json's bytes.
func Seal(dir, project, participant string, signer Signer, now time.Time) error {
	paths, err := manifestPaths(dir)
	if err != nil {
		return fmt.Errorf("seal kit %s: %w", dir, err)
	}
	m := Manifest{Project: project, Participant: participant, Created: now.UTC(), Files: make(map[string]string, len(paths))}
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return fmt.Errorf("seal kit: %w", err)
		}
		m.Files[p] = hashHex(data)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("seal kit %s: %w", dir, err)
	}
	data = append(data, '\n')
	sig := base64.StdEncoding.EncodeToString(signer.Sign(data)) + "\n"
	if err := writeFile(filepath.Join(dir, ManifestFile), data, 0o644); err != nil {
		return fmt.Errorf("seal kit: %w", err)
	}
	if err := writeFile(filepath.Join(dir, SignatureFile), []byte(sig), 0o644); err != nil {
		return fmt.Errorf("seal kit: %w", err)
	}
	return nil
}

// UpdateParticipants replaces a server kit's participants.json with ps and
// re-signs its manifest; when the kit already lists exactly ps, in that
// order, nothing is written. It first verifies the kit's manifest against root,
// so that re-signing never launders a file changed since provisioning.
func UpdateParticipants(dir string, ps []pki.Identity, root *x509.Certificate, signer Signer, now time.Time) error {
	v, err := verifyManifest(dir)
	if err != nil {
		return err
	}
	if !v.root.Equal(root) {
		return fmt.Errorf("startup kit %s: %s: not this project's root CA", dir, RootFile)
	}
	current, ok := v.files[ParticipantsFile]
	if !ok {
		return fmt.Errorf("startup kit %s: %s: not a server kit", dir, ParticipantsFile)
	}
	if have, err := parseParticipants(current); err == nil && slices.Equal(have, ps) {
		return nil
	}
	if err := writeParticipants(dir, ps); err != nil {
		return err
	}
	return Seal(dir, v.manifest.Project, v.manifest.Participant, signer, now)
}

// InstallCRL writes crl.pem (a PEM revocation list) into the kit in dir.
// The list is signed by the root itself, so it lies outside the manifest
// and can be replaced without re-signing the kit.
func InstallCRL(dir string, crlPEM []byte) error {
	if _, err := pki.DecodeCRL(crlPEM); err != nil {
		return fmt.Errorf("install %s in %s: %w", CRLFile, dir, err)
	}
	if err := writeFile(filepath.Join(dir, CRLFile), crlPEM, 0o644); err != nil {
		return fmt.Errorf("install %s: %w", CRLFile, err)
	}
	return nil
}

type participantJSON struct {
	Name string   `json:"name"`
	Org  string   `json:"org"`
	Kind pki.Kind `json:"kind"`
	Role pki.Role `json:"role,omitempty"`
}

func writeParticipants(dir string, ps []pki.Identity) error {
	list := make([]participantJSON, 0, len(ps))
	for _, id := range ps {
		if err := id.Validate(); err != nil {
			return fmt.Errorf("write kit %s: %s: %w", dir, ParticipantsFile, err)
		}
		list = append(list, participantJSON{Name: id.Name, Org: id.Org, Kind: id.Kind, Role: id.Role})
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("write kit %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, ParticipantsFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write kit: %w", err)
	}
	return nil
}

func parseParticipants(data []byte) ([]pki.Identity, error) {
	var list []participantJSON
	if err := strictJSON(data, &list); err != nil {
		return nil, err
	}
	out := make([]pki.Identity, 0, len(list))
	for i, p := range list {
		id := pki.Identity{Name: p.Name, Org: p.Org, Kind: p.Kind, Role: p.Role}
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, id)
	}
	return out, nil
}

// outsideManifest reports whether a top-level entry is never listed in a
// manifest: the owner's key, the self-signed revocation list, the
// manifest and its signature, and runtime state.
func outsideManifest(top string) bool {
	switch top {
	case KeyFile, CRLFile, ManifestFile, SignatureFile, StateDirName:
		return true
	}
	return false
}

// manifestPaths lists, sorted and slash-separated, the files in dir that a
// manifest covers. Anything that is neither a regular file nor a folder
// (a symbolic link, a device) is refused: it could point outside the kit.
// siteOwned reports whether rel is a site's own policy override: a file in
// local/ that is not a provisioned NAME.default. The site decides for itself
// (federated authorization), so its overrides are outside the manifest; the
// defaults it overrides stay signed.
func siteOwned(rel string, d fs.DirEntry) bool {
	dir, name := path.Split(rel)
	return dir == LocalDir+"/" && !d.IsDir() && !strings.HasSuffix(name, DefaultSuffix)
}

func manifestPaths(dir string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !strings.Contains(rel, "/") && outsideManifest(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if siteOwned(rel, d) {
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			paths = append(paths, rel)
			return nil
		}
		return &TamperError{Kit: dir, File: rel, Reason: reasonNotRegular}
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	return paths, nil
}

// verified is a kit whose manifest checked out: the manifest, the root that
// signed it, and the bytes of every listed file as hashed.
type verified struct {
	manifest *Manifest
	root     *x509.Certificate
	files    map[string][]byte
}

// verifyManifest checks manifest.sig over manifest.json against the key in
// rootCA.pem, then that the files in dir are exactly those listed (besides
// the ones outside the manifest), each with its listed hash.
func verifyManifest(dir string) (*verified, error) {
	tamper := func(file, reason string) error { return &TamperError{Kit: dir, File: file, Reason: reason} }
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, tamper(name, reasonMissing)
		}
		if err != nil {
			return nil, fmt.Errorf("startup kit %s: %w", dir, err)
		}
		return data, nil
	}
	rootPEM, err := read(RootFile)
	if err != nil {
		return nil, err
	}
	root, err := pki.ParseCertPEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("startup kit %s: %s: %w", dir, RootFile, err)
	}
	rootKey, ok := root.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("startup kit %s: %s: root key is %T, want Ed25519", dir, RootFile, root.PublicKey)
	}
	manifestJSON, err := read(ManifestFile)
	if err != nil {
		return nil, err
	}
	sigText, err := read(SignatureFile)
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
	if err != nil || !ed25519.Verify(rootKey, manifestJSON, sig) {
		return nil, tamper(SignatureFile, reasonBadSignature)
	}
	var m Manifest
	if err := strictJSON(manifestJSON, &m); err != nil {
		return nil, fmt.Errorf("startup kit %s: %s: %w", dir, ManifestFile, err)
	}
	for p := range m.Files {
		if p != path.Clean(p) || path.IsAbs(p) || strings.HasPrefix(p, "../") || p == ".." || strings.Contains(p, `\`) ||
			outsideManifest(strings.SplitN(p, "/", 2)[0]) {
			return nil, fmt.Errorf("startup kit %s: %s: lists %q, which a manifest never covers", dir, ManifestFile, p)
		}
	}
	present, err := manifestPaths(dir)
	if err != nil {
		var te *TamperError
		if errors.As(err, &te) {
			return nil, err
		}
		return nil, fmt.Errorf("startup kit %s: %w", dir, err)
	}
	for _, p := range present {
		if _, listed := m.Files[p]; !listed {
			return nil, tamper(p, reasonExtra)
		}
	}
	listed := make([]string, 0, len(m.Files))
	for p := range m.Files {
		listed = append(listed, p)
	}
	slices.Sort(listed)
	files := make(map[string][]byte, len(listed))
	for _, p := range listed {
		data, err := read(filepath.FromSlash(p))
		if err != nil {
			var te *TamperError
			if errors.As(err, &te) {
				te.File = p
			}
			return nil, err
		}
		if hashHex(data) != strings.ToLower(m.Files[p]) {
			return nil, tamper(p, reasonChanged)
		}
		files[p] = data
	}
	for _, required := range []string{ConfigFile, CertFile, RootFile} {
		if _, ok := files[required]; !ok {
			return nil, tamper(required, reasonMissing)
		}
	}
	if !bytes.Equal(files[RootFile], rootPEM) {
		return nil, tamper(RootFile, reasonChanged)
	}
	return &verified{manifest: &m, root: root, files: files}, nil
}

func hashHex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// strictJSON decodes exactly one JSON value, refusing unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// writeFile writes data to name through a temporary file in the same
// folder and a rename, so that a reader never sees half a file.
func writeFile(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
