package participant

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies/attestation"
	"github.com/hearthfl/hearth/policies/components"
	"github.com/hearthfl/hearth/policies/resources"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestAdmitHostsOnlyInTheirJobs: a site hears an aggregation host only in
// an attested job whose signed placement names it, and only with what a
// host sends; a host hears only the job's sites, with evidence requests
// and updates.
func TestAdmitHostsOnlyInTheirJobs(t *testing.T) {
	site := &Participant{}
	site.peers.set("job-000000000001", []string{"site-2", "agg-1"})
	site.peers.setHosts("job-000000000001", []string{"agg-1"})
	site.peers.set("job-000000000002", []string{"site-2", "agg-1"}) // a plain swarm job: its list names agg-1, its signed job no host
	host := &Participant{cfg: Config{Evidence: evidenceFunc(nil)}}
	host.peers.put("job-000000000001", setOf([]string{"site-1"}), hostTypes) // the newest task's members
	host.peers.setAsking("job-000000000001", setOf([]string{"site-1", "site-2"}))
	agg1 := pki.Identity{Name: "agg-1", Kind: pki.KindAggregator}
	site1 := pki.Identity{Name: "site-1", Kind: pki.KindSite}
	for _, tc := range []struct {
		name   string
		at     *Participant
		sender pki.Identity
		typ    string
		job    string
		want   string
	}{
		{"the host's model at a site", site, agg1, "hearth.v1.SwarmModel", "job-000000000001", ""},
		{"a host the signed job does not name", site, pki.Identity{Name: "agg-2", Kind: pki.KindAggregator}, "hearth.v1.SwarmModel", "job-000000000001", "no aggregation host of job"},
		{"a host in a job not placed on it", site, agg1, "hearth.v1.SwarmModel", "job-000000000002", "no aggregation host of job"},
		{"a site's evidence request at the host", host, site1, "hearth.v1.AttestationRequest", "job-000000000001", ""},
		{"a site's update at the host", host, site1, "hearth.v1.SwarmUpdate", "job-000000000001", ""},
		{"a site of the job, not a member, asking for evidence", host, pki.Identity{Name: "site-2", Kind: pki.KindSite}, "hearth.v1.AttestationRequest", "job-000000000001", ""},
		{"the same site's update", host, pki.Identity{Name: "site-2", Kind: pki.KindSite}, "hearth.v1.SwarmUpdate", "job-000000000001", "in no swarm job"},
		{"a model sent to the host", host, site1, "hearth.v1.SwarmModel", "job-000000000001", "not a message of job"},
		{"another host at a host", host, agg1, "hearth.v1.SwarmUpdate", "job-000000000001", "not a site"},
		{"a site outside the job at the host", host, pki.Identity{Name: "site-3", Kind: pki.KindSite}, "hearth.v1.SwarmUpdate", "job-000000000001", "in no swarm job"},
		{"a site outside the job asking for evidence", host, pki.Identity{Name: "site-3", Kind: pki.KindSite}, "hearth.v1.AttestationRequest", "job-000000000001", "not a site of job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.at.Admit(tc.sender, tc.typ, tc.job)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Admit = %v, want %q", err, tc.want)
			}
		})
	}
}

// evidenceFunc is an Evidence of a function (nil: none is made).
type evidenceFunc func(key, nonce []byte) (*hearthv1.AttestationEvidence, error)

func (f evidenceFunc) Evidence(_ context.Context, key, nonce []byte) (*hearthv1.AttestationEvidence, error) {
	if f == nil {
		return nil, errors.New("no evidence")
	}
	return f(key, nonce)
}

// policyFunc is an AttestationPolicy of a function, for the site's glue
// around it (the policy itself: policies/attestation's tests).
type policyFunc func(ev *hearthv1.AttestationEvidence) error

func (f policyFunc) Verify(ev *hearthv1.AttestationEvidence, _ []string, _, _ []byte, _ time.Time) (string, error) {
	return "ok", f(ev)
}

func (policyFunc) Reattest() time.Duration { return time.Minute }

