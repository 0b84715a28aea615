package integration

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/siteadmin"
	"github.com/hearthfl/hearth/actors/siteanswer"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// adminCLI runs `hearth admin -k KIT ARGS...` as name and returns its output.
func (p *project) adminCLI(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(hearthBin, append([]string{"admin", "-k", p.Kit(name)}, args...)...).CombinedOutput()
	return string(out), err
}

// TestSiteCommandsAreDecidedAtTheSite: the server forwards site commands;
// each site checks the admin's signature, decides by its own policy and
// answers, read-only and bounded. A member may see a site's status but not
// its logs or resources; a replayed, retargeted or altered command is
// refused at the site; shutdown stops the site's process.
func TestSiteCommandsAreDecidedAtTheSite(t *testing.T) {
	member := "member@hearth.local"
	p := startProjectWith(t, projectSpec{provisioned: 2, running: 2,
		admins: []provision.AdminSpec{{Name: member, Org: "hearth", Role: pki.RoleMember}}})

	out, err := p.adminCLI(t, p.Admin, "site", "status", "site-1")
	if err != nil || !strings.Contains(out, "name: site-1") || !strings.Contains(out, "hub: true") {
		t.Fatalf("site status: %v\n%s", err, out)
	}
	out, err = p.adminCLI(t, p.Admin, "site", "logs", "site-1", "--lines", "3")
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 2 || !strings.Contains(out, `"msg"`) {
		t.Fatalf("site logs --lines 3: %v\n%s", err, out)
	}
	out, err = p.adminCLI(t, p.Admin, "site", "audit", "site-1", "--lines", "2")
	if err != nil || !strings.Contains(out, `"site.command"`) {
		t.Fatalf("site audit: %v\n%s", err, out)
	}
	if out, err = p.adminCLI(t, p.Admin, "site", "resources", "site-2"); err != nil || !strings.Contains(out, "cpus: ") {
		t.Fatalf("site resources: %v\n%s", err, out)
	}
	if out, err = p.adminCLI(t, member, "site", "status", "site-1"); err != nil {
		t.Fatalf("a member's site status (view: any): %v\n%s", err, out)
	}
	for _, verb := range []string{"logs", "resources", "shutdown"} {
		out, err := p.adminCLI(t, member, "site", verb, "site-1")
		if err == nil || !strings.Contains(out, "site-1 refused site."+verb+": site policy") {
			t.Fatalf("a member's site %s: %v\n%s", verb, err, out)
		}
	}
	refused := auditOf(t, p, "site-1", func(r auditor.Record) bool {
		return r.Action == "site.command.refused" && r.Peer == member && strings.Contains(r.Detail["reason"], "site policy")
	})
	if len(refused) != 3 {
		t.Fatalf("%d refusals in site-1's audit log, want 3", len(refused))
	}

	// Signed commands the server could play with: sent twice, sent to
	// another site than the one signed for, altered after signing.
	n, console := p.console(t, p.Admin)
	reply, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := siteadmin.Sign("site-1", authn.CommandSiteStatus, 0, reply.PublicKey(), n.Kit.Cert, n.Kit.Key, time.Now(), siteadmin.MaxLifetime)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var answer hearthv1.SealedSiteAnswer
	if err := console.Call(ctx, signed, &answer); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	// The answer is the site's, to this command, and only this console
	// reads it: altered on the way, it does not open.
	if res, err := siteanswer.OpenCommandAnswer(&answer, reply, n.Trust, "site-1", siteadmin.Hash(signed), time.Now()); err != nil || res.Facts["name"] != "site-1" {
		t.Fatalf("the site's answer: %+v, %v", res, err)
	}
	answer.Sealed.Ciphertext[0] ^= 1
	if _, err := siteanswer.OpenCommandAnswer(&answer, reply, n.Trust, "site-1", siteadmin.Hash(signed), time.Now()); err == nil {
		t.Fatal("an answer altered on the way opened")
	}
	retarget := proto.Clone(signed).(*hearthv1.SignedSiteCommand)
	retarget.To = "site-2"
	altered := proto.Clone(signed).(*hearthv1.SignedSiteCommand)
	altered.Command[len(altered.Command)-1] ^= 1
	for _, tc := range []struct {
		name string
		cmd  *hearthv1.SignedSiteCommand
		want string
	}{
		{"replayed", signed, "ran here before"},
		{"retargeted", retarget, "a command for \"site-1\", this is site-2"},
		{"altered", altered, "does not match the command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := console.Call(ctx, tc.cmd, &hearthv1.SealedSiteAnswer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s command: %v, want %q", tc.name, err, tc.want)
			}
		})
	}

	if out, err := p.adminCLI(t, p.Admin, "site", "shutdown", "site-2"); err != nil || !strings.Contains(out, "site-2 is shutting down") {
		t.Fatalf("site shutdown: %v\n%s", err, out)
	}
	select {
	case <-p.sites["site-2"].Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("site-2 still runs 15 s after its shutdown")
	}
	if got := auditOf(t, p, "site-2", func(r auditor.Record) bool {
		return r.Action == "site.command.done" && r.Detail["command"] == "site.shutdown"
	}); len(got) != 1 {
		t.Fatalf("site-2 audited %d shutdowns, want 1", len(got))
	}
}

// TestPreflightAsksEverySite: a dry run asks every site the job deploys to
// whether it would run it; each answers for itself (site-2 lacks the
// data), nothing starts, and the decisions are in the sites' audit logs.
func TestPreflightAsksEverySite(t *testing.T) {
	lp := startLearning(t, 2)
	k := loadKit(t, lp.Kit("site-2"))
	if err := os.RemoveAll(filepath.Join(k.DataDir(), "optdigits")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(jobSpec{rounds: 2, minSites: 1, timeout: "30s"}.manifest()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := lp.adminCLI(t, lp.Admin, "submit", "--dry-run", dir)
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "site-1") || !strings.Contains(lines[1], "accept") ||
		!strings.HasPrefix(lines[2], "site-2") || !strings.Contains(lines[2], "refuse") || !strings.Contains(lines[2], "local data for optdigits") {
		t.Fatalf("dry run rows:\n%s", out)
	}
	var list hearthv1.JobList
	if err := lp.admin.Call(context.Background(), &hearthv1.ListJobs{}, &list); err != nil || len(list.Jobs) != 0 {
		t.Fatalf("after a dry run the server lists %d jobs (%v), want none", len(list.Jobs), err)
	}
	if got := auditOf(t, lp.project, "site-1", func(r auditor.Record) bool { return r.Action == "preflight.accepted" }); len(got) != 1 {
		t.Fatalf("site-1 audited %d accepted pre-flights, want 1", len(got))
	}
	if got := auditOf(t, lp.project, "site-2", func(r auditor.Record) bool { return r.Action == "preflight.refused" }); len(got) != 1 {
		t.Fatalf("site-2 audited %d refused pre-flights, want 1", len(got))
	}
}
