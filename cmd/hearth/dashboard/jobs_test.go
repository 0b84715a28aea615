package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// fakeConsole is a server's answers, as the admin console would get them.
type fakeConsole struct {
	mu        sync.Mutex
	jobs      []*hearthv1.JobInfo
	connected map[string]bool
	dials     int
	down      bool // dialling fails
}

func (f *fakeConsole) dial(context.Context) (Console, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials++
	if f.down {
		return nil, nil, errors.New("connect to [tls://127.0.0.1:17222]: connection refused")
	}
	return f, func() {}, nil
}

func (f *fakeConsole) List(context.Context) (*hearthv1.JobList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &hearthv1.JobList{}
	for _, j := range f.jobs { // as the server lists: no history, no commitments
		out.Jobs = append(out.Jobs, &hearthv1.JobInfo{Id: j.Id, Name: j.Name, Status: j.Status, Submitter: j.Submitter,
			SubmitterOrg: j.SubmitterOrg, Rounds: j.Rounds, CompletedRounds: j.CompletedRounds, Test: j.Test})
	}
	return out, nil
}

func (f *fakeConsole) Status(_ context.Context, id string) (*hearthv1.JobInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.Id == id {
			return j, nil
		}
	}
	return nil, errors.New("server: not_found: no such job")
}

func (f *fakeConsole) Connections(context.Context) (*hearthv1.Connections, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &hearthv1.Connections{}
	for n, up := range f.connected {
		if up {
			out.Connected = append(out.Connected, n)
		} else {
			out.Disconnected = append(out.Disconnected, n)
		}
	}
	return out, nil
}

const (
	jobA = "job-0123456789ab" // submitted from clinic-a
	jobB = "job-fedcba987654" // from clinic-b, run at clinic-a's site-a
	jobC = "job-001122334455" // from clinic-b, run at clinic-b's site-b only
)

func jobsFixture() *fakeConsole {
	round := func(n int64, acc float64, answered, missing []string) *hearthv1.RoundSummary {
		return &hearthv1.RoundSummary{Round: n, Answered: answered, Missing: missing, TrainLoss: 0.5, Validation: &hearthv1.Metrics{Accuracy: acc}}
	}
	return &fakeConsole{connected: map[string]bool{"site-a": true, "site-b": false}, jobs: []*hearthv1.JobInfo{
		{Id: jobA, Name: "from-a", Status: hearthv1.JobStatus_JOB_STATUS_FINISHED, Submitter: aliceEm, SubmitterOrg: "clinic-a", Rounds: 3, CompletedRounds: 3,
			Workflow: "fedavg", Test: &hearthv1.Metrics{Accuracy: 0.9123, Loss: 0.3, Samples: 100},
			History: []*hearthv1.RoundSummary{round(0, 0.5, []string{"site-a", "site-b"}, nil), round(1, 0.8, []string{"site-a"}, []string{"site-b"}), round(2, 0.9, []string{"site-a", "site-b"}, nil)}},
		{Id: jobB, Name: "at-a", Status: hearthv1.JobStatus_JOB_STATUS_RUNNING, Submitter: bobEm, SubmitterOrg: "clinic-b", Rounds: 5, CompletedRounds: 1,
			Workflow: "fedavg", Commitments: []*hearthv1.SiteCommitment{{Site: "site-a"}}, History: []*hearthv1.RoundSummary{round(0, 0.4, []string{"site-a"}, nil)}},
		{Id: jobC, Name: "b-only", Status: hearthv1.JobStatus_JOB_STATUS_FAILED, Reason: "only 0 of 1 sites joined (min_sites 1): site-b: not connected to the hub",
			Submitter: bobEm, SubmitterOrg: "clinic-b", Rounds: 5, Workflow: "fedavg", Commitments: []*hearthv1.SiteCommitment{{Site: "site-b"}}},
	}}
}

// TestJobsPages: through the admin console, the project admin sees every
// job; an org admin and a member see those submitted from their org and
// those sent to their org's sites, and any other job is "not found", as
// one that does not exist. A job's page shows its rounds (answered and
// missing sites), the accuracy chart as inline SVG, the reason, the test
// accuracy, and reloads itself only while the job runs.
func TestJobsPages(t *testing.T) {
	f := jobsFixture()
	h := newHarnessWith(t, []provision.SiteSpec{{Name: "site-a", Org: "clinic-a"}, {Name: "site-b", Org: "clinic-b"}},
		func(c *Config) { c.DialConsole, c.ConsoleName = f.dial, "pa@hub.org" })
	pa, alice := h.projectAndOrgAdmin()
	carol := h.accept(pa.invite(memberEm, pki.RoleMember, "clinic-a"), memberPw)

	pa.get("/jobs").want(t, 200, jobA, jobB, jobC, "b-only")
	for name, c := range map[string]*client{"org admin": alice, "member": carol} {
		r := c.get("/jobs").want(t, 200, jobA, jobB)
		if strings.Contains(r.body, jobC) {
			t.Errorf("%s of clinic-a sees clinic-b's job at clinic-b's site", name)
		}
		c.get("/jobs/"+jobC).want(t, http.StatusNotFound, "job not found")
		c.get("/jobs/"+jobB).want(t, 200, `id="round-0"`)
	}
	alice.get("/jobs/job-ffffffffffff").want(t, http.StatusNotFound, "job not found")
	alice.get("/jobs/not-an-id").want(t, http.StatusNotFound, "job not found")

	r := alice.get("/jobs/"+jobA).want(t, 200, `id="round-0"`, `id="round-2"`, `<code class="missing">site-b</code>`,
		`id="test-accuracy">91.23%`, `<svg class="chart"`, "<polyline", "round 1: 80.00%")
	if strings.Contains(r.body, `http-equiv="refresh"`) {
		t.Error("a finished job's page reloads itself")
	}
	alice.get("/jobs/"+jobB).want(t, 200, `<meta http-equiv="refresh" content="2">`, `id="job-status">running`)
	pa.get("/jobs/"+jobC).want(t, 200, `id="reason">only 0 of 1 sites joined`, `id="no-rounds"`)

	// The participants page shows each site's link as the server sees it.
	pa.get("/participants").want(t, 200, `status link-connected">connected`, `status link-disconnected">disconnected`, `status link-answering">answering`)
}

// TestJobsWithoutConsole: with no --admin-kit the jobs page says how to
// get one; with a server that is not up it says why, and dials again at
// the next request (not more often than redialAfter).
func TestJobsWithoutConsole(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	pa.get("/jobs").want(t, 200, "--admin-kit")
	pa.get("/participants").want(t, 200, `id="link-problem"`)

	f := jobsFixture()
	f.down = true
	h2 := newHarnessWith(t, nil, func(c *Config) { c.DialConsole = f.dial })
	pa2 := h2.setupAdmin(paEmail, "hub", paPass)
	pa2.get("/jobs").want(t, 200, "connection refused")
	pa2.get("/jobs").want(t, 200, "connection refused")
	if f.dials != 1 {
		t.Errorf("%d dials within %v, want 1", f.dials, redialAfter)
	}
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	h2.clock.Advance(redialAfter)
	pa2.get("/jobs").want(t, 200, jobA)
}
