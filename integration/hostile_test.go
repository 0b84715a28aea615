package integration

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The tests here play participants that hold valid keys and misbehave: a
// compromised site (the hostile build of hearth, cmd/hearth/hostile.go,
// running as a real site process), a member admin, and a compromised server.

// poisonJob is an optdigits job like the POC's (logistic regression),
// named so that the hostile build plays attack (see hostile.go), with an
// optional aggregation section (YAML flow mapping).
func poisonJob(attack, aggregation string) string { return poisonJobOf("logreg", attack, aggregation) }

// poisonJobOf is poisonJob with the trainer kind (logreg or mlp) and its
// recommended settings.
func poisonJobOf(kind, attack, aggregation string) string {
	spec := trainer.Defaults("optdigits", kind)
	agg := ""
	if aggregation != "" {
		agg = "aggregation: " + aggregation + "\n"
	}
	hidden := ""
	if len(spec.Hidden) > 0 {
		hidden = fmt.Sprintf(", hidden: %v", strings.ReplaceAll(fmt.Sprint(spec.Hidden), " ", ", "))
	}
	return fmt.Sprintf(`name: poison-%s-run
workflow: fedavg
rounds: %d
sites: ["@all"]
min_sites: 3
round_timeout: 20s
dataset: optdigits
trainer: {kind: %s%s, learning_rate: %g, epochs: %d, batch_size: %d, l2: %g, seed: 1}
evaluation: {validation: true, test: true}
%s`, attack, trainer.DefaultRounds("optdigits", kind), kind, hidden, spec.LearningRate, spec.Epochs, spec.BatchSize, spec.L2, agg)
}

func auditOf(t testing.TB, p *project, name string, match func(auditor.Record) bool) []auditor.Record {
	t.Helper()
	var out []auditor.Record
	for _, r := range readAudit(t, p.Kit(name)) {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// TestCompromisedSiteCannotSteerTheNumbers: site-5 holds a valid key and
// lies about what it has. Its claims are bounded by what it committed, its
// share of the weight is capped, impossible metrics are refused, and a
// wrong data shape leaves only it out; every refusal is in the server's
// audit log, and the four honest sites' jobs run to the end.
func TestCompromisedSiteCannotSteerTheNumbers(t *testing.T) {
	lp := startLearningWith(t, projectSpec{provisioned: 5, running: 5, hostile: map[string]bool{"site-5": true}})
	honest := []string{"site-1", "site-2", "site-3", "site-4"}
	run := func(t *testing.T, attack string) *hearthv1.JobInfo {
		t.Helper()
		info := lp.waitEnd(t, lp.submit(t, poisonJob(attack, "")), 90*time.Second)
		if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
			t.Fatalf("job %s: %s", info.Status, info.Reason)
		}
		for _, r := range info.History {
			for _, s := range honest {
				if !slices.Contains(r.Answered, s) {
					t.Fatalf("round %d: honest %s left out (%v)", r.Round, s, r.Missing)
				}
			}
		}
		return info
	}

	t.Run("claims 10^12 samples", func(t *testing.T) {
		info := run(t, "claim")
		c := slices.IndexFunc(info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == "site-5" })
		if c < 0 || info.Commitments[c].TrainSamples != 1e12 {
			t.Fatalf("site-5's commitment is not recorded: %v", info.Commitments)
		}
		for _, r := range info.History {
			total, liar := 0.0, 0.0
			for _, s := range r.Sites {
				total += s.Weight
				if s.Site == "site-5" {
					liar = s.Weight
				}
			}
			if share := liar / total; share > aggregator.DefaultShareCap(5)+1e-9 {
				t.Fatalf("round %d: the liar holds %.3f of the weight", r.Round, share)
			}
		}
		joined := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
			return r.Action == "site.joined" && r.JobID == info.Id && r.Peer == "site-5"
		})
		if len(joined) != 1 || joined[0].Detail["train_samples"] != "1000000000000" {
			t.Fatalf("the server's audit of site-5's commitment: %+v", joined)
		}
		t.Logf("test accuracy %.2f%% with site-5 claiming 10^12 samples (its weight capped at twice a fair share)", 100*info.Test.GetAccuracy())
	})

	t.Run("reports impossible metrics", func(t *testing.T) {
		info := run(t, "metrics")
		for _, r := range info.History {
			if slices.Contains(r.Answered, "site-5") || r.Validation.GetAccuracy() > 1 {
				t.Fatalf("round %d: answered %v, validation accuracy %v", r.Round, r.Answered, r.Validation.GetAccuracy())
			}
		}
		refused := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
			return r.Action == "result.refused" && r.JobID == info.Id && r.Peer == "site-5"
		})
		if len(refused) != len(info.History) || !strings.Contains(refused[0].Detail["reason"], "more than the") {
			t.Fatalf("%d refusals audited for %d rounds: %+v", len(refused), len(info.History), refused)
		}
	})

	for _, tc := range []struct{ name, attack string }{{"boosts its update x30", "boost"}, {"sends huge finite values", "huge"}} {
		t.Run(tc.name, func(t *testing.T) {
			info := run(t, tc.attack)
			if acc := info.Test.GetAccuracy(); acc < 0.9 {
				t.Fatalf("test accuracy %.4f", acc)
			}
			bounded := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
				return r.JobID == info.Id && r.Peer == "site-5" && (r.Action == "update.clipped" || r.Action == "update.screened")
			})
			rounds := map[int64]bool{}
			for _, r := range bounded {
				rounds[r.Round] = true
			}
			if len(rounds) != len(info.History) {
				t.Fatalf("%d of %d rounds audit site-5's update as clipped or screened: %+v", len(rounds), len(info.History), bounded)
			}
		})
	}

	t.Run("claims a perfect test score on 10^12 samples", func(t *testing.T) {
		info := run(t, "testclaim")
		best, liar := 0.0, -1.0
		for _, s := range info.SiteTest {
			if s.Site == "site-5" {
				liar = s.Metrics.Accuracy
			} else {
				best = max(best, s.Metrics.Accuracy)
			}
		}
		// Shown apart, and weighted at most as the cap allows: twice a fair share.
		share := aggregator.DefaultShareCap(5)
		if liar != 1 || info.Test.GetAccuracy() > share*1+(1-share)*best+1e-9 {
			t.Fatalf("job test accuracy %.4f with site-5 claiming %.2f (honest best %.4f)", info.Test.GetAccuracy(), liar, best)
		}
	})

	t.Run("reports another data shape", func(t *testing.T) {
		info := run(t, "shape")
		if len(info.Commitments) != 4 || slices.ContainsFunc(info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == "site-5" }) {
			t.Fatalf("joined: %v", info.Commitments)
		}
		refused := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
			return r.Action == "join.refused" && r.JobID == info.Id && r.Peer == "site-5"
		})
		if len(refused) != 1 || !strings.Contains(refused[0].Detail["reason"], "65 features") {
			t.Fatalf("the server's audit of the shape refusal: %+v", refused)
		}
	})
}

