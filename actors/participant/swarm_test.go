package participant

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestSwarmTaskChecks: what a compromised server may send a site in a
// swarm task, and what the site refuses: an aggregator the rotation does not
// name, sites outside the signed job, an aggregator outside the round, an
// attempt that skips a member to reach a site of its choosing, another
// eligible list than the first task's, and rounds or attempts that go back.
func TestSwarmTaskChecks(t *testing.T) {
	sites := []string{"site-1", "site-2", "site-3", "site-4"}
	nonce := []byte("0123456789abcdef")
	rot := swarm.NewRotation(nonce, sites)
	newJob := func(jobSites []string) *joined {
		return &joined{manifest: &job.Manifest{Rounds: 5, Sites: jobSites}, swarm: &swarmJob{nonce: nonce}}
	}
	p := &Participant{cfg: Config{Self: pki.Identity{Name: rot.Aggregator(2, 0), Kind: pki.KindSite}}}
	task := func(round, attempt int64, mutate func(*hearthv1.SwarmTask)) *hearthv1.SwarmTask {
		t := &hearthv1.SwarmTask{JobId: "job-000000000001", Round: round, Attempt: attempt, Aggregator: rot.Aggregator(round, attempt),
			Members: slices.Clone(sites), Holders: slices.Clone(sites), Eligible: slices.Clone(sites), BasisRound: round - 1}
		if mutate != nil {
			mutate(t)
		}
		return t
	}
	skipped := rot.Aggregator(2, 0)
	for _, tc := range []struct {
		name     string
		jobSites []string
		first    *hearthv1.SwarmTask // taken before, if set
		task     *hearthv1.SwarmTask
		want     string
	}{
		{"the rotation's aggregator", sites, nil, task(2, 0, nil), ""},
		{"another aggregator", sites, nil, task(2, 0, func(t *hearthv1.SwarmTask) { t.Aggregator = rot.Aggregator(2, 1) }), "to aggregate, not"},
		{"a member outside the signed job", sites, nil, task(2, 0, func(t *hearthv1.SwarmTask) { t.Holders = append(t.Holders, "outsider") }), "not one of the signed job's sites"},
		{"an aggregator outside the round", sites, nil, task(2, 0, func(t *hearthv1.SwarmTask) {
			t.Holders = slices.DeleteFunc(t.Holders, func(s string) bool { return s == t.Aggregator })
		}), "not among the round's holders"},
		{"an attempt skipping a member", sites, nil, task(2, 1, nil), "skips " + skipped},
		{"a skip past a site that is out", sites, nil, task(2, 1, func(t *hearthv1.SwarmTask) {
			t.Members = slices.DeleteFunc(t.Members, func(s string) bool { return s == skipped })
		}), ""},
		{"a one-site eligible list in an @all job", []string{job.AllSites}, task(1, 0, nil), task(2, 0, func(t *hearthv1.SwarmTask) {
			t.Eligible = []string{t.Aggregator}
		}), "differ from the job's first task's"},
		{"a round gone back", sites, task(3, 0, nil), task(2, 0, nil), "only move forward"},
		{"a round past the job's", sites, nil, task(6, 0, nil), "not in the job's 1..5"},
		{"more eligible sites than the job's", sites, nil, task(2, 0, func(t *hearthv1.SwarmTask) { t.Eligible = append(t.Eligible, "site-9") }), "eligible aggregators"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJob(tc.jobSites)
			if tc.first != nil {
				if err := p.checkSwarmTask(j, tc.first); err != nil {
					t.Fatalf("first task: %v", err)
				}
				j.swarm.task, j.swarm.at = tc.first, keyOf(tc.first.Round, tc.first.Attempt)
			}
			err := p.checkSwarmTask(j, tc.task)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("checkSwarmTask = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAdmitOnlyPeerTrafficOfASharedJob: a site hears another only with
// the swarm types, in a job whose newest task lists it; or with a threshold
// share, in a job under homomorphic encryption whose setup names it.
func TestAdmitOnlyPeerTrafficOfASharedJob(t *testing.T) {
	p := &Participant{}
	p.peers.set("job-000000000001", []string{"site-2"})
	p.peers.setHE("job-000000000003", []string{"site-1", "site-2", "site-3"}, "site-3")
	site2 := pki.Identity{Name: "site-2", Kind: pki.KindSite}
	update := "hearth.v1.SwarmUpdate"
	for _, tc := range []struct {
		name   string
		sender pki.Identity
		typ    string
		job    string
		want   string
	}{
		{"a member's update", site2, update, "job-000000000001", ""},
		{"another job", site2, update, "job-000000000002", "in no swarm job"},
		{"a site not in the task", pki.Identity{Name: "site-3", Kind: pki.KindSite}, update, "job-000000000001", "in no swarm job"},
		{"not a swarm type", site2, "hearth.v1.TrainResult", "job-000000000001", "not a message of job"},
		{"a threshold share in a swarm job", site2, "hearth.v1.HEThresholdShare", "job-000000000001", "not a message of job"},
		{"a party's threshold share", site2, "hearth.v1.HEThresholdShare", "job-000000000003", ""},
		{"a swarm update in a key setup", site2, update, "job-000000000003", "not a message of job"},
		{"a site outside the key setup", pki.Identity{Name: "site-4", Kind: pki.KindSite}, "hearth.v1.HEThresholdShare", "job-000000000003", "in no swarm job or key setup"},
		{"not a site", pki.Identity{Name: "admin@x", Kind: pki.KindAdmin}, update, "job-000000000001", "not a site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Admit(tc.sender, tc.typ, tc.job)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Admit = %v, want %q", err, tc.want)
			}
		})
	}
	p.peers.drop("job-000000000001")
	if err := p.Admit(site2, update, "job-000000000001"); err == nil {
		t.Fatal("a job left still admits its sites")
	}
}

// TestOnlyTheAcceptedModelIsKept: of a round's two attempts, the state
// folder keeps the one the server named as the next basis, not the newest
// one this site received.
func TestOnlyTheAcceptedModelIsKept(t *testing.T) {
	dir := t.TempDir()
	p := &Participant{cfg: Config{StateDir: dir, Log: slog.New(slog.DiscardHandler)}}
	one := func(v float32) *model.Model {
		return &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{2}, Data: []float32{v, v}}}}
	}
	j := &joined{id: "job-000000000001", swarm: &swarmJob{models: map[roundKey]*model.Model{}}}
	p.hold(j, keyOf(1, 0), one(1))
	p.hold(j, keyOf(1, 1), one(2)) // the newest: an attempt the server did not accept
	p.keepModel(j, keyOf(1, 0), false)
	j.swarm.keeper.close()
	raw, err := os.ReadFile(ModelPath(dir, j.id))
	if err != nil {
		t.Fatal(err)
	}
	var got hearthv1.Model
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	m, err := job.FromWire(&got)
	if err != nil || m.Tensors[0].Data[0] != 1 {
		t.Fatalf("kept %v (%v), want the accepted attempt's model", m, err)
	}
}

