// Command hearth-filter-test is the test filter as a plugin binary, which
// the plugin filter tests build and run.
package main

import "github.com/hearthfl/hearth/plugins/filter/internal/testfilter"

func main() { testfilter.Main() }
