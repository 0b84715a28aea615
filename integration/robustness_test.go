package integration

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
	"google.golang.org/protobuf/proto"
)

func TestHungSiteIsLeftOutOfRounds(t *testing.T) {
	lp := startLearning(t, 3)
	id := lp.submit(t, jobSpec{rounds: 5, minSites: 2, timeout: "1s", trainer: slowTrainer}.manifest())
	lp.waitRound(t, id, 1)
	hung := lp.sites["site-3"]
	if err := hung.Pause(); err != nil { // its link stays up; it just never answers
		t.Fatal(err)
	}
	defer hung.Resume()
	info := lp.waitEnd(t, id, 60*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 5 {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	last := info.History[len(info.History)-1]
	if !slices.Equal(last.Missing, []string{"site-3"}) || len(last.Answered) != 2 {
		t.Fatalf("last round answered %v, missing %v", last.Answered, last.Missing)
	}
	if d := time.Duration(last.DurationMicros) * time.Microsecond; d < time.Second || d > 3*time.Second {
		t.Fatalf("a round with a hung site took %v; the round timeout is 1s", d)
	}
	if info.Test == nil || info.Test.Accuracy < 0.5 {
		t.Fatalf("test metrics %v", info.Test)
	}
}

func TestKilledSiteJobCompletesWithTheRest(t *testing.T) {
	lp := startLearning(t, 3)
	id := lp.submit(t, jobSpec{rounds: 6, minSites: 2, timeout: "5s", trainer: slowTrainer}.manifest())
	lp.waitRound(t, id, 2)
	lp.sites["site-2"].Kill()
	info := lp.waitEnd(t, id, 60*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 6 {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	last := info.History[len(info.History)-1]
	if !slices.Equal(last.Answered, []string{"site-1", "site-3"}) || !slices.Equal(last.Missing, []string{"site-2"}) {
		t.Fatalf("last round answered %v, missing %v", last.Answered, last.Missing)
	}
	// A disconnected site costs nothing: it is left out at once.
	if d := time.Duration(last.DurationMicros) * time.Microsecond; d > 2*time.Second {
		t.Fatalf("a round without the killed site took %v", d)
	}
}

func TestJobFailsBelowQuorum(t *testing.T) {
	lp := startLearning(t, 3)
	const roundTimeout = 3 * time.Second
	id := lp.submit(t, jobSpec{rounds: 50, minSites: 2, timeout: "3s", trainer: slowTrainer}.manifest())
	lp.waitRound(t, id, 1)
	killed := time.Now()
	lp.sites["site-2"].Kill()
	lp.sites["site-3"].Kill()
	info := lp.waitEnd(t, id, 30*time.Second)
	took := time.Since(killed)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FAILED {
		t.Fatalf("job %s: %s", info.Status, info.Reason)
	}
	for _, want := range []string{"min_sites 2", "site-2", "site-3"} {
		if !strings.Contains(info.Reason, want) {
			t.Fatalf("reason %q does not say %q", info.Reason, want)
		}
	}
	if took > roundTimeout+2*time.Second {
		t.Fatalf("the job failed %v after losing quorum; round timeout %v", took, roundTimeout)
	}
	t.Logf("failed %v after the kill: %s", took.Round(time.Millisecond), info.Reason)
}

func TestJobResumesAfterServerRestart(t *testing.T) {
	lp := startLearning(t, 3)
	id := lp.submit(t, jobSpec{rounds: 8, minSites: 3, timeout: "10s", trainer: slowTrainer}.manifest())
	before := lp.waitRound(t, id, 3)
	lp.server.Kill()
	restarted := lp.start(t, "server-restarted", "server", "-k", lp.Kit("server"), "--listen", "127.0.0.1")
	lp.await(t, restarted)
	resumed := awaitLog(t, restarted, "resume", func(r cluster.Record) bool { return r.Msg() == "resuming job" && r.Str("job") == id })
	from := int64(resumed["completed_rounds"].(float64))
	if from < before.CompletedRounds {
		t.Fatalf("resumed from round %v, but round %d had completed before the crash", from, before.CompletedRounds)
	}
	info := lp.waitEnd(t, id, 90*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 8 || len(info.History) != 8 {
		t.Fatalf("job %s, %d rounds, %d in history: %s", info.Status, info.CompletedRounds, len(info.History), info.Reason)
	}
	for i, r := range info.History {
		if r.Round != int64(i+1) || len(r.Answered) != 3 {
			t.Fatalf("history[%d] is round %d with %v", i, r.Round, r.Answered)
		}
	}
	t.Logf("crashed after round %d, resumed from round %d, finished with test accuracy %.2f%%", before.CompletedRounds, from, 100*info.Test.GetAccuracy())
}

func TestChangedJobIsRefused(t *testing.T) {
	lp := startLearning(t, 2)
	good := []byte(jobSpec{rounds: 2, minSites: 2, timeout: "5s"}.manifest())
	k := lp.node.Kit
	signed, err := job.Sign(good, k.Cert, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	changed := proto.Clone(signed).(*hearthv1.SignedJob)
	changed.Manifest = []byte(strings.Replace(string(good), "rounds: 2", "rounds: 3", 1))

	// The server refuses it.
	if _, err := lp.admin.SubmitSigned(context.Background(), changed); err == nil || !strings.Contains(err.Error(), "does not match the manifest") {
		t.Fatalf("server accepted a changed job: %v", err)
	}

	// A compromised server forwards it anyway: every site refuses it and
	// records the refusal in its own audit log. The server process is
	// replaced by a hub in this test process, from the same kit.
	if err := lp.server.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	sk, err := kit.Load(lp.Kit("server"))
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := node.StartServer(context.Background(), sk, node.Options{Protocol: protocol.Table{}, ListenHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	for _, site := range []string{"site-1", "site-2"} {
		var r *bridge.Reply
		deadline := time.Now().Add(15 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r, err = rogue.Bridge.Request(ctx, site, &hearthv1.JoinJob{JobId: "job-f0f0f0f0f0f0", Job: changed})
			cancel()
			if !errors.Is(err, bridge.ErrTimeout) || time.Now().After(deadline) {
				break // the site's leaf has reconnected and answered, or we give up
			}
		}
		var remote *bridge.RemoteError
		if !errors.As(err, &remote) || remote.Code != hearthv1.FailureCode_FAILURE_CODE_REFUSED || !strings.Contains(remote.Message, "does not match the manifest") {
			t.Fatalf("%s answered %v, %v", site, r, err)
		}
		recs := readAudit(t, lp.Kit(site))
		i := slices.IndexFunc(recs, func(r auditor.Record) bool { return r.Action == "job.refused" && r.JobID == "job-f0f0f0f0f0f0" })
		if i < 0 || !strings.Contains(recs[i].Detail["reason"], "signature") {
			t.Fatalf("%s's audit log has no refusal of the changed job: %+v", site, recs)
		}
	}
}

func TestAuditLogsFollowATaskAcrossServerAndSite(t *testing.T) {
	lp := startLearning(t, 2)
	id := lp.submit(t, jobSpec{rounds: 2, minSites: 2, timeout: "10s"}.manifest())
	if info := lp.waitEnd(t, id, 30*time.Second); info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("job %s: %s", info.Status, info.Reason)
	}
	server, site1, site2 := readAudit(t, lp.Kit("server")), readAudit(t, lp.Kit("site-1")), readAudit(t, lp.Kit("site-2"))
	trail, err := auditor.Link(server, site1, site2)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(server, func(r auditor.Record) bool {
		return r.Action == "task.sent" && r.JobID == id && r.Round == 2 && r.Peer == "site-1"
	})
	if i < 0 {
		t.Fatal("the server's log has no task sent to site-1 in round 2")
	}
	var steps []string
	for _, r := range trail.Chain(server[i].ID) {
		steps = append(steps, r.Participant+":"+r.Action)
	}
	want := []string{"server:task.sent", "site-1:task.received", "site-1:task.executed", "site-1:result.sent", "server:result.received"}
	if !slices.Equal(steps, want) {
		t.Fatalf("chain %v, want %v", steps, want)
	}
}

// readAudit reads and verifies a participant's audit log with the public key
// of its certificate.
func readAudit(t testing.TB, kitDir string) []auditor.Record {
	t.Helper()
	c := rawKit(t, kitDir)
	f, err := os.Open(filepath.Join(kitDir, kit.StateDirName, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := auditor.Verify(f, c.cert.PublicKey.(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestSiteDecidesForItself: site-2's operator writes its own policy, in
// which no project admin may submit jobs there. The server accepts the job
// (its policy allows it) but cannot override site-2: site-2 refuses, with
// the reason in its audit log, and the job runs with the other sites.
func TestSiteDecidesForItself(t *testing.T) {
	p := startProject(t, 3, 0)
	if _, err := p.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	own := `{"format_version": "1.0", "permissions": {"project_admin": {"view": "any"}, "lead": "none", "org_admin": "none", "member": "none"}}`
	if err := os.WriteFile(filepath.Join(p.Kit("site-2"), "local", "authorization.json"), []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		p.sites[s] = p.start(t, s, "site", "-k", p.Kit(s))
		p.await(t, p.sites[s])
	}
	n := p.inProcess(t, p.Admin, node.Options{})
	admin := &coordinator.Client{Bus: n.Bridge, Server: "server",
		SignJob: func(m []byte) (*hearthv1.SignedJob, error) { return job.Sign(m, n.Kit.Cert, n.Kit.Key) }}
	lp := &learningProject{project: p, node: n, admin: admin}
	id := lp.submit(t, jobSpec{rounds: 2, minSites: 2, timeout: "10s"}.manifest())
	info := lp.waitEnd(t, id, 30*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("job %s: %s", info.Status, info.Reason)
	}
	if got := info.History[0].Answered; !slices.Equal(got, []string{"site-1", "site-3"}) {
		t.Fatalf("sites in round 1: %v, want site-1 and site-3 only", got)
	}
	recs := readAudit(t, p.Kit("site-2"))
	i := slices.IndexFunc(recs, func(r auditor.Record) bool { return r.Action == "job.refused" && r.JobID == id })
	if i < 0 || !strings.Contains(recs[i].Detail["reason"], "may not submit_job") {
		t.Fatalf("site-2's audit log has no policy refusal of job %s: %+v", id, recs)
	}
	t.Logf("site-2 refused: %s", recs[i].Detail["reason"])
}

// TestServerAuthorizesAdminCommands: the server decides admin commands by
// its own policy. With an override that lets project admins only view,
// submitting is refused with the policy's reason, and nothing runs.
func TestServerAuthorizesAdminCommands(t *testing.T) {
	p := startProject(t, 1, 0)
	if err := p.server.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	own := `{"format_version": "1.0", "permissions": {"project_admin": {"view": "any"}}}`
	if err := os.WriteFile(filepath.Join(p.Kit("server"), "local", "authorization.json"), []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	p.server = p.start(t, "server-restricted", "server", "-k", p.Kit("server"), "--listen", "127.0.0.1")
	p.await(t, p.server)
	n := p.inProcess(t, p.Admin, node.Options{})
	lp := &learningProject{project: p, node: n, admin: &coordinator.Client{Bus: n.Bridge, Server: "server",
		SignJob: func(m []byte) (*hearthv1.SignedJob, error) { return job.Sign(m, n.Kit.Cert, n.Kit.Key) }}}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(jobSpec{rounds: 1, minSites: 1, timeout: "5s"}.manifest()), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err = lp.admin.Submit(context.Background(), dir)
		if err == nil || !errors.Is(err, bridge.ErrTimeout) || time.Now().After(deadline) {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "may not submit_job") {
		t.Fatalf("submit under a view-only policy: %v", err)
	}
	var list hearthv1.JobList
	if err := lp.admin.Call(context.Background(), &hearthv1.ListJobs{}, &list); err != nil || len(list.Jobs) != 0 {
		t.Fatalf("jobs after the refusal: %v, %v", list.Jobs, err)
	}
}

// TestSiteWithoutTheDataRefusesTheJob: a site that has no local copy of the
// job's dataset refuses to join, saying why in its audit log, and the job
// runs with the sites that have it.
func TestSiteWithoutTheDataRefusesTheJob(t *testing.T) {
	lp := startLearning(t, 2)
	if err := os.RemoveAll(filepath.Join(lp.Workspace, "data", "site-2", "optdigits")); err != nil {
		t.Fatal(err)
	}
	id := lp.submit(t, jobSpec{rounds: 2, minSites: 1, timeout: "10s"}.manifest())
	info := lp.waitEnd(t, id, 30*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || !slices.Equal(info.History[0].Answered, []string{"site-1"}) {
		t.Fatalf("job %s, round 1 answered by %v: %s", info.Status, info.History[0].GetAnswered(), info.Reason)
	}
	recs := readAudit(t, lp.Kit("site-2"))
	i := slices.IndexFunc(recs, func(r auditor.Record) bool { return r.Action == "job.refused" && r.JobID == id })
	if i < 0 || !strings.Contains(recs[i].Detail["reason"], "local data for optdigits") {
		t.Fatalf("site-2's audit log has no refusal naming its missing data: %+v", recs)
	}
}