// TestEarlyArrivalsAreBounded: what may wait for its task is bounded per
// sender, in bytes, in attempts and by the rotation, so a site holding a
// valid key cannot fill another's memory with updates for later rounds.
func TestEarlyArrivalsAreBounded(t *testing.T) {
	sites := []string{"site-1", "site-2", "site-3"}
	nonce := []byte("0123456789abcdef")
	rot := swarm.NewRotation(nonce, sites)
	self := rot.Aggregator(2, 0)
	p := &Participant{cfg: Config{Self: pki.Identity{Name: self, Kind: pki.KindSite}}, jobs: map[string]*joined{}}
	const id = "job-000000000001"
	j := &joined{id: id, manifest: &job.Manifest{Rounds: 5, Sites: sites},
		swarm: &swarmJob{nonce: nonce, eligible: sites, task: &hearthv1.SwarmTask{}, at: keyOf(1, 0), roundTimeout: time.Minute}}
	p.jobs[id] = j
	from := func(site string) bridge.Origin {
		return bridge.Origin{Sender: pki.Identity{Name: site, Kind: pki.KindSite}, JobID: id}
	}
	other := sites[0]
	if other == self {
		other = sites[1]
	}
	upd := func(round, attempt int64, size int) *hearthv1.SwarmUpdate {
		return &hearthv1.SwarmUpdate{JobId: id, Round: round, Attempt: attempt, Samples: 1,
			Update: &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{int64(size / 4)}, Data: make([]byte, size)}}}}
	}
	if !p.early(from(other), id, keyOf(2, 0), upd(2, 0, 64), nil) {
		t.Fatal("an update for the next round, which this site aggregates, was not kept")
	}
	for _, tc := range []struct {
		name string
		at   roundKey
		msg  proto.Message
		from string
	}{
		{"a second one from the same sender and attempt", keyOf(2, 0), upd(2, 0, 64), other},
		{"an attempt past any rotation", keyOf(2, maxSwarmSites), upd(2, maxSwarmSites, 64), other},
		{"an update for an attempt another site aggregates", keyOf(2, 1), upd(2, 1, 64), other},
		{"a model from a site that does not aggregate the attempt", keyOf(2, 0), &hearthv1.SwarmModel{JobId: id, Round: 2}, other},
		{"a round two ahead", keyOf(3, 0), upd(3, 0, 64), other},
		{"a round gone by", keyOf(1, 0), upd(1, 0, 64), other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p.early(from(tc.from), id, tc.at, tc.msg, nil) {
				t.Fatal("kept")
			}
		})
	}
	// The byte budget holds across senders.
	j.swarm.early = nil
	third := sites[2]
	if third == self || third == other {
		third = sites[1]
	}
	if !p.early(from(other), id, keyOf(2, 0), upd(2, 0, maxEarlyBytes-1024), nil) {
		t.Fatal("an update within the budget was not kept")
	}
	if p.early(from(third), id, keyOf(2, 0), upd(2, 0, 4096), nil) {
		t.Fatal("an update past the byte budget was kept")
	}
}

// TestSwarmTrainingIsBounded: a compromised server cannot keep a site
// training by opening attempts or re-joining it: the count survives
// re-joins and stops at rounds times eligible aggregators, plus
// maxResumes.
func TestSwarmTrainingIsBounded(t *testing.T) {
	p := &Participant{tasks: map[string]int{}}
	newJoin := func() *joined {
		return &joined{manifest: &job.Manifest{Rounds: 2}, swarm: &swarmJob{eligible: []string{"a", "b", "c"}}}
	}
	const id = "job-000000000001"
	limit := 2*3 + maxResumes
	for i := range limit {
		if err := p.claimTraining(newJoin(), id); err != nil { // a fresh join each time
			t.Fatalf("training %d refused: %v", i+1, err)
		}
	}
	if err := p.claimTraining(newJoin(), id); err == nil || !strings.Contains(err.Error(), "its bound") {
		t.Fatalf("training %d: %v, want it refused", limit+1, err)
	}
}
