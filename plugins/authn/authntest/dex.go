package authntest

// Dex (dexidp/dex, v2.45.1), a real OpenID Connect provider, on loopback
// for the OIDC authenticator's tests. Its binary is built from the
// separate module tools/dex (so that the main module does not take Dex's
// dependencies):
//
//	CGO_ENABLED=0 go -C tools/dex build -o "$PWD/.ci/bin/dex" github.com/dexidp/dex/cmd/dex
//
// .ci/run does that and exports HEARTH_DEX; StartDex looks there, then
// for "dex" on PATH.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// DexEnv names the environment variable holding the Dex binary's path.
const DexEnv = "HEARTH_DEX"

// DexBuild is the command that builds the Dex binary (from the
// repository's root).
const DexBuild = `CGO_ENABLED=0 go -C tools/dex build -o "$PWD/.ci/bin/dex" github.com/dexidp/dex/cmd/dex && export HEARTH_DEX="$PWD/.ci/bin/dex"`

// DexConsole is the client id of the admin console at the Dex that
// StartDex runs: a public client (no secret) that every site's client
// trusts, so that it may ask for tokens whose audience is a site
// (the scope "audience:server:client_id:SITE").
const DexConsole = "hearth-console"

// DexConnector is the id of Dex's LDAP connector (the password grant's).
const DexConnector = "ldap"

// DexConfig is what StartDex configures.
type DexConfig struct {
	// Directory is the slapd whose people log in through Dex's LDAP
	// connector (uid and password; they need a mail attribute) and whose
	// groupOfNames entries give their groups (the groups claim: each
	// group's cn). Required. With TLS, Dex speaks ldaps to it.
	Directory *Slapd
	// Sites are the site clients, each trusting DexConsole; default
	// "site-1" and "site-2".
	Sites []string
	// IDTokenExpiry is how long ID tokens (and access tokens) are valid;
	// default 10 minutes. Dex counts in whole seconds.
	IDTokenExpiry time.Duration
	// Clients are confidential clients of the authorization-code flow
	// (web applications, such as the dashboard's sign-in); none by
	// default.
	Clients []DexClient
}

// DexClient is a confidential client of the authorization-code flow: Dex
// sends its codes only to one of RedirectURIs (compared exactly) and
// exchanges them only with Secret.
type DexClient struct {
	ID, Secret   string
	RedirectURIs []string
}

// Dex is a running Dex. Its fields are set once by StartDex.
type Dex struct {
	// Issuer is the issuer URL: https://127.0.0.1:PORT/dex.
	Issuer string
	// CAPEM is the test CA that issued Dex's TLS certificate (PEM); CA is
	// the same as a pool.
	CAPEM []byte
	CA    *x509.CertPool
	// Sites are the site clients' ids.
	Sites []string

	proc *process
}

// dexStartTimeout bounds how long Dex may take to serve its discovery
// document (it takes well under a second).
const dexStartTimeout = 30 * time.Second

// StartDex starts Dex with in-memory storage, HTTPS on a free loopback
// port with a certificate from a fresh test CA, the LDAP connector to
// c.Directory as the password grant's connector, DexConsole and the site
// clients; it returns once the discovery document is served. Dex is
// killed at t's cleanup. Where no Dex binary is found the test is
// skipped with the command that builds it (failed under CI=true).
func StartDex(t testing.TB, c DexConfig) *Dex {
	t.Helper()
	bin := findDex()
	if bin == "" {
		msg := "dex not built: " + DexBuild + " (.ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if c.Directory == nil {
		t.Fatal("authntest: StartDex needs a Directory (StartSlapd)")
	}
	if len(c.Sites) == 0 {
		c.Sites = []string{"site-1", "site-2"}
	}
	if c.IDTokenExpiry == 0 {
		c.IDTokenExpiry = 10 * time.Minute
	}
	if c.IDTokenExpiry < time.Second {
		t.Fatalf("authntest: Dex counts token expiry in seconds; %v is less than one", c.IDTokenExpiry)
	}

	dir := t.TempDir()
	project := pkitest.New(t)
	server := project.Issue(t, "dex", "example", pki.KindServer)
	certFile, keyFile := filepath.Join(dir, "dex.crt"), filepath.Join(dir, "dex.key")
	if err := os.WriteFile(certFile, pki.EncodeCert(server.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pki.EncodeKey(server.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Dex{CAPEM: pki.EncodeCert(project.CA.Cert), CA: project.Trust.Pool(), Sites: c.Sites}

	// A port found free can be taken before Dex binds it: try again with
	// another when that happens.
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		d.Issuer = "https://" + addr + "/dex"
		conf := filepath.Join(dir, "config.json")
		if err := os.WriteFile(conf, dexConfig(t, c, d.Issuer, addr, certFile, keyFile), 0o600); err != nil {
			t.Fatal(err)
		}
		err := d.start(bin, conf)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
	}
	t.Cleanup(d.Stop)
	return d
}

// Stop kills Dex and waits for it to exit: a provider that is down. Safe
// to call more than once; the test's cleanup calls it too.
func (d *Dex) Stop() { d.proc.kill() }

// start runs Dex and waits for its discovery document. When it fails, no
// Dex is left running.
func (d *Dex) start(bin, conf string) error {
	p := &process{cmd: exec.Command(bin, "serve", conf), exited: make(chan struct{}), stderr: &tailBuffer{max: 32 << 10}}
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	// Dex reads only its config file; give it no environment of ours.
	p.cmd.Env = []string{}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("authntest: start %s: %w", bin, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.CA}}}
	defer client.CloseIdleConnections()
	early := false
	err := bustest.Poll(dexStartTimeout, 20*time.Millisecond, func() error {
		select {
		case <-p.exited:
			early = true
			return nil
		default:
		}
		return discoveryServed(client, d.Issuer)
	})
	switch {
	case early:
		out := p.stderr.String()
		if strings.Contains(out, "address already in use") {
			return fmt.Errorf("%w: %s", errPortTaken, out)
		}
		return fmt.Errorf("authntest: dex exited at start (%v):\n%s", p.cmd.ProcessState, out)
	case err != nil:
		p.kill()
		return fmt.Errorf("authntest: after %v: %w\ndex's output:\n%s", dexStartTimeout, err, p.stderr.String())
	}
	d.proc = p
	return nil
}

