package ldap_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/authntest"
	"github.com/hearthfl/hearth/plugins/authn/ldap"
)

// directory is the test site's people and groups.
func directory() authntest.Directory {
	d := authntest.Directory{
		People: []authntest.Person{
			{UID: "alice", Password: "alice-pw"},      // fl-leads and staff
			{UID: "bob", Password: "bob-pw"},          // staff only
			{UID: "dana", Password: "dana-pw"},        // fl-members and fl-leads
			{UID: "mike", Password: "mike-pw"},        // fl-members
			{UID: "*", Password: "star-pw"},           // in no group
			{UID: "joiner", Password: "joiner-pw"},    // in MaxGroups+1 groups (withManyGroups)
			{UID: "alice,ou=x", Password: "comma-pw"}, // in no group
			{UID: "long", Password: "long-pw"},        // staff and long-names (see addLongNames)
		},
		Groups: []authntest.Group{
			{Name: "fl-leads", Members: []string{"alice", "dana"}},
			{Name: "fl-members", Members: []string{"dana", "mike"}},
			{Name: "staff", Members: []string{"alice", "bob", "long"}},
		},
	}
	return d
}

// withManyGroups puts joiner in MaxGroups+1 groups.
func withManyGroups(d authntest.Directory) authntest.Directory {
	for i := range ldap.MaxGroups + 1 {
		d.Groups = append(d.Groups, authntest.Group{Name: fmt.Sprintf("g%03d", i), Members: []string{"joiner"}})
	}
	return d
}

// siteConfig is a configuration for s over plain ldap:// (the directory
// is on loopback), changed by the tweaks.
// addEntries adds, as the root DN, what the harness's Directory does not
// make: the group cn=long-names, which also has a name longer than
// MaxGroupName (too long to be an RDN: slapd's mdb backend bounds its
// keys), with member long; and the RFC 2307 group cn=posix-leads, whose
// memberUid (a string with substring matching, unlike member) is alice.
func addEntries(t *testing.T, s *authntest.Slapd) {
	t.Helper()
	conn, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(s.RootDN, s.RootPassword); err != nil {
		t.Fatal(err)
	}
	long := goldap.NewAddRequest(s.GroupDN("long-names"), nil)
	long.Attribute("objectClass", []string{"groupOfNames"})
	long.Attribute("cn", []string{"long-names", strings.Repeat("L", ldap.MaxGroupName+1)})
	long.Attribute("member", []string{s.PeopleDN("long")})
	posix := goldap.NewAddRequest(s.GroupDN("posix-leads"), nil)
	posix.Attribute("objectClass", []string{"posixGroup"})
	posix.Attribute("cn", []string{"posix-leads"})
	posix.Attribute("gidNumber", []string{"1000"})
	posix.Attribute("memberUid", []string{"alice"})
	for _, req := range []*goldap.AddRequest{long, posix} {
		if err := conn.Add(req); err != nil {
			t.Fatal(err)
		}
	}
}

