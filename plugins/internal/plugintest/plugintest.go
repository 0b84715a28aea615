// Package plugintest is the test support that the plugin packages' tests
// share: the test plugins' binaries, built once per test binary (in
// TestMain), and a file's SHA-256 as a site pins it.
//
// Only _test.go files import it.
package plugintest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testAuthn is the test authenticator's main package.
const testAuthn = "github.com/hearthfl/hearth/plugins/authn/internal/testauthn/cmd/hearth-authn-test"

// Binaries are the test authenticator's plugin binaries.
type Binaries struct {
	// Plain is the test authenticator (plugins/authn/internal/testauthn).
	Plain    string
	PlainSum [sha256.Size]byte
	// Marked is the same authenticator, linked to append a line to
	// Marker when it starts: a test that its absence proves the binary
	// never ran.
	Marked    string
	MarkedSum [sha256.Size]byte
	Marker    string
}

// Build builds the binaries into dir (a TestMain's temporary folder).
func Build(dir string) (*Binaries, error) {
	b := &Binaries{
		Plain:  filepath.Join(dir, "hearth-authn-test"),
		Marked: filepath.Join(dir, "hearth-authn-test-marked"),
		Marker: filepath.Join(dir, "started"),
	}
	if err := build(b.Plain, ""); err != nil {
		return nil, err
	}
	if err := build(b.Marked, "-X main.startMarker="+b.Marker); err != nil {
		return nil, err
	}
	var err error
	if b.PlainSum, err = SHA256File(b.Plain); err != nil {
		return nil, err
	}
	if b.MarkedSum, err = SHA256File(b.Marked); err != nil {
		return nil, err
	}
	return b, nil
}

// build runs go build for the test authenticator.
func build(out, ldflags string) error { return BuildMain(testAuthn, out, ldflags) }

// BuildMain builds the main package pkg (an import path) into out, with
// the linker flags ldflags.
func BuildMain(pkg, out, ldflags string) error {
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", ldflags, pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

// SHA256File is the SHA-256 of the file at path.
func SHA256File(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Starts is how many times the Marked binary has started so far.
func (b *Binaries) Starts() (int, error) {
	data, err := os.ReadFile(b.Marker)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return bytes.Count(data, []byte("\n")), nil
}

// Main is a test package's TestMain: it builds the binaries into a fresh
// temporary folder (named after prefix) into *bins, runs the tests and
// removes the folder.
func Main(m *testing.M, prefix string, bins **Binaries) {
	MainFunc(m, prefix, func(dir string) error {
		var err error
		*bins, err = Build(dir)
		return err
	})
}

// MainFunc is a test package's TestMain that builds its own binaries:
// build is handed a fresh temporary folder (named after prefix); then
// the tests run and the folder is removed.
func MainFunc(m *testing.M, prefix string, build func(dir string) error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
