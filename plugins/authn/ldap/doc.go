// Package ldap is the LDAP authenticator (authn.Authenticator): it checks
// an admin's directory password by binding to the site's directory as
// that user, looks up the user's groups there and maps them to the local
// role the site's authorization policy decides on. It is built and tested
// against OpenLDAP's slapd; nothing in it is specific to OpenLDAP.
//
// # Configuration
//
// Configure takes the authenticator's section of the site's policy, a
// JSON object read strictly (an unknown or repeated key, a value of the
// wrong type or trailing data is a *ConfigError naming its path):
//
//	{
//	  "url": "ldaps://ldap.example.org",            // ldap:// or ldaps://, host[:port], nothing else
//	  "start_tls": false,                           // ldap:// upgraded with StartTLS before anything is sent
//	  "ca_pem": "-----BEGIN CERTIFICATE-----...",   // or "ca_file": "/abs/path/ca.pem" (one of them)
//	  "server_name": "ldap.example.org",            // the name the certificate must carry; default the URL's host
//	  "allow_plaintext": false,                     // required for ldap:// without start_tls
//	  "user_dn": "uid={user},ou=people,dc=example,dc=org",
//	  "group_base": "ou=groups,dc=example,dc=org",
//	  "group_filter": "(&(objectClass=groupOfNames)(member={dn}))",  // the default
//	  "group_attr": "cn",                           // the default: the attribute naming a group
//	  "roles": [{"group": "fl-leads", "role": "lead"}, {"group": "fl-members", "role": "member"}],
//	  "timeout": "5s"                               // the default: bounds one whole decision, at most 1m
//	}
//
// TLS: with ldaps:// or start_tls the directory's certificate is verified
// against the configured CA (ca_pem or ca_file, required; the system's
// roots are not used) and server_name; verification is never skipped.
// Plain ldap:// without start_tls sends the password in clear and is
// refused unless allow_plaintext is true: for a directory on loopback or
// behind a link the site protects otherwise. ca_file must be an absolute
// path (the plugin's working directory is its host's choice); it is read
// once, by Configure.
//
// {user} in user_dn is the directory user name, escaped as a DN value
// (RFC 4514); {dn} and {user} in group_filter are the user's DN and name,
// escaped as filter values (RFC 4515), so no name can change the DN's or
// the filter's structure. Role names are what the site's authorization.json
// lists (FLARE's project_admin, org_admin, lead, member, or its own; see
// authn.ValidRole); the first entry of roles, in
// list order, naming a group the user is in gives the role. Group names
// match case-insensitively, as LDAP compares cn.
//
// # Decisions
//
// Authenticate wants a password credential (authn.CredentialPassword).
// The directory user is the name in the requester's certificate; a
// credential naming another user is denied. It denies, before reaching
// the directory, a request with no credential, a token, another user's
// name or an empty password (LDAP takes a simple bind with an empty
// password as an unauthenticated bind, which succeeds). Then it binds as
// the user's DN over a fresh connection: a wrong password and an unknown
// user are both denied as "invalid credentials" (the reason does not tell
// them apart). It searches the user's groups, bound as the user (so the
// directory must let its users read the groups: a group they cannot read
// is not theirs here), with a size limit (MaxGroups), names over
// MaxGroupName left out and a bound on the bytes read, and denies a user
// none of whose groups maps to a role, naming (a bounded list of) the
// groups it saw. An authenticated Decision carries the user's DN as Subject, their
// groups and the role.
//
// A directory that cannot be reached, a TLS handshake that fails
// (a certificate from another CA included), a timeout or any other
// directory failure is an error: "could not decide", which the site
// denies on too. The password is never logged, returned or put in an
// error.
package ldap