// TestSiteSendsOnlyToAFreshlyAttestedKey: what a site checks of a host's
// evidence before its policy sees it (the job, the nonce, the key), and
// when it sends the host nothing: never attested, refused, a task's key
// other than the attested one, or a re-attestation overdue.
func TestSiteSendsOnlyToAFreshlyAttestedKey(t *testing.T) {
	now := time.Now()
	p := &Participant{cfg: Config{Attestation: policyFunc(func(*hearthv1.AttestationEvidence) error { return nil }), Audit: &records{},
		Now: func() time.Time { return now }}}
	j := &joined{id: "job-000000000001", manifest: &job.Manifest{Placement: &job.Placement{Aggregator: job.PlacementAttested, TEE: []string{job.TEESEVSNP}, Hosts: []string{"agg-1"}}},
		hosts: map[string]*attestedHost{}}
	key, _ := ecdh.X25519().GenerateKey(rand.Reader)
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	nonce := make([]byte, attestation.NonceSize)
	rand.Read(nonce)
	good := &hearthv1.AttestationEvidence{JobId: j.id, Nonce: nonce, Key: &hearthv1.SealingKey{PublicKey: key.PublicKey().Bytes()}}
	for _, tc := range []struct {
		name   string
		change func(ev *hearthv1.AttestationEvidence)
		want   string
	}{
		{"evidence for this request", func(*hearthv1.AttestationEvidence) {}, ""},
		{"evidence for another job", func(ev *hearthv1.AttestationEvidence) { ev.JobId = "job-000000000002" }, "evidence for job"},
		{"evidence for another nonce", func(ev *hearthv1.AttestationEvidence) { ev.Nonce = make([]byte, attestation.NonceSize) }, "another nonce"},
		{"evidence for another key", func(ev *hearthv1.AttestationEvidence) { ev.Key.PublicKey = other.PublicKey().Bytes() }, "another sealing key"},
		{"evidence with no key", func(ev *hearthv1.AttestationEvidence) { ev.Key = nil }, "another sealing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &hearthv1.AttestationEvidence{JobId: good.JobId, Nonce: good.Nonce, Key: &hearthv1.SealingKey{PublicKey: good.Key.PublicKey}}
			tc.change(ev)
			_, err := p.checkEvidence(j, key.PublicKey(), nonce, ev)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("checkEvidence = %v, want %q", err, tc.want)
			}
		})
	}
	gate := func(want string, k *ecdh.PublicKey) {
		t.Helper()
		err := p.hostAccepted(j, "agg-1", k)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("hostAccepted = %v, want %q", err, want)
		}
	}
	gate("has not attested agg-1", key.PublicKey())
	j.hosts["agg-1"] = &attestedHost{key: key.PublicKey(), at: now}
	gate("", key.PublicKey())
	gate("another key for agg-1 than its evidence binds", other.PublicKey())
	now = now.Add(2*time.Minute + time.Second) // two intervals without a re-attestation
	gate("last attested agg-1 2m1s ago", key.PublicKey())
	j.hosts["agg-1"] = &attestedHost{refused: "attestation: sev-snp: measurement: not accepted"}
	gate("measurement", key.PublicKey())
}

// allowAll is a site policy that allows every right.
type allowAll struct{}

func (allowAll) Allow(string, pki.Identity, *pki.Identity) (bool, string) { return true, "allowed" }

// TestSiteGivesEachGPUToOneJob: a job whose resource spec does not fit
// what the site offers, or what other jobs hold of it, is refused with the
// reason, in a pre-flight too; a job asking for no GPU passes that check;
// and a site without an attestation policy refuses an attested job.
func TestSiteGivesEachGPUToOneJob(t *testing.T) {
	p := &Participant{cfg: Config{Policy: allowAll{}, Audit: &records{}, Now: time.Now, Log: slog.New(slog.DiscardHandler), DataDir: t.TempDir(),
		Resources: resources.Offer{GPUs: 1, MemPerGPU: 40}}, gpus: map[string]int{"job-00000000000a": 1}}
	verified := func(m *job.Manifest) *job.Verified {
		return &job.Verified{Manifest: m, Submitter: pki.Identity{Name: "admin@x", Kind: pki.KindAdmin, Role: pki.RoleLead}}
	}
	base := func() *job.Manifest {
		return &job.Manifest{Name: "j", Rounds: 1, Sites: []string{"site-1"}, Dataset: "optdigits", Workflow: job.WorkflowFedAvg, Trainer: job.TrainerSpec{Kind: "logreg"}}
	}
	for _, tc := range []struct {
		name   string
		change func(m *job.Manifest)
		dry    bool
		want   string
	}{
		{"a GPU another job holds", func(m *job.Manifest) { m.Resources = &resources.Request{GPUs: 1} }, false, "1 of this site's 1 are given to other jobs"},
		{"the same in a pre-flight", func(m *job.Manifest) { m.Resources = &resources.Request{GPUs: 1} }, true, "given to other jobs"},
		{"more GPUs than the site has", func(m *job.Manifest) { m.Resources = &resources.Request{GPUs: 2} }, false, "needs 2 GPUs, this site offers 1"},
		{"more memory than its GPUs have", func(m *job.Manifest) { m.Resources = &resources.Request{GPUs: 1, MemPerGPU: 80} }, false, "80 GiB per GPU"},
		{"no GPU: on to the data", func(m *job.Manifest) {}, false, "optdigits"},
		{"an attested job without an attestation policy", func(m *job.Manifest) {
			m.Placement = &job.Placement{Aggregator: job.PlacementAttested, TEE: []string{job.TEESEVSNP}, Hosts: []string{"agg-1"}}
		}, false, "no attestation policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.change(m)
			res := p.admit(nil, &hearthv1.JoinJob{JobId: "job-00000000000b"}, verified(m), bridge.Origin{}, "", verified(m).Submitter, tc.dry)
			var reason string
			switch r := res.(type) {
			case *hearthv1.Failure:
				reason = r.Message
			case *hearthv1.PreflightAnswer:
				reason = r.Reason
			default:
				t.Fatalf("admit = %T %v", res, res)
			}
			if !strings.Contains(reason, tc.want) {
				t.Fatalf("refused with %q, want %q", reason, tc.want)
			}
		})
	}
}

