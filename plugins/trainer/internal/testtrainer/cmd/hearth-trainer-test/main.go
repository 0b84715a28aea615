// Command hearth-trainer-test is the test trainer as a plugin binary,
// which the trainer plugin tests build and run.
package main

import "github.com/hearthfl/hearth/plugins/trainer/internal/testtrainer"

func main() { testtrainer.Main() }
