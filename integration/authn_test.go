package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/integration/cluster"
	"github.com/hearthfl/hearth/plugins/authn"
	"github.com/hearthfl/hearth/plugins/authn/authntest"
	"github.com/hearthfl/hearth/plugins/authn/oidc"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// buildPlugin builds one of the plugin mains under cmd/ into t's temporary
// folder and returns its path and SHA-256, for a site to pin.
func buildPlugin(t *testing.T, name string) (path, sum string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", path, "../cmd/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return path, hex.EncodeToString(h[:])
}

// writeAuthentication writes a site's local/authentication.json: the
// plugin pinned, and its configuration.
func writeAuthentication(t *testing.T, kitDir, plugin, sum string, config any) {
	t.Helper()
	b, err := json.MarshalIndent(map[string]any{"format_version": "1.0", "plugin": map[string]string{"path": plugin, "sha256": sum},
		"timeout": "10s", "config": config}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kitDir, "local", "authentication.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// authnProject is a project whose site-1 authenticates admins against a
// real slapd (LDAP plugin), site-2 against a real Dex (OIDC plugin) whose
// users are that directory's, and site-3 by certificates alone.
type authnProject struct {
	*project
	slapd *authntest.Slapd
	dex   *authntest.Dex
	caPEM string // the file of Dex's TLS root, for the console
	// passwords are what each admin types at their console when a command
	// asks for their directory password (site-1's; it is never kept).
	passwords map[string]string
}

const (
	lead   = "lead@hearth.local"   // in fl-leads
	carol  = "carol@hearth.local"  // a lead by certificate, in no group the sites map
	nobody = "nobody@hearth.local" // a lead by certificate, logged in nowhere
)

func startAuthnProject(t *testing.T) *authnProject {
	t.Helper()
	slapd := authntest.StartSlapd(t, authntest.Directory{TLS: true,
		People: []authntest.Person{{UID: lead, Password: "lead-password", Email: "lead@example.org"},
			{UID: carol, Password: "carol-password", Email: "carol@example.org"}},
		Groups: []authntest.Group{{Name: "fl-leads", Members: []string{lead}}, {Name: "staff", Members: []string{carol}}}})
	dex := authntest.StartDex(t, authntest.DexConfig{Directory: slapd, Sites: []string{"site-1", "site-2"}, IDTokenExpiry: 10 * time.Second})
	ldapBin, ldapSum := buildPlugin(t, "hearth-authn-ldap")
	oidcBin, oidcSum := buildPlugin(t, "hearth-authn-oidc")

	var admins []provision.AdminSpec
	for _, a := range []string{lead, carol, nobody} {
		admins = append(admins, provision.AdminSpec{Name: a, Org: "hearth", Role: pki.RoleLead})
	}
	p := startProjectWith(t, projectSpec{provisioned: 3, running: 0, admins: admins})
	roles := []map[string]string{{"group": "fl-leads", "role": "lead"}}
	writeAuthentication(t, p.Kit("site-1"), ldapBin, ldapSum, map[string]any{"url": slapd.URL, "start_tls": true, "ca_pem": string(slapd.CAPEM),
		"user_dn": "uid={user}," + slapd.PeopleBase(), "group_base": slapd.GroupBase(), "roles": roles})
	writeAuthentication(t, p.Kit("site-2"), oidcBin, oidcSum, map[string]any{"issuer": dex.Issuer, "ca_pem": string(dex.CAPEM),
		"subject_claim": "preferred_username", "skew": "1s", "roles": roles})
	if _, err := p.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		p.sites[s] = p.start(t, s, "site", "-k", p.Kit(s))
	}
	for _, s := range p.Sites {
		p.await(t, p.sites[s])
	}
	caFile := filepath.Join(t.TempDir(), "dex-ca.pem")
	if err := os.WriteFile(caFile, dex.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &authnProject{project: p, slapd: slapd, dex: dex, caPEM: caFile, passwords: map[string]string{}}
}

// login runs `hearth admin login` as admin for site: for site-1 (LDAP)
// it only says so, and password is what the admin will type at each
// command; for site-2 (OIDC) the console gets tokens with it now.
func (ap *authnProject) login(t *testing.T, admin, site, password string) {
	t.Helper()
	args := []string{"admin", "-k", ap.Kit(admin), "login", site}
	if site == "site-1" {
		args = append(args, "--ldap")
		ap.passwords[admin] = password
	} else {
		args = append(args, "--oidc", ap.dex.Issuer, "--client-id", authntest.DexConsole, "--ca", ap.caPEM)
	}
	cmd := exec.Command(hearthBin, args...)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("login %s at %s: %v\n%s", admin, site, err, out)
	}
}

// oneRound is a one-round job that runs with any one site.
var oneRound = jobSpec{rounds: 1, minSites: 1, timeout: "30s"}.manifest()

// runAs submits oneRound through `hearth admin submit` as admin, waits for
// its end and returns it, with the sites that trained.
func (ap *authnProject) runAs(t *testing.T, admin string) (*hearthv1.JobInfo, []string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(oneRound), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hearthBin, "admin", "-k", ap.Kit(admin), "--json", "submit", dir)
	cmd.Stdin = strings.NewReader(ap.passwords[admin] + "\n") // asked for once: site-1's directory password
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("submit as %s: %v\n%s", admin, err, out)
	}
	var acc struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &acc); err != nil {
		t.Fatalf("submit's answer: %v\n%s", err, out)
	}
	return ap.await(t, acc.JobID)
}