// TestSignedJobRunsOnce: a captured signed job cannot start a second job,
// neither at the server (its nonce is claimed in JetStream, and survives a
// restart) nor at the sites, when a compromised server replays it under a
// new id; a job past its not-after is refused by both.
func TestSignedJobRunsOnce(t *testing.T) {
	lp := startLearning(t, 2)
	k := lp.node.Kit
	signed, err := job.Sign([]byte(jobSpec{rounds: 2, minSites: 2, timeout: "5s"}.manifest()), k.Cert, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := lp.admin.SubmitSigned(context.Background(), signed)
	if err != nil {
		t.Fatal(err)
	}
	lp.waitEnd(t, id, 60*time.Second)
	global := lastModel(t, lp, id) // for the compromised server's tasks below
	if _, err := lp.admin.SubmitSigned(context.Background(), signed); err == nil || !strings.Contains(err.Error(), "already submitted") {
		t.Fatalf("the same signed job submitted twice: %v", err)
	}
	stale, err := job.SignAt([]byte(jobSpec{rounds: 2, minSites: 2, timeout: "5s"}.manifest()), k.Cert, k.Key,
		time.Now().Add(-11*time.Minute), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lp.admin.SubmitSigned(context.Background(), stale); err == nil || !strings.Contains(err.Error(), "has passed") {
		t.Fatalf("a job past its not-after: %v", err)
	}

	// An admin's command captured before a restart (an abort of a job the
	// server will resume, say).
	captured, _, err := lp.node.Signer.Sign(envelope.Outgoing{Recipient: "server", Body: &hearthv1.ListJobs{}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// After a restart the nonce is still taken.
	if err := lp.server.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	lp.server = lp.start(t, "server-2", "server", "-k", lp.Kit("server"), "--listen", "127.0.0.1")
	lp.await(t, lp.server)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err = lp.admin.SubmitSigned(context.Background(), signed)
		if err != nil && strings.Contains(err.Error(), "already submitted") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the console's link comes back
	}
	if err == nil || !strings.Contains(err.Error(), "already submitted") {
		t.Fatalf("after a restart, the same signed job: %v", err)
	}
	// The captured command, replayed into the restarted server's empty
	// replay cache, is refused: it was sent before the server started.
	if err := lp.node.Conn.Publish(bus.Direct("server", lp.node.Identity.Name), captured); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, lp.server, "replay across the restart", func(r cluster.Record) bool {
		return r.Msg() == "envelope refused" && r.Str("reason") == "outside_window" && strings.Contains(r.Str("err"), "before this process started")
	})
	if refused := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
		return r.Action == "job.refused" && strings.Contains(r.Detail["reason"], "already submitted")
	}); len(refused) < 2 {
		t.Fatalf("replays audited at the server: %+v", refused)
	}

	// A compromised server replays the old signed job, and sends a stale
	// one, to the sites under new ids: every site refuses both and audits it.
	if err := lp.server.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	rogue := rogueServer(t, lp.project)
	for _, site := range []string{"site-1", "site-2"} {
		for _, tc := range []struct {
			sj   *hearthv1.SignedJob
			want string
		}{{signed, "ended here"}, {stale, "has passed"}} {
			err := askUntilUp(t, rogue, site, &hearthv1.JoinJob{JobId: "job-0123456789ab", Job: tc.sj})
			var remote *bridge.RemoteError
			if !errors.As(err, &remote) || remote.Code != hearthv1.FailureCode_FAILURE_CODE_REFUSED || !strings.Contains(remote.Message, tc.want) {
				t.Fatalf("%s answered %v, want a refusal saying %q", site, err, tc.want)
			}
		}
		if refused := auditOf(t, lp.project, site, func(r auditor.Record) bool {
			return r.Action == "job.refused" && r.JobID == "job-0123456789ab"
		}); len(refused) != 2 {
			t.Fatalf("%s audited %d refusals: %+v", site, len(refused), refused)
		}
		// Nor, once it ended, under its own id.
		err := askUntilUp(t, rogue, site, &hearthv1.JoinJob{JobId: id, Job: signed})
		var remote *bridge.RemoteError
		if !errors.As(err, &remote) || !strings.Contains(remote.Message, "ended here") {
			t.Fatalf("%s re-joined the ended job: %v", site, err)
		}
	}

	// With a fresh job an admin signed, the compromised server cannot make
	// a site train a round twice (or evaluate twice): each task is refused
	// and audited after the first.
	fresh, err := job.Sign([]byte(jobSpec{rounds: 2, minSites: 1, timeout: "5s"}.manifest()), k.Cert, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	const rogueJob = "job-abcdefabcdef"
	if err := askUntilUp(t, rogue, "site-1", &hearthv1.JoinJob{JobId: rogueJob, Job: fresh}); err != nil {
		t.Fatalf("site-1 refused a fresh job: %v", err)
	}
	task := &hearthv1.TrainTask{JobId: rogueJob, Round: 1, Global: global}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := rogue.Bridge.Request(ctx, "site-1", task); err != nil {
		t.Fatalf("round 1: %v", err)
	}
	_, err = rogue.Bridge.Request(ctx, "site-1", task)
	var remote *bridge.RemoteError
	if !errors.As(err, &remote) || !strings.Contains(remote.Message, "already trained") {
		t.Fatalf("round 1 again: %v", err)
	}
	if refused := auditOf(t, lp.project, "site-1", func(r auditor.Record) bool {
		return r.Action == "task.refused" && r.JobID == rogueJob
	}); len(refused) != 1 {
		t.Fatalf("site-1 audited %d task refusals: %+v", len(refused), refused)
	}
}

// lastModel is a finished job's final model, downloaded by the project
// admin's console.
func lastModel(t testing.TB, lp *learningProject, id string) *hearthv1.Model {
	t.Helper()
	var res hearthv1.JobResult
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := lp.admin.Call(context.Background(), &hearthv1.DownloadJob{JobId: id}, &res)
		if err == nil && res.Model != nil {
			return res.Model
		}
		if time.Now().After(deadline) {
			t.Fatalf("download of %s: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rogueServer runs a hub from the server's own kit in the test process: a
// compromised server, signing with the server's key.
func rogueServer(t testing.TB, p *project) *node.Node {
	t.Helper()
	sk, err := kit.Load(p.Kit("server"))
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := node.StartServer(context.Background(), sk, node.Options{Protocol: protocol.Table{}, ListenHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rogue.Close)
	return rogue
}

// askUntilUp asks site until its leaf has reconnected and answered.
func askUntilUp(t testing.TB, n *node.Node, site string, msg *hearthv1.JoinJob) error {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := n.Bridge.Request(ctx, site, msg)
		cancel()
		if !errors.Is(err, bridge.ErrTimeout) || time.Now().After(deadline) {
			return err
		}
	}
}

// TestMemberAdminCannotReachTheParser: a view-only member sends a 1 MB
// manifest, validly signed envelopes: the server refuses it on the
// member's right, before the signature check or the parser, costing little
// CPU, and audits it; the project admin is served all the while.
func TestMemberAdminCannotReachTheParser(t *testing.T) {
	member := "member@hearth.local"
	p := startProjectWith(t, projectSpec{provisioned: 1, running: 1,
		admins: []provision.AdminSpec{{Name: member, Org: "hearth", Role: pki.RoleMember}}})
	_, admin := p.console(t, p.Admin)
	mn, mconsole := p.console(t, member)
	huge := make([]byte, 1_000_000)
	for i := range huge {
		huge[i] = "k: 1\n"[i%5]
	}
	sj := &hearthv1.SignedJob{Manifest: huge, SubmitterCert: mn.Kit.Cert.Raw, Nonce: make([]byte, job.NonceSize)}
	sj.Signature = ed25519.Sign(mn.Kit.Key, huge) // any signature: the right is checked first

	// The project admin keeps asking meanwhile.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served int
	var slowest time.Duration
	var adminErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if err := admin.Call(context.Background(), &hearthv1.ListJobs{}, &hearthv1.JobList{}); err != nil {
				adminErr = err
				return
			}
			served, slowest = served+1, max(slowest, time.Since(start))
		}
	}()

	const tries = 10
	before := cpuTime(t, p.server.Pid())
	for range tries {
		_, err := mconsole.SubmitSigned(context.Background(), sj)
		if err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Fatalf("a member's 1 MB manifest: %v", err)
		}
	}
	perTry := (cpuTime(t, p.server.Pid()) - before) / tries
	close(stop)
	wg.Wait()
	if adminErr != nil || served == 0 {
		t.Fatalf("the project admin was not served meanwhile: %d answers, %v", served, adminErr)
	}
	// The bound includes all the server did meanwhile: the project
	// admin's requests, liveness, JetStream.
	if perTry > 50*time.Millisecond {
		t.Fatalf("each refusal cost the server %v of CPU", perTry)
	}
	refused := auditOf(t, p, "server", func(r auditor.Record) bool {
		return r.Action == "admin.refused" && r.Peer == member && r.Detail["right"] == "submit_job"
	})
	if len(refused) != tries {
		t.Fatalf("%d refusals audited, want %d", len(refused), tries)
	}
	t.Logf("each 1 MB submission refused at %v of server CPU (all its work meanwhile included); the project admin got %d answers meanwhile, the slowest in %v",
		perTry, served, slowest)
}

// cpuTime is a process's user and system CPU time so far.
func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which ends with the last ')'.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// TestRevokedSiteLeavesARunningJobAtOnce: a site revoked mid-job loses its
// link to the hub as soon as the server installs the new CRL, and the
// running job drops it at once instead of waiting a round timeout for it
// each round; the others go on.
func TestRevokedSiteLeavesARunningJobAtOnce(t *testing.T) {
	lp := startLearning(t, 3)
	id := lp.submit(t, jobSpec{rounds: 40, minSites: 2, timeout: "30s", trainer: slowTrainer}.manifest())
	lp.waitRound(t, id, 2)
	revoke := exec.Command(hearthBin, "cert", "revoke", "-w", lp.Workspace, "site-3")
	revoke.Env = append(os.Environ(), "HEARTH_CA_PASSPHRASE="+string(lp.Passphrase))
	if out, err := revoke.CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	info := lp.waitEnd(t, id, 120*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("job %s: %s", info.Status, info.Reason)
	}
	last := info.History[len(info.History)-1]
	if slices.Contains(last.Answered, "site-3") || len(last.Answered) != 2 {
		t.Fatalf("last round answered by %v", last.Answered)
	}
	for _, r := range info.History {
		if d := time.Duration(r.DurationMicros) * time.Microsecond; d > 10*time.Second {
			t.Fatalf("round %d took %v: a revoked site was waited for", r.Round, d)
		}
	}
	dropped := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
		return r.JobID == id && r.Peer == "site-3" && r.Action == "site.dropped"
	})
	missing := 0
	for _, r := range info.History {
		if slices.Contains(r.Missing, "site-3") {
			missing++
		}
	}
	if missing == 0 {
		t.Fatal("site-3 was never left out")
	}
	t.Logf("site-3 revoked after round 2; left out of %d rounds (%d audited as dropped while awaited), the job finished %v later",
		missing, len(dropped), time.Since(revoked).Round(time.Millisecond))
}

