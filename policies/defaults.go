package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// defaults holds the default policy files; README.md beside them is for
// people browsing the source and is not embedded.
//
//go:embed defaults/*.json
var defaults embed.FS

// DefaultFiles lists the names of the default policy files, sorted.
func DefaultFiles() []string {
	entries, err := fs.ReadDir(defaults, "defaults")
	if err != nil { // cannot happen: the folder is embedded
		panic(fmt.Sprintf("policies: read embedded defaults: %v", err))
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// DefaultSuffix marks a provisioned default policy file in a kit's local/
// folder ("authorization.json.default"). Defaults are covered by the kit's
// signed manifest; a file of the same name without the suffix is the site's
// own override, which the site writes and the project cannot change.
const DefaultSuffix = ".default"

// Path is the policy file name in dir (a kit's local/ folder) that is in
// force: the site's own override if there is one, else the provisioned
// default.
func Path(dir, name string) string {
	own := filepath.Join(dir, name)
	if _, err := os.Stat(own); err == nil {
		return own
	}
	return own + DefaultSuffix
}

// WriteDefaults writes the default policy files into dir, a kit's local/
// folder, as NAME.default, creating dir (mode 0755) if missing. Files are
// written with mode 0644 and replace files of the same name.
func WriteDefaults(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write default policies: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("write default policies: %w", err)
	}
	for _, name := range DefaultFiles() {
		data, err := defaults.ReadFile("defaults/" + name)
		if err != nil {
			return fmt.Errorf("write default policies: %w", err)
		}
		dst := filepath.Join(dir, name+DefaultSuffix)
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("write default policies: %w", err)
		}
		if err := os.Chmod(dst, 0o644); err != nil {
			return fmt.Errorf("write default policies: %w", err)
		}
	}
	return nil
}
