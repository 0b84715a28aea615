package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/oidc"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
	"golang.org/x/term"
)

// An admin's logins say how each site that authenticates its admins with
// its own system checks this admin: by a directory password (LDAP sites),
// which is never kept and is asked for at each command, or by tokens from
// the site's identity provider (OIDC sites), kept until they expire. They
// live in the console kit's state folder, in one file of mode 0600, and
// never on a command line; each command seals a credential per site from
// them (actors/credential).

// loginsFile is the logins' file in the console kit's state folder.
const loginsFile = "logins.json"

// passwordLogin is how long a directory login is remembered (its user,
// not its password): a working day.
const passwordLogin = 12 * time.Hour

// login is one site's credential as the console keeps it.
type login struct {
	Kind    string    `json:"kind"` // authn.CredentialPassword or authn.CredentialToken
	User    string    `json:"user,omitempty"`
	Secret  string    `json:"secret,omitempty"` // the ID token; a password is never kept
	Expires time.Time `json:"expires"`
	// OIDC: where the token came from, to refresh it.
	Issuer       string `json:"issuer,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	CAFile       string `json:"ca_file,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func loginsPath(k *kit.Kit) (string, error) {
	dir, err := k.StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, loginsFile), nil
}

// loadLogins reads the console's logins; none is an empty map. A file
// others may read is refused: its secrets may have leaked.
func loadLogins(k *kit.Kit) (map[string]login, error) {
	path, err := loginsPath(k)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]login{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logins: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("logins: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("logins: %s has mode %v: others may read its secrets; remove it and log in again", path, st.Mode().Perm())
	}
	var ls map[string]login
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&ls); err != nil {
		return nil, fmt.Errorf("logins: %s: %w", path, err)
	}
	if ls == nil {
		ls = map[string]login{}
	}
	return ls, nil
}

// saveLogins writes the logins with mode 0600, replacing the file whole.
func saveLogins(k *kit.Kit, ls map[string]login) error {
	path, err := loginsPath(k)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("logins: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // an old .new may have had another mode
		return fmt.Errorf("logins: %w", err)
	}
	return os.Rename(tmp, path)
}

// readSecret reads a password from in: one line, without its newline.
func readSecret(in *bufio.Reader) (string, error) {
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", errors.New("no password on standard input")
	case len(line) > credential.MaxSecret:
		return "", fmt.Errorf("a password of more than %d bytes", credential.MaxSecret)
	}
	return line, nil
}

// sealCredentials seals one credential per logged-in site of the job for
// cmd (its submission, or a dry run): the sites' keys fetched through the server and verified,
// each credential bound to this signed job. A site logged into whose key
// cannot be had is skipped with a warning (it will refuse the job, and
// say why); an expired login is an error, before anything is sent.
func sealCredentials(ctx context.Context, c *cli, warn io.Writer, k *kit.Kit, client *coordinator.Client, trust *pki.Trust, signed *hearthv1.SignedJob,
	cmd authn.Command) ([]*hearthv1.SealedCredential, error) {
	hash := job.Hash(signed)
	return sealFor(ctx, c, warn, k, client, trust, nil, func(site string) credential.Binding {
		return credential.Binding{Site: site, Command: cmd, Requester: k.Config.Name, JobHash: hash}
	})
}

