package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/auditor"
)

// TestSitePrivacyScopes: each site runs a job in the privacy scope the job
// names, from its own local/privacy.json. site-1's scope's filter runs
// before the job's own weaker one (its audit shows the order and the
// parameters); sites without the scope refuse the job, which runs without
// them; a site whose scope's DP budget runs out mid-job refuses the next
// round, audited, and the job goes on with the others.
func TestSitePrivacyScopes(t *testing.T) {
	p := startProjectWith(t, projectSpec{provisioned: 3, running: 0})
	writePolicy := func(site, doc string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(p.Kit(site), "local", "privacy.json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy("site-1", `{"scopes": [
	  {"name": "public"},
	  {"name": "filtered", "task_result_filters": [{"path": "nvflare.app_common.filters.percentile_privacy.PercentilePrivacy", "args": {"percentile": 20, "gamma": 0.5}}]},
	  {"name": "private", "properties": {"dp_budget": {"epsilon": 6, "delta": 1e-5}}},
	  {"name": "noised", "properties": {"dp_budget": {"epsilon": 2, "delta": 1e-5}},
	   "task_result_filters": [{"path": "gaussian_privacy", "args": {"noise_multiplier": 10, "clip_norm": 10}}]},
	  {"name": "incoming", "task_data_filters": [{"path": "percentile_privacy", "args": {"percentile": 10, "gamma": 1}}]},
	  {"name": "excluding", "task_result_filters": [{"path": "exclude_vars", "args": {"exclude_vars": ["dense0/bias"]}}]}],
	 "default_scope": "public"}`)
	writePolicy("site-2", `{"scopes": [{"name": "public"}, {"name": "excluding"}, {"name": "incoming"},
	  {"name": "noised", "properties": {"dp_budget": {"epsilon": 100, "delta": 1e-5}},
	   "task_result_filters": [{"path": "gaussian_privacy", "args": {"noise_multiplier": 10, "clip_norm": 10}}]}],
	 "default_scope": "public"}`)
	// site-3 keeps the kit's default policy: public, and private within ε 8.
	if _, err := p.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Sites {
		p.sites[s] = p.start(t, s, "site", "-k", p.Kit(s))
		p.await(t, p.sites[s])
	}
	ap := &authnProject{project: p}
	run := func(t *testing.T, manifest string) (string, [][]string) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := p.adminCLI(t, p.Admin, "--json", "submit", dir)
		if err != nil {
			t.Fatalf("submit: %v\n%s", err, out)
		}
		id := out[strings.Index(out, `"job-`)+1:]
		id = id[:strings.Index(id, `"`)]
		info, _ := ap.await(t, id)
		var answered [][]string
		for _, r := range info.History {
			answered = append(answered, r.Answered)
		}
		return id, answered
	}

	t.Run("a streamed model through the scope's incoming filters", func(t *testing.T) {
		id, answered := run(t, jobSpec{rounds: 2, minSites: 1, timeout: "60s",
			trainer: "{kind: mlp, hidden: [1024, 256], learning_rate: 0.003, epochs: 1, batch_size: 32, seed: 1}"}.manifest()+"privacy_scope: incoming\n")
		if len(answered) != 2 || !slices.Equal(answered[1], []string{"site-1", "site-2"}) {
			t.Fatalf("rounds answered %v, want two by site-1 and site-2 (site-3 has no scope incoming)", answered)
		}
		in := auditOf(t, p, "site-1", func(r auditor.Record) bool {
			return r.Action == "privacy.filtered" && r.JobID == id && r.Detail["direction"] == "in"
		})
		if len(in) < 2 || in[0].Detail["filter"] != "percentile_privacy" {
			t.Fatalf("the incoming filter audited %d times: %v", len(in), in)
		}
	})

	t.Run("a swarm job's models through the scope's incoming filters", func(t *testing.T) {
		id, answered := run(t, swarmJob("swarm-incoming", 2, 2, "30s", "")+"privacy_scope: incoming\n")
		if len(answered) != 2 || !slices.Equal(answered[1], []string{"site-1", "site-2"}) {
			t.Fatalf("rounds answered %v, want two by site-1 and site-2", answered)
		}
		in := auditOf(t, p, "site-1", func(r auditor.Record) bool {
			return r.Action == "privacy.filtered" && r.JobID == id && r.Detail["direction"] == "in"
		})
		rounds := map[int64]bool{}
		for _, r := range in {
			rounds[r.Round] = true
		}
		if !rounds[1] || !rounds[2] || !rounds[0] {
			t.Fatalf("the incoming filter audited for rounds %v, want 1, 2 and the final model's test (0)", rounds)
		}
	})

	t.Run("excluded tensors are left to the other sites", func(t *testing.T) {
		id, answered := run(t, jobSpec{rounds: 1, minSites: 2, timeout: "30s"}.manifest()+"privacy_scope: excluding\n")
		if !slices.Equal(answered[0], []string{"site-1", "site-2"}) {
			t.Fatalf("trained at %v, want site-1 and site-2 (site-3 has no scope excluding)", answered[0])
		}
		got := auditOf(t, p, "server", func(r auditor.Record) bool { return r.Action == "result.received" && r.JobID == id && r.Round == 1 })
		excluded := map[string]string{}
		for _, r := range got {
			excluded[r.Peer] = r.Detail["excluded"]
		}
		if excluded["site-1"] != "dense0/bias" || excluded["site-2"] != "" {
			t.Fatalf("the server's record of the excluded tensors: %v", excluded)
		}
	})

	t.Run("the site's filters first", func(t *testing.T) {
		id, answered := run(t, jobSpec{rounds: 1, minSites: 1, timeout: "30s"}.manifest()+`privacy_scope: filtered
filters:
  task_result_filters:
    - {path: percentile_privacy, args: {percentile: 1, gamma: 10}}
`)
		if !slices.Equal(answered[0], []string{"site-1"}) {
			t.Fatalf("trained at %v, want site-1 only (the others have no scope filtered)", answered[0])
		}
		applied := auditOf(t, p, "site-1", func(r auditor.Record) bool { return r.Action == "privacy.filtered" && r.JobID == id })
		if len(applied) != 2 {
			t.Fatalf("%d filters audited, want 2: %v", len(applied), applied)
		}
		first, second := applied[0].Detail, applied[1].Detail
		if first["from"] != "site" || first["arg.percentile"] != "20" || first["arg.gamma"] != "0.5" ||
			second["from"] != "job" || second["arg.percentile"] != "1" || second["arg.gamma"] != "10" {
			t.Fatalf("filters in the order %v then %v; want the site's (20, 0.5) before the job's (1, 10)", first, second)
		}
		for _, s := range []string{"site-2", "site-3"} {
			if r := ap.refusedAt(t, s, id); !strings.Contains(r, "privacy") || !strings.Contains(r, "filtered") {
				t.Fatalf("%s's reason: %s", s, r)
			}
		}
	})

	t.Run("a gaussian filter's ε, accounted", func(t *testing.T) {
		// Client-level DP by the sites' own filter: no DP-SGD in the job,
		// yet each round's release spends ε at site-1 until its budget of
		// 2 (site-2's is 100: it releases every round).
		id, answered := run(t, jobSpec{rounds: 6, minSites: 1, timeout: "30s"}.manifest()+"privacy_scope: noised\n")
		refused := auditOf(t, p, "site-1", func(r auditor.Record) bool { return r.Action == "privacy.budget.refused" && r.JobID == id })
		if len(refused) == 0 || !strings.Contains(refused[0].Detail["reason"], "gaussian_privacy filter would take this site past its budget of ε 2") {
			t.Fatalf("site-1's budget refusals: %v", refused)
		}
		if !slices.Contains(answered[0], "site-1") || slices.Contains(answered[len(answered)-1], "site-1") || !slices.Contains(answered[len(answered)-1], "site-2") {
			t.Fatalf("rounds answered %v: site-1 should release round 1 and not the last, site-2 every round", answered)
		}
	})

	t.Run("a budget that runs out", func(t *testing.T) {
		id, answered := run(t, `name: dp-job
workflow: fedavg
rounds: 6
sites: ["@all"]
min_sites: 1
round_timeout: 30s
dataset: optdigits
privacy_scope: private
trainer: {kind: mlp, hidden: [32], learning_rate: 0.1, epochs: 2, batch_size: 64, seed: 1, dp: {epsilon: 8, delta: 1e-5, clip_norm: 1}}
evaluation: {validation: true, test: true}
`)
		refused := auditOf(t, p, "site-1", func(r auditor.Record) bool { return r.Action == "privacy.budget.refused" && r.JobID == id })
		if len(refused) == 0 || !strings.Contains(refused[0].Detail["reason"], "beyond its budget of 6") {
			t.Fatalf("site-1's budget refusals: %v", refused)
		}
		first := refused[0].Round
		if first < 2 || first > 6 {
			t.Fatalf("site-1 ran out at round %d; with ε 6 of the job's 8 it should train some rounds, not all", first)
		}
		for i, a := range answered {
			round := int64(i + 1)
			if got := slices.Contains(a, "site-1"); got != (round < first) {
				t.Fatalf("round %d trained at %v; site-1 ran out of budget at round %d", round, a, first)
			}
			if !slices.Contains(a, "site-3") {
				t.Fatalf("round %d trained at %v: site-3 (budget 8) should train every round", round, a)
			}
		}
		if r := ap.refusedAt(t, "site-2", id); !strings.Contains(r, "private") {
			t.Fatalf("site-2's reason: %s", r)
		}
		t.Logf("site-1 (budget ε 6) trained rounds 1..%d of 6; site-3 (budget 8) all six", first-1)
	})
}