func siteConfig(s *authntest.Slapd, tweaks ...func(map[string]any)) []byte {
	c := map[string]any{
		"url":             s.URL,
		"allow_plaintext": true,
		"user_dn":         "uid={user}," + s.PeopleBase(),
		"group_base":      s.GroupBase(),
		"roles": []map[string]string{
			{"group": "fl-leads", "role": "lead"},
			{"group": "fl-members", "role": "member"},
		},
	}
	for _, f := range tweaks {
		f(c)
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return b
}

func configured(t *testing.T, config []byte) *ldap.Authenticator {
	t.Helper()
	a := ldap.New()
	if err := a.Configure(t.Context(), config); err != nil {
		t.Fatal(err)
	}
	return a
}

// request is alice's command at site-1, as her certificate names her,
// with cred attached.
func request(name string, cred *authn.Credential) authn.Request {
	return authn.Request{Site: "site-1", Command: authn.CommandSubmit, JobID: "job-1",
		Requester: authn.Requester{Name: name, Org: "org-a", Role: "member"}, Credential: cred}
}

func password(user, secret string) *authn.Credential {
	return &authn.Credential{Kind: authn.CredentialPassword, User: user, Secret: secret}
}

// noSecret fails t if any part of the answer holds the secret.
func noSecret(t *testing.T, secret string, d authn.Decision, err error) {
	t.Helper()
	if secret == "" {
		return
	}
	parts := append([]string{d.Subject, d.Reason, d.Role}, d.Groups...)
	if err != nil {
		parts = append(parts, err.Error(), fmt.Sprintf("%+v", err))
	}
	for _, p := range parts {
		if strings.Contains(p, secret) {
			t.Fatalf("the answer holds the password: %q", p)
		}
	}
}

// TestAuthenticate decides against a real slapd: who is authenticated
// with which role, and every refusal with its reason.
func TestAuthenticate(t *testing.T) {
	s := authntest.StartSlapd(t, withManyGroups(directory()))
	addEntries(t, s)
	a := configured(t, siteConfig(s))
	tests := []struct {
		name       string
		req        authn.Request
		wantRole   string   // authenticated with this role; "" for a denial
		wantGroups []string // sorted; nil for no check
		wantReason string   // in the reason
	}{
		{name: "lead in fl-leads", req: request("alice", password("alice", "alice-pw")),
			wantRole: "lead", wantGroups: []string{"fl-leads", "staff"}, wantReason: `group "fl-leads" gives role lead`},
		{name: "credential without a user name is the certificate's", req: request("alice", password("", "alice-pw")), wantRole: "lead"},
		{name: "member in fl-members", req: request("mike", password("mike", "mike-pw")), wantRole: "member", wantGroups: []string{"fl-members"}},
		{name: "first mapping in list order wins", req: request("dana", password("dana", "dana-pw")),
			wantRole: "lead", wantGroups: []string{"fl-leads", "fl-members"}},
		{name: "wrong password", req: request("alice", password("alice", "bob-pw")), wantReason: "invalid credentials"},
		{name: "unknown user, read as a wrong password", req: request("mallory", password("mallory", "alice-pw")), wantReason: "invalid credentials"},
		{name: "user in no mapped group", req: request("bob", password("bob", "bob-pw")),
			wantGroups: []string{"staff"}, wantReason: `maps to a role here: groups "staff"`},
		{name: "empty password", req: request("alice", password("alice", "")), wantReason: "empty password"},
		{name: "no credential", req: request("alice", nil), wantReason: "no credential"},
		{name: "token credential", req: request("alice", &authn.Credential{Kind: authn.CredentialToken, Secret: "eyJhbGciOi.x.y"}),
			wantReason: "the credential is a token"},
		{name: "unknown credential kind", req: request("alice", &authn.Credential{Kind: "otp", Secret: "123456"}), wantReason: `unknown credential kind "otp"`},
		{name: "credential user differs from the certificate's name", req: request("alice", password("bob", "bob-pw")),
			wantReason: `directory user "bob", not the certificate's name "alice"`},
		{name: "certificate without a name", req: request("", password("alice", "alice-pw")), wantReason: "carries no name"},
		{name: "over-long name", req: request(strings.Repeat("a", ldap.MaxUserName+1), password("", "alice-pw")), wantReason: "not a directory user name"},
		{name: "over-long password", req: request("alice", password("alice", strings.Repeat("p", ldap.MaxPassword+1))), wantReason: "password longer than"},
		{name: "injection: filter in the name", req: request("*)(uid=*", password("", "alice-pw")), wantReason: "invalid credentials"},
		{name: "injection: DN separator in the name", req: request("alice,ou=x", password("", "alice-pw")), wantReason: "invalid credentials"},
		{name: "injection: DN separator in the name binds as that user", req: request("alice,ou=x", password("", "comma-pw")),
			wantGroups: []string{}, wantReason: `no group of "uid=alice\\,ou=x,ou=people`},
		{name: "a user named * finds only their own groups", req: request("*", password("*", "star-pw")),
			wantGroups: []string{}, wantReason: "in no group"},
		{name: "in more groups than the limit", req: request("joiner", password("joiner", "joiner-pw")),
			wantReason: fmt.Sprintf("more than %d groups", ldap.MaxGroups)},
		{name: "over-long group names are left out", req: request("long", password("long", "long-pw")),
			wantGroups: []string{"long-names", "staff"}, wantReason: "no group of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := a.Authenticate(t.Context(), tt.req)
			if tt.req.Credential != nil {
				noSecret(t, tt.req.Credential.Secret, d, err)
			}
			if err != nil {
				t.Fatalf("could not decide: %v", err)
			}
			if d.Authenticated != (tt.wantRole != "") || d.Role != tt.wantRole {
				t.Fatalf("authenticated %v, role %q (%s); want role %q", d.Authenticated, d.Role, d.Reason, tt.wantRole)
			}
			if d.Authenticated && d.Subject != s.PeopleDN(tt.req.Requester.Name) {
				t.Errorf("subject %q, want %q", d.Subject, s.PeopleDN(tt.req.Requester.Name))
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to hold %q", d.Reason, tt.wantReason)
			}
			if tt.wantGroups != nil {
				got := slices.Sorted(slices.Values(d.Groups))
				if !slices.Equal(got, tt.wantGroups) && !(len(got) == 0 && len(tt.wantGroups) == 0) {
					t.Errorf("groups %q, want %q", got, tt.wantGroups)
				}
			}
		})
	}

	t.Run("wrong password and unknown user read alike", func(t *testing.T) {
		wrong, _ := a.Authenticate(t.Context(), request("alice", password("alice", "x")))
		unknown, _ := a.Authenticate(t.Context(), request("mallory", password("mallory", "x")))
		if wrong.Reason != unknown.Reason {
			t.Fatalf("reasons differ: %q and %q (they tell who exists)", wrong.Reason, unknown.Reason)
		}
	})
	t.Run("mapped group names match case-insensitively", func(t *testing.T) {
		a := configured(t, siteConfig(s, func(c map[string]any) {
			c["roles"] = []map[string]string{{"group": "FL-LEADS", "role": "org_admin"}}
		}))
		d, err := a.Authenticate(t.Context(), request("alice", password("alice", "alice-pw")))
		if err != nil || !d.Authenticated || d.Role != "org_admin" {
			t.Fatalf("decision %+v, %v; want org_admin", d, err)
		}
	})
	t.Run("injection: a wildcard name in a memberUid filter", func(t *testing.T) {
		// Unescaped, (memberUid=*) would find every posixGroup.
		a := configured(t, siteConfig(s, func(c map[string]any) {
			c["group_filter"] = "(&(objectClass=posixGroup)(memberUid={user}))"
			c["roles"] = []map[string]string{{"group": "posix-leads", "role": "lead"}}
		}))
		d, err := a.Authenticate(t.Context(), request("alice", password("alice", "alice-pw")))
		if err != nil || !d.Authenticated || d.Role != "lead" {
			t.Fatalf("alice: %+v, %v; want lead", d, err)
		}
		d, err = a.Authenticate(t.Context(), request("*", password("*", "star-pw")))
		if err != nil || d.Authenticated || len(d.Groups) != 0 {
			t.Fatalf("user *: %+v, %v; want no groups", d, err)
		}
	})
	t.Run("filter on the user name", func(t *testing.T) {
		a := configured(t, siteConfig(s, func(c map[string]any) {
			c["group_filter"] = "(&(objectClass=groupOfNames)(member=uid={user}," + s.PeopleBase() + "))"
		}))
		d, err := a.Authenticate(t.Context(), request("alice", password("alice", "alice-pw")))
		if err != nil || !d.Authenticated || d.Role != "lead" {
			t.Fatalf("decision %+v, %v; want lead", d, err)
		}
		d, err = a.Authenticate(t.Context(), request("*", password("*", "star-pw")))
		if err != nil || d.Authenticated || len(d.Groups) != 0 {
			t.Fatalf("user * got %+v, %v; want no groups", d, err)
		}
	})
	t.Run("concurrent decisions", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				user, pw, want := "alice", "alice-pw", true
				if i%2 == 1 {
					pw, want = "wrong", false
				}
				d, err := a.Authenticate(t.Context(), request(user, password(user, pw)))
				if err != nil || d.Authenticated != want {
					errs <- fmt.Errorf("decision %d: %+v, %v", i, d, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestCouldNotDecide shows every directory failure answered as an error
// ("could not decide", which the site denies on), while what needs no
// directory is still decided.
func TestCouldNotDecide(t *testing.T) {
	s := authntest.StartSlapd(t, directory())
	alice := request("alice", password("alice", "alice-pw"))
	tests := []struct {
		name    string
		a       func(t *testing.T) *ldap.Authenticator
		req     authn.Request
		wantErr error  // errors.Is; nil for any error
		wantMsg string // in the error
	}{
		{name: "not configured", a: func(*testing.T) *ldap.Authenticator { return ldap.New() }, req: alice, wantMsg: "not configured"},
		{name: "after a refused configuration", a: func(t *testing.T) *ldap.Authenticator {
			a := configured(t, siteConfig(s))
			if err := a.Configure(t.Context(), []byte(`{"url": "ldap://x"}`)); err == nil {
				t.Fatal("configuration accepted")
			}
			return a
		}, req: alice, wantMsg: "not configured"},
		{name: "group_base not in the directory", a: func(t *testing.T) *ldap.Authenticator {
			return configured(t, siteConfig(s, func(c map[string]any) { c["group_base"] = "ou=nowhere," + s.BaseDN }))
		}, req: alice, wantMsg: "group_base ou=nowhere,dc=example,dc=org does not exist"},
		{name: "directory never answers", a: func(t *testing.T) *ldap.Authenticator {
			return configured(t, siteConfig(s, func(c map[string]any) { c["url"] = "ldap://" + silentDirectory(t); c["timeout"] = "200ms" }))
		}, req: alice, wantErr: context.DeadlineExceeded, wantMsg: "bind at"},
		{name: "directory answers without end", a: func(t *testing.T) *ldap.Authenticator {
			return configured(t, siteConfig(s, func(c map[string]any) { c["url"] = "ldap://" + floodingDirectory(t) }))
		}, req: alice, wantMsg: "more than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			d, err := tt.a(t).Authenticate(t.Context(), tt.req)
			noSecret(t, "alice-pw", d, err)
			if err == nil {
				t.Fatalf("decided %+v, want an error", d)
			}
			if d.Authenticated {
				t.Fatalf("authenticated with an error: %+v", d)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q, want it to hold %q", err, tt.wantMsg)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("took %v", took)
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		a := configured(t, siteConfig(s))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := a.Authenticate(ctx, alice); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})

	// Last: the directory goes down.
	a := configured(t, siteConfig(s))
	s.Stop()
	t.Run("directory down", func(t *testing.T) {
		d, err := a.Authenticate(t.Context(), alice)
		if err == nil || d.Authenticated {
			t.Fatalf("decision %+v, %v; want an error", d, err)
		}
		if !strings.Contains(err.Error(), s.URL) {
			t.Errorf("error %q does not name the directory %s", err, s.URL)
		}
	})
	t.Run("directory down, refusals that need no directory", func(t *testing.T) {
		for _, req := range []authn.Request{request("alice", nil), request("alice", password("alice", "")), request("alice", password("bob", "pw"))} {
			d, err := a.Authenticate(t.Context(), req)
			if err != nil || d.Authenticated || d.Reason == "" {
				t.Errorf("decision %+v, %v; want a denial with its reason", d, err)
			}
		}
	})
}

// silentDirectory accepts connections and never answers.
func silentDirectory(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

// floodingDirectory answers every connection with the start of a 16 MiB
// message and then streams its bytes.
func floodingDirectory(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// SEQUENCE of 16 MiB holding an OCTET STRING that fills it.
				c.Write([]byte{0x30, 0x84, 0x01, 0x00, 0x00, 0x00, 0x04, 0x84, 0x00, 0xff, 0xff, 0xfa})
				chunk := make([]byte, 64<<10)
				for range 256 {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestBindRefusals classifies a directory's refusals of the bind (which
// slapd, answering "invalid credentials" to everything, does not make):
// denials with their reason, or could not decide.
func TestBindRefusals(t *testing.T) {
	tests := []struct {
		name       string
		code       uint16
		wantReason string // "" for an error
	}{
		{name: "inappropriate authentication reads as invalid credentials", code: goldap.LDAPResultInappropriateAuthentication, wantReason: "invalid credentials"},
		{name: "unwilling to perform (a locked account)", code: goldap.LDAPResultUnwillingToPerform, wantReason: "the directory refused the bind: Unwilling To Perform"},
		{name: "invalid DN syntax", code: goldap.LDAPResultInvalidDNSyntax, wantReason: "the directory refused the bind: Invalid DN Syntax"},
		{name: "operations error", code: goldap.LDAPResultOperationsError},
		{name: "busy", code: goldap.LDAPResultBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := refusingDirectory(t, tt.code)
			a := configured(t, []byte(`{"url": "ldap://`+addr+`", "allow_plaintext": true, "user_dn": "uid={user},dc=org",
				"group_base": "dc=org", "roles": [{"group": "fl-leads", "role": "lead"}]}`))
			d, err := a.Authenticate(t.Context(), request("alice", password("alice", "alice-pw")))
			noSecret(t, "alice-pw", d, err)
			if tt.wantReason == "" {
				if err == nil {
					t.Fatalf("decided %+v, want an error", d)
				}
				return
			}
			if err != nil || d.Authenticated || d.Reason != tt.wantReason {
				t.Fatalf("decision %+v, %v; want a denial %q", d, err, tt.wantReason)
			}
		})
	}
}

// refusingDirectory answers every bind with the result code.
func refusingDirectory(t *testing.T, code uint16) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := ber.ReadPacket(c)
				if err != nil || len(req.Children) < 2 {
					return
				}
				resp := ber.Encode(ber.ClassApplication, ber.TypeConstructed, goldap.ApplicationBindResponse, nil, "Bind Response")
				resp.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
				resp.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
				resp.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "refused", "diagnosticMessage"))
				msg := ber.NewSequence("LDAPMessage")
				msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, req.Children[0].Value, "messageID"))
				msg.AppendChild(resp)
				c.Write(msg.Bytes())
				io.Copy(io.Discard, c) // until the client hangs up
			}()
		}
	}()
	return l.Addr().String()
}