// TestFloodingAdminDoesNotStopOthers: a member admin floods the server
// process with validly signed envelopes as fast as it can sign them; the
// server refuses the flood cheaply (per-sender rate limit) and audits it in
// a bounded number of records, while a running job's rounds and another
// admin's commands go on.
func TestFloodingAdminDoesNotStopOthers(t *testing.T) {
	flooder := "flood@hearth.local"
	lp := startLearningWith(t, projectSpec{provisioned: 2, running: 2,
		admins: []provision.AdminSpec{{Name: flooder, Org: "hearth", Role: pki.RoleMember}}})
	fn, _ := lp.console(t, flooder)
	id := lp.submit(t, jobSpec{rounds: 12, minSites: 2, timeout: "20s", trainer: slowTrainer}.manifest())
	lp.waitRound(t, id, 1)

	stop := make(chan struct{})
	var sent int
	var floodErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		subject := bus.Direct("server", flooder)
		for sent < 200_000 {
			select {
			case <-stop:
				return
			default:
			}
			data, _, err := fn.Signer.Sign(envelope.Outgoing{Recipient: "server", Body: &hearthv1.ListJobs{}}, time.Now())
			if err == nil {
				err = fn.Conn.Publish(subject, data)
			}
			if err != nil {
				floodErr = err
				return
			}
			sent++
		}
	}()
	var answered int
	var slowest time.Duration
	var info *hearthv1.JobInfo
	for deadline := time.Now().Add(90 * time.Second); ; {
		start := time.Now()
		got, err := lp.admin.Status(context.Background(), id)
		if err != nil {
			t.Fatalf("the project admin's status request during the flood: %v", err)
		}
		answered, slowest, info = answered+1, max(slowest, time.Since(start)), got
		if info.Status != hearthv1.JobStatus_JOB_STATUS_RUNNING || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-done
	if floodErr != nil {
		t.Fatalf("flood: %v", floodErr)
	}
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != 12 {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	for _, r := range info.History {
		if len(r.Answered) != 2 {
			t.Fatalf("round %d answered by %v during the flood", r.Round, r.Answered)
		}
	}
	awaitLog(t, lp.server, "flood refused", func(r cluster.Record) bool {
		return r.Msg() == "envelope refused" && r.Str("reason") == "rate_limited"
	})
	refusals := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
		return r.Action == "envelope.refused" && r.Peer == flooder && r.Detail["reason"] == "rate_limited"
	})
	if len(refusals) == 0 || len(refusals) > 10 {
		t.Fatalf("%d audit records of the flood, want a few", len(refusals))
	}
	t.Logf("%d validly signed envelopes flooded in; the job's %d rounds all completed with both sites; the project admin got %d answers, the slowest in %v; %d audit records of the flood",
		sent, info.CompletedRounds, answered, slowest, len(refusals))
}

