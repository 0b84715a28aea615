// Command hearth-authn-oidc is the OpenID Connect authenticator plugin: a
// site pins its hash in local/authentication.json and Hearth runs it (see
// plugins/authn/oidc for its configuration).
package main

import (
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/oidc"
)

func main() { authn.Serve(oidc.New()) }