// TestAuthenticateTLS reaches the directory over StartTLS and ldaps://,
// verifying its certificate, and fails (could not decide) where the
// certificate does not verify.
func TestAuthenticateTLS(t *testing.T) {
	d := directory()
	d.TLS = true
	s := authntest.StartSlapd(t, d)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, s.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA := string(pki.EncodeCert(pkitest.New(t).CA.Cert))
	withTLS := func(url string, startTLS bool, ca func(map[string]any)) []byte {
		return siteConfig(s, func(c map[string]any) {
			delete(c, "allow_plaintext")
			c["url"] = url
			if startTLS {
				c["start_tls"] = true
			}
			ca(c)
		})
	}
	caPEM := func(pem string) func(map[string]any) { return func(c map[string]any) { c["ca_pem"] = pem } }
	tests := []struct {
		name    string
		config  []byte
		wantErr string // in the error; "" for success
	}{
		{name: "StartTLS, the directory's CA", config: withTLS(s.URL, true, caPEM(string(s.CAPEM)))},
		{name: "ldaps, the directory's CA from ca_file", config: withTLS(s.LDAPSURL, false, func(c map[string]any) { c["ca_file"] = caFile })},
		{name: "ldaps, server_name in the certificate", config: withTLS(s.LDAPSURL, false, func(c map[string]any) {
			c["ca_pem"], c["server_name"] = string(s.CAPEM), "localhost"
		})},
		{name: "StartTLS, another CA", config: withTLS(s.URL, true, caPEM(otherCA)), wantErr: "certificate signed by unknown authority"},
		{name: "ldaps, another CA", config: withTLS(s.LDAPSURL, false, caPEM(otherCA)), wantErr: "certificate signed by unknown authority"},
		{name: "ldaps, server_name not in the certificate", config: withTLS(s.LDAPSURL, false, func(c map[string]any) {
			c["ca_pem"], c["server_name"] = string(s.CAPEM), "ldap.example.org"
		}), wantErr: "ldap.example.org"},
		{name: "ldaps URL to a plain port", config: withTLS("ldaps"+strings.TrimPrefix(s.URL, "ldap"), false, caPEM(string(s.CAPEM))), wantErr: "TLS handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := configured(t, tt.config)
			d, err := a.Authenticate(t.Context(), request("alice", password("alice", "alice-pw")))
			noSecret(t, "alice-pw", d, err)
			if tt.wantErr == "" {
				if err != nil || !d.Authenticated || d.Role != "lead" {
					t.Fatalf("decision %+v, %v; want lead", d, err)
				}
				return
			}
			if err == nil || d.Authenticated {
				t.Fatalf("decision %+v, %v; want an error", d, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q, want it to hold %q", err, tt.wantErr)
			}
		})
	}
}