// TestSubmitterLimits: one admin cannot hold more running jobs than the
// project allows; others still can submit.
func TestSubmitterLimits(t *testing.T) {
	lead := "lead@hearth.local"
	lp := startLearningWith(t, projectSpec{provisioned: 2, running: 2,
		admins: []provision.AdminSpec{{Name: lead, Org: "hearth", Role: pki.RoleLead}}})
	_, leadConsole := lp.console(t, lead)
	slow := jobSpec{rounds: 200, minSites: 2, timeout: "20s", trainer: slowTrainer}.manifest()
	var ids []string
	for range coordinator.DefaultJobsPerSubmitter {
		ids = append(ids, lp.submit(t, slow))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(slow), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lp.admin.Submit(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "the most one submitter may") {
		t.Fatalf("a submission past the limit: %v", err)
	}
	other, err := leadConsole.Submit(context.Background(), dir)
	if err != nil {
		t.Fatalf("another admin's submission: %v", err)
	}
	for _, id := range append(ids, other) {
		if err := lp.admin.Call(context.Background(), &hearthv1.AbortJob{JobId: id}, &hearthv1.JobInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	if refused := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
		return r.Action == "job.refused" && strings.Contains(r.Detail["reason"], "the most one submitter may")
	}); len(refused) != 1 {
		t.Fatalf("audited refusals: %+v", refused)
	}
}