// sealFor seals a credential for each of sites (nil: every site logged
// into) that this admin is logged into, bound as binding(site) says: the
// logins refreshed first, the sites' keys fetched through the server and
// verified; a site whose key cannot be had is skipped with a warning.
func sealFor(ctx context.Context, c *cli, warn io.Writer, k *kit.Kit, client *coordinator.Client, trust *pki.Trust, sites []string,
	binding func(site string) credential.Binding) ([]*hearthv1.SealedCredential, error) {
	ls, err := loadLogins(k)
	if err != nil {
		return nil, err
	}
	// The sites asked for that are logged into; ls stays whole, since
	// fresh writes it back.
	chosen := slices.DeleteFunc(slices.Sorted(maps.Keys(ls)), func(s string) bool { return sites != nil && !slices.Contains(sites, s) })
	if len(chosen) == 0 {
		return nil, nil
	}
	now := time.Now()
	for _, site := range chosen {
		if ls[site], err = fresh(ctx, k, ls, site, now); err != nil {
			return nil, err
		}
	}
	keys, missing, err := client.CredentialKeys(ctx, trust, chosen, now)
	if err != nil {
		return nil, fmt.Errorf("credential keys: %w", err)
	}
	for _, site := range slices.Sorted(maps.Keys(missing)) {
		fmt.Fprintf(warn, "warning: no credential for %s: %s\n", termText(site), termText(missing[site]))
	}
	var out []*hearthv1.SealedCredential
	for _, site := range slices.Sorted(maps.Keys(keys)) {
		l := ls[site]
		secret, err := secretOf(c, site, l)
		if err != nil {
			return nil, err
		}
		sc, err := credential.Seal(keys[site], authn.Credential{Kind: l.Kind, User: l.User, Secret: secret}, binding(site), k.Key, now, credential.MaxLifetime)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// runLogin keeps a credential for one site. A password is read from
// standard input, with a prompt and no echo on a terminal; never from the
// command line.
func runLogin(ctx context.Context, c *cli, k *kit.Kit, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errUsageMsg("login takes a site name first: login SITE --ldap [--user NAME]")
	}
	site := args[0]
	fs := newFlags(c, "admin login", "SITE --ldap | --oidc ISSUER --client-id ID [--ca FILE] [--user NAME]")
	ldap := fs.Bool("ldap", false, "SITE checks a directory password (LDAP)")
	issuer := fs.String("oidc", "", "SITE checks tokens of this OpenID provider: log in there with the password grant")
	clientID := fs.String("client-id", "", "with --oidc: the console's client at the provider (SITE must trust it)")
	caFile := fs.String("ca", "", "with --oidc: the provider's TLS root, a PEM file (default: the system's)")
	user := fs.String("user", k.Config.Name, "the user at the site's identity system (default: this admin's certificate name)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := pki.ValidName(site); err != nil { // whether it is a site of the project, the server says when keys are fetched
		return fmt.Errorf("site %q: %w", site, err)
	}
	if *ldap == (*issuer != "") {
		return errUsageMsg("say how SITE authenticates: --ldap, or --oidc ISSUER")
	}
	if *issuer != "" && *clientID == "" {
		return errUsageMsg("--oidc needs --client-id")
	}
	l := login{Kind: authn.CredentialPassword, User: *user, Expires: time.Now().Add(passwordLogin)}
	if *issuer != "" {
		password, err := promptSecret(c, fmt.Sprintf("password of %s for %s: ", *user, site))
		if err != nil {
			return err
		}
		if *caFile != "" {
			if *caFile, err = filepath.Abs(*caFile); err != nil {
				return err
			}
		}
		l = login{Kind: authn.CredentialToken, Issuer: *issuer, ClientID: *clientID, CAFile: *caFile}
		cfg, err := l.tokenConfig(site)
		if err != nil {
			return err
		}
		tok, err := oidc.PasswordGrant(ctx, cfg, *user, password)
		if err != nil {
			return fmt.Errorf("log into %s: %w", site, err)
		}
		l.Secret, l.RefreshToken, l.Expires = tok.IDToken, tok.RefreshToken, tok.Expiry
	}
	ls, err := loadLogins(k)
	if err != nil {
		return err
	}
	ls[site] = l
	if err := saveLogins(k, ls); err != nil {
		return err
	}
	if l.Kind == authn.CredentialPassword {
		fmt.Fprintf(c.stdout, "%s checks %s's directory password: each command will ask for it (until %s)\n", site, termText(*user), l.Expires.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(c.stdout, "logged into %s as %s until %s\n", site, termText(*user), l.Expires.Format(time.RFC3339))
	return nil
}

// tokenConfig is how the console asks the login's provider for a token
// meant for site.
func (l login) tokenConfig(site string) (oidc.TokenConfig, error) {
	cfg := oidc.TokenConfig{Issuer: l.Issuer, ClientID: l.ClientID, Audience: site}
	if l.CAFile != "" {
		pem, err := os.ReadFile(l.CAFile)
		if err != nil {
			return cfg, fmt.Errorf("the provider's CA: %w", err)
		}
		cfg.CA = pem
	}
	return cfg, nil
}

// A token about to expire (within refreshMargin) is refreshed before a
// command carries it; one with less than minRemaining left (a provider's
// short-lived tokens, or no refresh token) is not sent: it could expire on
// the way to the site.
const (
	refreshMargin = time.Minute
	minRemaining  = 5 * time.Second
)

// fresh is the site's login ready to use: a token about to expire is
// refreshed (and the refreshed one kept); an expired login that cannot be
// refreshed is an error that says to log in again.
func fresh(ctx context.Context, k *kit.Kit, ls map[string]login, site string, now time.Time) (login, error) {
	l := ls[site]
	if l.Kind == authn.CredentialToken && now.Add(refreshMargin).After(l.Expires) && l.RefreshToken != "" {
		cfg, err := l.tokenConfig(site)
		if err != nil {
			return l, err
		}
		tok, err := oidc.Refresh(ctx, cfg, &oidc.Token{IDToken: l.Secret, RefreshToken: l.RefreshToken, Expiry: l.Expires})
		if err != nil {
			return l, fmt.Errorf("the token for %s expires at %s and could not be refreshed (%w): log in again", site, l.Expires.UTC().Format(time.RFC3339), err)
		}
		l.Secret, l.RefreshToken, l.Expires = tok.IDToken, tok.RefreshToken, tok.Expiry
		ls[site] = l
		if err := saveLogins(k, ls); err != nil {
			return l, err
		}
	}
	if now.Add(minRemaining).After(l.Expires) {
		return l, fmt.Errorf("the login for %s expires at %s: log in again (hearth admin login %s ...)", site, l.Expires.UTC().Format(time.RFC3339), site)
	}
	return l, nil
}

// promptSecret reads a secret from the console's standard input: on a
// terminal after a prompt, without echo.
// Off a terminal it reads the next line: one per password asked for, in
// the order asked.
func promptSecret(c *cli, prompt string) (string, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", err
		}
		return readSecret(bufio.NewReader(strings.NewReader(string(b))))
	}
	if c.stdin == nil {
		return "", errors.New("no password on standard input")
	}
	if c.stdinLines == nil {
		c.stdinLines = bufio.NewReaderSize(c.stdin, credential.MaxSecret+2)
	}
	return readSecret(c.stdinLines)
}

// secretOf is the secret a login's credential carries for site: its token,
// or the directory password, asked for now.
func secretOf(c *cli, site string, l login) (string, error) {
	if l.Kind == authn.CredentialToken {
		return l.Secret, nil
	}
	if c == nil {
		return "", fmt.Errorf("%s wants a directory password, and this console cannot ask for one", site)
	}
	return promptSecret(c, fmt.Sprintf("directory password of %s at %s: ", l.User, site))
}

func runLogout(c *cli, k *kit.Kit, args []string) error {
	if len(args) != 1 {
		return errUsageMsg("logout takes one site name")
	}
	ls, err := loadLogins(k)
	if err != nil {
		return err
	}
	if _, ok := ls[args[0]]; !ok {
		return fmt.Errorf("not logged into %q", args[0])
	}
	delete(ls, args[0])
	if err := saveLogins(k, ls); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "logged out of", termText(args[0]))
	return nil
}

// printLogins lists the sites logged into, without their secrets.
func printLogins(c *cli, k *kit.Kit, asJSON bool) error {
	ls, err := loadLogins(k)
	if err != nil {
		return err
	}
	type row struct {
		Site    string    `json:"site"`
		Kind    string    `json:"kind"`
		User    string    `json:"user,omitempty"`
		Issuer  string    `json:"issuer,omitempty"`
		Expires time.Time `json:"expires"`
	}
	var rows []row
	for _, s := range slices.Sorted(maps.Keys(ls)) {
		l := ls[s]
		rows = append(rows, row{Site: s, Kind: l.Kind, User: l.User, Issuer: l.Issuer, Expires: l.Expires})
	}
	if asJSON {
		return json.NewEncoder(c.stdout).Encode(rows)
	}
	for _, r := range rows {
		fmt.Fprintf(c.stdout, "%s\t%s\t%s\tuntil %s\n", termText(r.Site), r.Kind, termText(r.User+r.Issuer), r.Expires.Format(time.RFC3339))
	}
	return nil
}
