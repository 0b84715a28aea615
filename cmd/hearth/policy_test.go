package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flareSample is FLARE's documented sample authorization.json, which the
// golden tables of policies/authz decide.
const flareSample = "../../policies/authz/testdata/flare_sample.json"

// runWithStdin runs the CLI in process with stdin as its standard input.
func runWithStdin(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err = run(context.Background(), c, args)
	return out.String(), errOut.String(), err
}

func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string // the output's lines, in order
	}{
		{"requests as flags, FILE first", "", []string{
			"policy", "check", flareSample, "--site-org", "orgB",
			"--request", "member,orgA,carl,submit_job",
			"--request", "lead, orgB ,bob,cat",
			"--request", "org_admin,orgA,ann,abort_job,orgA,bob",
		}, []string{
			`allow: member "carl" may submit_job: condition o:orga of [o:site, o:orga, n:john] (org "orgA" is "orga")`,
			`deny: lead "bob" may not cat: by its category shell_commands, condition none`,
			`allow: org_admin "ann" may abort_job: by its category manage_job, condition o:submitter (org "orgA" is the submitter's org)`,
		}},
		{"requests on standard input, comments and blank lines skipped",
			"# FLARE's sample\n\nmember,orgC,John,submit_job\r\n  # indented comment\nlead,orgA,bob,ls\nsuper,orgA,su,view\n",
			[]string{"policy", "check", "--site-org", "orgB", flareSample},
			[]string{
				`allow: member "John" may submit_job: condition n:john of [o:site, o:orga, n:john] (name "John" is "john")`,
				`deny: lead "bob" may not ls: condition o:site (org "orgA" is not the site's org "orgB")`,
				`deny: super "su" may not view: role super not in the policy`,
			}},
		{"no requests at all", "", []string{"policy", "check", flareSample, "--site-org", "orgB"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runWithStdin(t, tt.stdin, tt.args...)
			if err != nil {
				t.Fatalf("policy check: %v", err)
			}
			var got []string
			if out != "" {
				got = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestPolicyCheckJSON(t *testing.T) {
	out, _, err := runWithStdin(t, "lead,orgA,bob,abort_job,orgA,bob\nmember,orgB,carl,operate\n",
		"policy", "check", "--json", flareSample, "--site-org", "orgB")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one JSON object per request:\n%s", len(lines), out)
	}
	var got []checkedRequest
	for _, l := range lines {
		var cr checkedRequest
		if err := json.Unmarshal([]byte(l), &cr); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, cr)
	}
	want := []checkedRequest{
		{Source: "line 1", Role: "lead", Org: "orgA", Name: "bob", Right: "abort_job", SiteOrg: "orgB",
			SubmitterOrg: "orgA", SubmitterName: "bob", Decision: "allow",
			Reason: `lead "bob" may abort_job: by its category manage_job, condition n:submitter (requester is the submitter)`},
		{Source: "line 2", Role: "member", Org: "orgB", Name: "carl", Right: "operate", SiteOrg: "orgB",
			Decision: "deny", Reason: `member "carl" may not operate: condition none`},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n  got  %+v\n  want %+v", i+1, got[i], want[i])
		}
	}
}

// TestPolicyCheckRefuses shows policy check refusing bad policies, bad
// requests and too much input with exit status 2, naming where, and
// printing no decision.
func TestPolicyCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "authorization.json")
	if err := os.WriteFile(badPolicy, []byte(`{"format_version": "1.0", "permissions": {"lead": {"submit_job": ["o:site", "n:site"]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	commented := filepath.Join(dir, "commented.json")
	if err := os.WriteFile(commented, []byte("{\"format_version\": \"1.0\",\n  # the sample's comments\n  \"permissions\": {}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := []string{"policy", "check", flareSample, "--site-org", "orgB"}
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // in the error
	}{
		{"a policy FLARE would misread", "lead,a,b,view",
			[]string{"policy", "check", badPolicy, "--site-org", "a"},
			badPolicy + `: permissions.lead.submit_job[1]: condition "n:site": "site" is reserved`},
		{"a policy with comments", "lead,a,b,view",
			[]string{"policy", "check", commented, "--site-org", "a"},
			"without comments"},
		{"a missing policy", "", []string{"policy", "check", filepath.Join(dir, "none.json"), "--site-org", "a"},
			"no such file"},
		{"too few fields", "# ok\nlead,orgA,bob,view\nlead,orgA\n", check,
			"standard input, line 3: want role,org,name,right[,submitter_org,submitter_name], got 2 field(s)"},
		{"five fields", "lead,orgA,bob,view,orgA\n", check, "line 1: want role,org,name,right"},
		{"an empty field", "lead,,bob,view\n", check, "line 1: org is empty"},
		{"an empty submitter name", "lead,orgA,bob,abort_job,orgA, \n", check, "line 1: submitter_name is empty"},
		{"an unknown right", "\nlead,orgA,bob,submit_jobs\n", check, `line 2: unknown right "submit_jobs"`},
		{"a right in another case", "lead,orgA,bob,Submit_Job\n", check, `line 1: unknown right "Submit_Job"`},
		{"not UTF-8", "lead,orgA,b\xffb,view\n", check, "line 1: not valid UTF-8"},
		{"a line too long", "lead,orgA,bob,view\nlead,orgA," + strings.Repeat("b", maxRequestLine) + ",view\n", check,
			"standard input, line 2: longer than 4096 bytes"},
		{"too many requests", strings.Repeat("lead,orgA,bob,view\n", maxRequests+1), check,
			"standard input, line 10001: more than 10000 requests"},
		{"a bad --request", "", append(check, "--request", "lead,orgA,bob,view", "--request", "lead;orgA;bob;view"),
			"--request 2: want role,org,name,right"},
		{"a --request too long", "", append(check, "--request", "lead,orgA,"+strings.Repeat("b", maxRequestLine)+",view"),
			"--request 1: longer than 4096 bytes"},
		{"no --site-org", "lead,orgA,bob,view\n", []string{"policy", "check", flareSample},
			"needs --site-org"},
		{"no FILE", "lead,orgA,bob,view\n", []string{"policy", "check", "--site-org", "orgB"},
			"want 1 argument(s), got 0"},
		{"no subcommand", "", []string{"policy"}, "policy needs a subcommand: check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runWithStdin(t, tt.stdin, tt.args...)
			if err == nil {
				t.Fatalf("policy check succeeded, printing:\n%s", out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if out != "" {
				t.Errorf("printed decisions despite the error:\n%s", out)
			}
		})
	}
}

// TestPolicyCheckExitsZeroOnDenials: a run whose requests are all denied
// still parsed everything, so it succeeds.
func TestPolicyCheckExitsZeroOnDenials(t *testing.T) {
	out, _, err := runWithStdin(t, "member,orgC,carl,byoc\nmember,orgC,carl,shutdown\n",
		"policy", "check", flareSample, "--site-org", "orgB")
	if err != nil {
		t.Fatalf("policy check: %v", err)
	}
	if n := strings.Count(out, "deny: "); n != 2 || strings.Count(out, "\n") != 2 {
		t.Errorf("want two deny lines:\n%s", out)
	}
}

func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "attestation.json")
	if err := os.WriteFile(bad, []byte(`{"require": ["nvidia-gpu"], "nvidia_gpu": {"measurements": {"0": ["ab"]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "notes.json")
	if err := os.WriteFile(other, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	noAggregation := filepath.Join(dir, "resources.json")
	if err := os.WriteFile(noAggregation, []byte(`{"num_of_gpus": 1, "mem_per_gpu_in_GiB": 16, "aggregate": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := "../../policies/defaults/"
	out, _, err := runWithStdin(t, "", "policy", "lint", defaults+"authorization.json", defaults+"privacy.json", defaults+"resources.json", defaults+"components.json", bad, other, noAggregation)
	if err == nil || !strings.Contains(err.Error(), "2 of 7 policy files do not parse") {
		t.Fatalf("policy lint: %v\n%s", err, out)
	}
	for _, want := range []string{"authorization.json: ok", "privacy.json: ok: scopes", "resources.json: ok: 0 GPUs of 0 GiB; aggregates swarm rounds",
		"resources.json: ok: 1 GPUs of 16 GiB; aggregates no swarm round", "components.json: ok: trainers [logreg mlp noop pytorch]",
		`attestation.json: attestation: require: "nvidia-gpu" only with "sev-snp"`, "notes.json: not a policy file"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
