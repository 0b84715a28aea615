package kit

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A kit's local/ folder holds the site's policy files in two layers. The
// project's defaults are provisioned as NAME.default and covered by the
// signed manifest, so a default cannot be swapped or added unnoticed. A
// file NAME without the suffix is the site's own override: the site writes
// it, it is outside the manifest, and the project cannot change it
// (federated authorization). Which files there are, and what they mean, is
// the policy engines' business (package policies); where they lie is the
// kit's.

// DefaultSuffix marks a provisioned default policy file in a kit's local/
// folder ("authorization.json.default").
const DefaultSuffix = ".default"

// PolicyPath is the policy file name in force in the kit: the site's own
// override in local/ if there is one, else the provisioned default.
func (k *Kit) PolicyPath(name string) string {
	own := filepath.Join(k.PolicyDir(), name)
	if _, err := os.Stat(own); err == nil {
		return own
	}
	return own + DefaultSuffix
}

// WriteDefaultPolicies writes every file at the root of defaults into
// dir, the local/ folder of a kit being made, as NAME.default, creating dir
// (mode 0755) if missing. Files are written with mode 0644 and replace
// files of the same name. A folder or anything else that is not a regular
// file in defaults is refused: a kit's policies lie flat in local/.
func WriteDefaultPolicies(dir string, defaults fs.FS) error {
	if defaults == nil {
		return fmt.Errorf("write default policies: no default policy files")
	}
	entries, err := fs.ReadDir(defaults, ".")
	if err != nil {
		return fmt.Errorf("write default policies: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write default policies: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("write default policies: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("write default policies: %s is not a regular file", e.Name())
		}
		data, err := fs.ReadFile(defaults, e.Name())
		if err != nil {
			return fmt.Errorf("write default policies: %w", err)
		}
		dst := filepath.Join(dir, e.Name()+DefaultSuffix)
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("write default policies: %w", err)
		}
		if err := os.Chmod(dst, 0o644); err != nil {
			return fmt.Errorf("write default policies: %w", err)
		}
	}
	return nil
}
