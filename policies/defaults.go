package policies

import (
	"embed"
	"fmt"
	"io/fs"
)

// defaults holds the default policy files; README.md beside them is for
// people browsing the source and is not embedded.
//
//go:embed defaults/*.json
var defaults embed.FS

// Defaults are the default policy files (authorization.json, components.json,
// privacy.json, resources.json) at the root of a read-only file system: what provisioning
// is handed to write into every startup kit (bus/kit.WriteDefaultPolicies
// places them in the kit's local/ folder).
func Defaults() fs.FS {
	sub, err := fs.Sub(defaults, "defaults")
	if err != nil { // cannot happen: the folder is embedded
		panic(fmt.Sprintf("policies: embedded defaults: %v", err))
	}
	return sub
}
