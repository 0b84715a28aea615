// Command hearth-checker-imports is the imports checker as a plugin
// binary: it refuses a job whose Python code imports a module, or uses a
// builtin, that the site's policy does not allow (plugins/checker/imports
// documents its configuration and its limits).
package main

import (
	"github.com/hearthfl/hearth/plugins/checker"
	"github.com/hearthfl/hearth/plugins/checker/imports"
)

func main() { checker.Serve(imports.New()) }