// discoveryServed fetches issuer's discovery document and checks that it
// names issuer.
func discoveryServed(client *http.Client, issuer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("dex at %s does not serve its discovery document: %w", issuer, err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dex's discovery document: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Issuer != issuer {
		return fmt.Errorf("dex's discovery document names issuer %q (%v), want %q", doc.Issuer, err, issuer)
	}
	return nil
}

// dexConfig is Dex's configuration, as JSON (which Dex's YAML reader
// takes).
func dexConfig(t testing.TB, c DexConfig, issuer, addr, certFile, keyFile string) []byte {
	t.Helper()
	dir := c.Directory
	ldapConf := map[string]any{
		"bindDN":         dir.RootDN,
		"bindPW":         dir.RootPassword,
		"usernamePrompt": "Username",
		"userSearch": map[string]any{
			"baseDN":                dir.PeopleBase(),
			"filter":                "(objectClass=inetOrgPerson)",
			"username":              "uid",
			"idAttr":                "uid",
			"emailAttr":             "mail",
			"nameAttr":              "cn",
			"preferredUsernameAttr": "uid",
		},
		"groupSearch": map[string]any{
			"baseDN":       dir.GroupBase(),
			"filter":       "(objectClass=groupOfNames)",
			"userMatchers": []map[string]string{{"userAttr": "DN", "groupAttr": "member"}},
			"nameAttr":     "cn",
		},
	}
	if dir.LDAPSURL != "" {
		ldapConf["host"] = strings.TrimPrefix(dir.LDAPSURL, "ldaps://")
		ldapConf["rootCAData"] = dir.CAPEM // []byte: base64 in JSON, as Dex reads it
	} else {
		ldapConf["host"] = strings.TrimPrefix(dir.URL, "ldap://")
		ldapConf["insecureNoSSL"] = true
	}
	clients := []map[string]any{{"id": DexConsole, "name": "Hearth admin console", "public": true}}
	for _, s := range c.Sites {
		clients = append(clients, map[string]any{"id": s, "name": s, "secret": randomHex(t), "trustedPeers": []string{DexConsole}})
	}
	for _, cl := range c.Clients {
		clients = append(clients, map[string]any{"id": cl.ID, "name": cl.ID, "secret": cl.Secret, "redirectURIs": cl.RedirectURIs})
	}
	conf := map[string]any{
		"issuer":  issuer,
		"storage": map[string]any{"type": "memory"},
		"web":     map[string]any{"https": addr, "tlsCert": certFile, "tlsKey": keyFile},
		"logger":  map[string]any{"level": "info", "format": "text"},
		"oauth2": map[string]any{
			"passwordConnector":  DexConnector,
			"skipApprovalScreen": true,
		},
		"expiry":        map[string]any{"idTokens": c.IDTokenExpiry.String()},
		"connectors":    []map[string]any{{"type": "ldap", "id": DexConnector, "name": "Directory", "config": ldapConf}},
		"staticClients": clients,
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// findDex returns the Dex binary's path, or "" where none is found.
func findDex() string {
	if p := os.Getenv(DexEnv); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("dex"); err == nil {
		return p
	}
	return ""
}
