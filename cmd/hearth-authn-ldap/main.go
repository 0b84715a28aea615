// Command hearth-authn-ldap is the LDAP authenticator plugin: a site pins
// its hash in local/authentication.json and Hearth runs it (see
// plugins/authn/ldap for its configuration).
package main

import (
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/ldap"
)

func main() { authn.Serve(ldap.New()) }
