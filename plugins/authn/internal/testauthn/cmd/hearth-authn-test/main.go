// Command hearth-authn-test is the test authenticator as a plugin binary,
// which the plugin tests build and run.
package main

import "github.com/hearthfl/hearth/plugins/authn/internal/testauthn"

// startMarker is set by the tests at link time (-ldflags -X).
var startMarker string

func main() { testauthn.Main(startMarker) }