func (ap *authnProject) await(t *testing.T, id string) (*hearthv1.JobInfo, []string) {
	t.Helper()
	_, console := ap.console(t, ap.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	info, err := console.Follow(ctx, id, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || len(info.History) == 0 {
		t.Fatalf("job %s: %s (%s)", id, info.Status, info.Reason)
	}
	return info, info.History[0].Answered
}

// refusedAt is the reason site refused job id, from its audit log.
func (ap *authnProject) refusedAt(t *testing.T, site, id string) string {
	t.Helper()
	got := auditOf(t, ap.project, site, func(r auditor.Record) bool { return r.Action == "job.refused" && r.JobID == id })
	if len(got) != 1 {
		t.Fatalf("%s audited %d refusals of job %s, want 1", site, len(got), id)
	}
	return got[0].Detail["reason"]
}

// TestSitesAuthenticateWithTheirOwnSystems: one project, site-1 checking
// admins against its LDAP directory and site-2 against its OIDC provider.
// A lead in fl-leads trains a job at both, each site mapping the groups to
// the role its policy decides on. Each bad credential is refused by the
// site concerned, audited there with the reason, and the job runs without
// that site.
func TestSitesAuthenticateWithTheirOwnSystems(t *testing.T) {
	ap := startAuthnProject(t)
	ap.login(t, lead, "site-1", "lead-password")
	ap.login(t, lead, "site-2", "lead-password")

	info, trained := ap.runAs(t, lead)
	if !slices.Equal(trained, []string{"site-1", "site-2", "site-3"}) {
		t.Fatalf("the lead's job trained at %v, want all three sites; site-1: %s; site-2: %s", trained,
			ap.refusedAt(t, "site-1", info.Id), ap.refusedAt(t, "site-2", info.Id))
	}
	for _, s := range []string{"site-1", "site-2"} {
		got := auditOf(t, ap.project, s, func(r auditor.Record) bool {
			return r.Action == "admin.authenticated" && r.JobID == info.Id && r.Detail["role"] == "lead" && strings.Contains(r.Detail["groups"], "fl-leads")
		})
		if len(got) != 1 {
			t.Fatalf("%s: no authentication of the lead as role lead in its audit log", s)
		}
	}
	logins, err := os.ReadFile(filepath.Join(ap.Kit(lead), "state", "logins.json"))
	if st, serr := os.Stat(filepath.Join(ap.Kit(lead), "state", "logins.json")); err != nil || serr != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the console's logins: %v %v; want mode 0600", err, serr)
	}
	if strings.Contains(string(logins), "lead-password") {
		t.Fatal("the console kept the directory password")
	}

	// Site commands are authenticated at the site too, with a credential
	// bound to the signed command.
	status := exec.Command(hearthBin, "admin", "-k", ap.Kit(lead), "site", "status", "site-1")
	status.Stdin = strings.NewReader("lead-password\n")
	if out, err := status.CombinedOutput(); err != nil || !strings.Contains(string(out), "name: site-1") {
		t.Fatalf("the lead's site status at site-1: %v\n%s", err, out)
	}
	if out, err := ap.adminCLI(t, lead, "site", "status", "site-2"); err != nil || !strings.Contains(out, "name: site-2") {
		t.Fatalf("the lead's site status at site-2: %v\n%s", err, out)
	}
	if out, err := ap.adminCLI(t, nobody, "site", "status", "site-1"); err == nil || !strings.Contains(out, "authentication: no credential for this site") {
		t.Fatalf("site status at site-1 without a credential: %v\n%s", err, out)
	}

	// The refusals that go through the console as users would meet them.
	t.Run("a wrong password", func(t *testing.T) {
		ap.passwords[lead] = "not-the-password" // typed wrong at the command
		defer func() { ap.passwords[lead] = "lead-password" }()
		info, trained := ap.runAs(t, lead)
		if slices.Contains(trained, "site-1") || !slices.Contains(trained, "site-2") {
			t.Fatalf("trained at %v", trained)
		}
		if r := ap.refusedAt(t, "site-1", info.Id); !strings.Contains(r, "invalid credentials") {
			t.Fatalf("site-1's reason: %s", r)
		}
	})
	t.Run("a user not in the group", func(t *testing.T) {
		ap.login(t, carol, "site-1", "carol-password")
		ap.login(t, carol, "site-2", "carol-password")
		info, trained := ap.runAs(t, carol)
		if !slices.Equal(trained, []string{"site-3"}) {
			t.Fatalf("carol's job trained at %v, want site-3 only", trained)
		}
		for _, s := range []string{"site-1", "site-2"} {
			if r := ap.refusedAt(t, s, info.Id); !strings.Contains(r, "maps to a role") {
				t.Fatalf("%s's reason: %s", s, r)
			}
		}
		// The sites' audit logs say why; the server, and through it every
		// admin, hears only that authentication denied it.
		heard := ap.server.Records(func(r cluster.Record) bool { return r.Msg() == "site left out" && r.Str("job") == info.Id })
		audited := auditOf(t, ap.project, "server", func(r auditor.Record) bool { return r.Action == "join.failed" && r.JobID == info.Id })
		b, _ := json.Marshal([]any{heard, audited})
		if len(heard) != 2 || len(audited) != 2 || strings.Contains(string(b), "staff") || strings.Contains(string(b), "ou=") || !strings.Contains(string(b), "authentication: denied") {
			t.Fatalf("what the server heard (log, audit) of carol's job: %s", b)
		}
	})
	t.Run("no credential at all", func(t *testing.T) {
		info, trained := ap.runAs(t, nobody)
		if !slices.Equal(trained, []string{"site-3"}) {
			t.Fatalf("trained at %v, want site-3 only", trained)
		}
		for _, s := range []string{"site-1", "site-2"} {
			if r := ap.refusedAt(t, s, info.Id); !strings.Contains(r, "no credential") {
				t.Fatalf("%s's reason: %s", s, r)
			}
		}
	})

	// The refusals a console would not send: credentials sealed by hand,
	// validly, into validly signed submissions, as a compromised console or
	// server would try them.
	n, console := ap.console(t, lead)
	tokenFor := func(t *testing.T, user, password, audience string) *oidc.Token {
		t.Helper()
		tok, err := oidc.PasswordGrant(context.Background(), oidc.TokenConfig{Issuer: ap.dex.Issuer, ClientID: authntest.DexConsole,
			Audience: audience, CA: ap.dex.CAPEM}, user, password)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t.Run("an expired token", func(t *testing.T) {
		tok := tokenFor(t, lead, "lead-password", "site-2")
		for time.Now().Before(tok.Expiry.Add(2 * time.Second)) { // Dex's tokens live 10 s; site-2 allows 1 s of skew
			time.Sleep(200 * time.Millisecond)
		}
		info, trained := submitSealed(t, ap, n, console, map[string]authn.Credential{"site-2": {Kind: authn.CredentialToken, Secret: tok.IDToken}}, nil)
		if slices.Contains(trained, "site-2") {
			t.Fatalf("trained at %v", trained)
		}
		if r := ap.refusedAt(t, "site-2", info.Id); !strings.Contains(r, "expired") {
			t.Fatalf("site-2's reason: %s", r)
		}
	})
	t.Run("a token for another site's audience", func(t *testing.T) {
		tok := tokenFor(t, lead, "lead-password", "site-1")
		info, trained := submitSealed(t, ap, n, console, map[string]authn.Credential{"site-2": {Kind: authn.CredentialToken, Secret: tok.IDToken}}, nil)
		if slices.Contains(trained, "site-2") {
			t.Fatalf("trained at %v", trained)
		}
		if r := ap.refusedAt(t, "site-2", info.Id); !strings.Contains(r, `not for "site-2"`) {
			t.Fatalf("site-2's reason: %s", r)
		}
	})
	t.Run("a token whose subject is not the certificate's name", func(t *testing.T) {
		tok := tokenFor(t, carol, "carol-password", "site-2")
		info, trained := submitSealed(t, ap, n, console, map[string]authn.Credential{"site-2": {Kind: authn.CredentialToken, Secret: tok.IDToken}}, nil)
		if slices.Contains(trained, "site-2") {
			t.Fatalf("trained at %v", trained)
		}
		if r := ap.refusedAt(t, "site-2", info.Id); !strings.Contains(r, "is not the certificate's name") {
			t.Fatalf("site-2's reason: %s", r)
		}
	})
	t.Run("a credential moved onto another job", func(t *testing.T) {
		tok := tokenFor(t, lead, "lead-password", "site-2")
		creds := map[string]authn.Credential{"site-1": {Kind: authn.CredentialPassword, User: lead, Secret: "lead-password"},
			"site-2": {Kind: authn.CredentialToken, Secret: tok.IDToken}}
		// Sealed for one signed job (never submitted), attached to another.
		other, err := job.Sign([]byte(oneRound), n.Kit.Cert, n.Kit.Key)
		if err != nil {
			t.Fatal(err)
		}
		info, trained := submitSealed(t, ap, n, console, creds, other)
		if !slices.Equal(trained, []string{"site-3"}) {
			t.Fatalf("trained at %v, want site-3 only", trained)
		}
		for _, s := range []string{"site-1", "site-2"} {
			if r := ap.refusedAt(t, s, info.Id); !strings.Contains(r, "another signed job") {
				t.Fatalf("%s's reason: %s", s, r)
			}
		}
	})
}

// submitSealed signs oneRound as the console's admin and submits it with
// creds sealed to each site's verified credential key, bound to the signed
// job, or, if sealedFor is set, to that other signed job.
func submitSealed(t *testing.T, ap *authnProject, n *node.Node, console *coordinator.Client, creds map[string]authn.Credential, sealedFor *hearthv1.SignedJob) (*hearthv1.JobInfo, []string) {
	t.Helper()
	ctx := context.Background()
	signed, err := job.Sign([]byte(oneRound), n.Kit.Cert, n.Kit.Key)
	if err != nil {
		t.Fatal(err)
	}
	if sealedFor == nil {
		sealedFor = signed
	}
	var sites []string
	for s := range creds {
		sites = append(sites, s)
	}
	keys, missing, err := console.CredentialKeys(ctx, n.Trust, sites, time.Now())
	if err != nil || len(missing) > 0 {
		t.Fatalf("credential keys: %v %v", err, missing)
	}
	var sealed []*hearthv1.SealedCredential
	for s, c := range creds {
		sc, err := credential.Seal(keys[s], c, credential.Binding{Site: s, Command: authn.CommandSubmit, Requester: n.Identity.Name,
			JobHash: job.Hash(sealedFor)}, n.Kit.Key, time.Now(), credential.MaxLifetime)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, sc)
	}
	id, err := console.SubmitSigned(ctx, signed, sealed...)
	if err != nil {
		t.Fatal(err)
	}
	return ap.await(t, id)
}

// TestARefusedPluginDoesNotStopTheSite: a site whose authentication.json
// pins another hash than its plugin binary's starts, audits why the plugin
// was refused (it is never run: plugins.TestHashMismatchNeverExecutes
// shows it), and refuses every command that needs authentication with that
// reason.
func TestARefusedPluginDoesNotStopTheSite(t *testing.T) {
	bin, sum := buildPlugin(t, "hearth-authn-ldap")
	wrong := strings.Repeat("0", len(sum))
	p := startProjectWith(t, projectSpec{provisioned: 2, running: 0})
	writeAuthentication(t, p.Kit("site-1"), bin, wrong, map[string]any{})
	if _, err := p.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		p.sites[s] = p.start(t, s, "site", "-k", p.Kit(s))
		p.await(t, p.sites[s])
	}
	refused := auditOf(t, p, "site-1", func(r auditor.Record) bool { return r.Action == "authn.plugin.refused" })
	if len(refused) != 1 || !strings.Contains(refused[0].Detail["reason"], "sha256") {
		t.Fatalf("site-1's audit of its plugin: %v", refused)
	}
	ap := &authnProject{project: p}
	info, trained := ap.runAs(t, p.Admin)
	if !slices.Equal(trained, []string{"site-2"}) {
		t.Fatalf("trained at %v, want site-2 only", trained)
	}
	if r := ap.refusedAt(t, "site-1", info.Id); !strings.Contains(r, "could not decide") || !strings.Contains(r, "sha256") {
		t.Fatalf("site-1's reason: %s", r)
	}
}
