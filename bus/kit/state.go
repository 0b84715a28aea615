package kit

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Files a participant keeps in its kit's state/ folder to remember, across
// restarts, what its kit must never go back on.
const (
	// RootPinFile holds the root fingerprint pinned at first start.
	RootPinFile = "root-fingerprint"
	// CRLNumberFile holds the number of the newest revocation list seen.
	CRLNumberFile = "crl-number"
)

// fingerprintPrefix starts the text form of a Fingerprint.
const fingerprintPrefix = "sha256:"

// Fingerprint is the SHA-256 of a root certificate's DER encoding: what an
// operator compares, out of band, to know which project root a kit trusts.
type Fingerprint [32]byte

// FingerprintOf is cert's fingerprint.
func FingerprintOf(cert *x509.Certificate) Fingerprint { return sha256.Sum256(cert.Raw) }

// String is "sha256:" and 64 lowercase hex digits.
func (f Fingerprint) String() string { return fingerprintPrefix + hex.EncodeToString(f[:]) }

// IsZero reports whether f is the zero value (no fingerprint).
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// ParseFingerprint reads a fingerprint as String writes it. The "sha256:"
// prefix may be left out, the hex may be upper case and its bytes may be
// separated by colons (as `openssl x509 -fingerprint -sha256` prints it);
// anything else is refused.
func ParseFingerprint(s string) (Fingerprint, error) {
	hexText := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), fingerprintPrefix)
	hexText = strings.ReplaceAll(hexText, ":", "")
	var f Fingerprint
	if len(hexText) != 2*len(f) {
		return Fingerprint{}, fmt.Errorf("root fingerprint %q: want sha256: and 64 hex digits", s)
	}
	if _, err := hex.Decode(f[:], []byte(hexText)); err != nil {
		return Fingerprint{}, fmt.Errorf("root fingerprint %q: want sha256: and 64 hex digits: %w", s, err)
	}
	if f == (Fingerprint{}) { // the zero value means "none given"
		return Fingerprint{}, fmt.Errorf("root fingerprint %q: all zeros is no certificate's fingerprint", s)
	}
	return f, nil
}

// RootFingerprint is the fingerprint of the kit's rootCA.pem.
func (k *Kit) RootFingerprint() Fingerprint { return FingerprintOf(k.Root) }

// PinRoot checks that the kit's root is the project root its holder
// expects, so that a kit whose rootCA.pem was replaced (and its manifest
// re-signed by the new root, which Load cannot tell) refuses to start.
// want, when not zero, is the fingerprint the operator gave; otherwise the
// one recorded in state/root-fingerprint at an earlier start is expected.
// When both exist both must match. The first start records the kit's root
// (trust on first use) and returns recorded true. A mismatch wraps
// ErrRootChanged and names both fingerprints.
func (k *Kit) PinRoot(want Fingerprint) (recorded bool, err error) {
	have := k.RootFingerprint()
	if !want.IsZero() && want != have {
		return false, fmt.Errorf("startup kit %s: %w: %s has fingerprint %s, but the expected root is %s",
			k.Dir, ErrRootChanged, RootFile, have, want)
	}
	state, err := k.StateDir()
	if err != nil {
		return false, err
	}
	name := filepath.Join(state, RootPinFile)
	data, err := os.ReadFile(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeFile(name, []byte(have.String()+"\n"), 0o600); err != nil {
			return false, fmt.Errorf("startup kit %s: record the root fingerprint: %w", k.Dir, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("startup kit %s: %w", k.Dir, err)
	}
	pinned, err := ParseFingerprint(string(bytes.TrimSpace(data)))
	if err != nil {
		return false, fmt.Errorf("startup kit %s: %s/%s: %w", k.Dir, StateDirName, RootPinFile, err)
	}
	if pinned != have {
		return false, fmt.Errorf("startup kit %s: %w: %s has fingerprint %s, but %s was recorded in %s/%s at first start (if the project's root really changed, remove that file)",
			k.Dir, ErrRootChanged, RootFile, have, pinned, StateDirName, RootPinFile)
	}
	return false, nil
}

// CheckCRLNumber refuses a kit whose revocation list is older than the
// newest one this participant has seen (state/crl-number), or that has
// none when one was seen, so that restoring an old crl.pem (or deleting it)
// cannot readmit a revoked certificate. The error wraps ErrCRLRollback and
// names both numbers. A newer list is remembered.
func (k *Kit) CheckCRLNumber() error {
	seen, err := k.SeenCRLNumber()
	if err != nil {
		return err
	}
	if k.CRLNumber < seen {
		have := "no " + CRLFile
		if k.CRL != nil {
			have = fmt.Sprintf("%s number %d", CRLFile, k.CRLNumber)
		}
		return fmt.Errorf("startup kit %s: %w: it has %s, but revocation list number %d was installed before (%s/%s): install the newest crl.pem",
			k.Dir, ErrCRLRollback, have, seen, StateDirName, CRLNumberFile)
	}
	return k.RememberCRLNumber(k.CRLNumber)
}

// SeenCRLNumber is the newest revocation list number recorded in
// state/crl-number (0 when none was).
func (k *Kit) SeenCRLNumber() (int64, error) {
	state, err := k.StateDir()
	if err != nil {
		return 0, err
	}
	data, err := os.ReadFile(filepath.Join(state, CRLNumberFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("startup kit %s: %w", k.Dir, err)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("startup kit %s: %s/%s: %q is not a revocation list number", k.Dir, StateDirName, CRLNumberFile, bytes.TrimSpace(data))
	}
	return n, nil
}

// RememberCRLNumber records n in state/crl-number if it is newer than the
// number recorded there; it never lowers it.
func (k *Kit) RememberCRLNumber(n int64) error {
	seen, err := k.SeenCRLNumber()
	if err != nil {
		return err
	}
	if n <= seen {
		return nil
	}
	name := filepath.Join(k.Dir, StateDirName, CRLNumberFile)
	if err := writeFile(name, []byte(strconv.FormatInt(n, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("startup kit %s: remember revocation list number %d: %w", k.Dir, n, err)
	}
	return nil
}
