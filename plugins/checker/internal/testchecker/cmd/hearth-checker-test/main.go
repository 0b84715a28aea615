// Command hearth-checker-test is the test checker as a plugin binary,
// which the checker plugin tests build and run.
package main

import "github.com/hearthfl/hearth/plugins/checker/internal/testchecker"

// startMarker is set by the tests at link time (-ldflags -X).
var startMarker string

func main() { testchecker.Main(startMarker) }