// denyByoc is a site policy that allows everything but byoc.
type denyByoc struct{}

func (denyByoc) Allow(right string, _ pki.Identity, _ *pki.Identity) (bool, string) {
	if right == "byoc" {
		return false, "lead may not byoc here"
	}
	return true, "allowed"
}

// TestSiteChecksJobCode: at a site, before anything is built, a job's own
// code needs byoc by the site's own policy and must be what the signed
// manifest pins, and each component must be in the site's allow-list.
func TestSiteChecksJobCode(t *testing.T) {
	script := []byte("def model(f, c): ...\n")
	sum := sha256.Sum256(script)
	pin := hex.EncodeToString(sum[:])
	custom := func() *job.Manifest {
		return &job.Manifest{Name: "j", Rounds: 1, Sites: []string{"site-1"}, Dataset: "optdigits", Workflow: job.WorkflowFedAvg,
			Trainer: job.TrainerSpec{Kind: job.KindPyTorch, Script: "train.py", ScriptSHA256: pin}}
	}
	code := []*hearthv1.JobFile{{Name: "train.py", Data: script}}
	who := pki.Identity{Name: "lead@x", Kind: pki.KindAdmin, Role: pki.RoleLead}
	pinned := &components.AllowList{Trainers: []string{"pytorch"}, Workflows: []string{"fedavg"}, Filters: []string{}, Scripts: []string{pin}}
	onlyLogreg, err := components.Parse([]byte(`{"trainers": ["logreg"], "workflows": ["fedavg"], "filters": [], "scripts": ["any"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		policy Authorizer
		allow  *components.AllowList
		m      *job.Manifest
		code   []*hearthv1.JobFile
		want   string
	}{
		{"byoc refused by the site's policy", denyByoc{}, nil, custom(), code, "site policy: byoc: lead may not byoc here"},
		{"code other than the pin", allowAll{}, nil, custom(), []*hearthv1.JobFile{{Name: "train.py", Data: []byte("import os")}}, "the signed manifest pins"},
		{"code with a job that runs none", allowAll{}, nil, &job.Manifest{Trainer: job.TrainerSpec{Kind: "logreg"}, Workflow: job.WorkflowFedAvg}, code, "runs no script"},
		{"a trainer outside the allow-list", allowAll{}, onlyLogreg, custom(), code, `trainer "pytorch" is not in this site's allow-list`},
		{"no job code in a kit without components.json", allowAll{}, nil, custom(), code, `trainer "pytorch" is not in this site's allow-list`},
		{"everything allowed, at a site that runs no job code", allowAll{}, pinned, custom(), code, "runs no job code: its start-up set no runner"},
		{"everything allowed, at a site that runs job code", allowAll{}, pinned, custom(), code, ""},
		{"a built-in job", allowAll{}, nil, &job.Manifest{Trainer: job.TrainerSpec{Kind: "logreg"}, Workflow: job.WorkflowFedAvg}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Participant{cfg: Config{Policy: tc.policy, Components: tc.allow}}
			if strings.HasSuffix(tc.name, "that runs job code") {
				p.cfg.StartCode = func(context.Context, JobCode) (CodeTrainer, error) {
					return nil, errors.New("not started in this test")
				}
			}
			err := p.checkComponents(&job.Verified{Manifest: tc.m, Submitter: who}, who, tc.code)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("checkComponents = %v, want %q", err, tc.want)
			}
		})
	}
}
