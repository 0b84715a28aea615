package authz_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies"
	"github.com/hearthfl/hearth/policies/authz"
)

// Golden files, testdata/*.txt, one subtest each. A file is a policy, a
// separator line "---", then requests with the decision expected:
//
//	# comment lines are allowed anywhere; blank lines are skipped
//	default            (or "file NAME.json", or the literal authorization.json text)
//	---
//	role org name right site_org [submitter_name submitter_org] => allow|deny[: reason text]
//
// "default" is package policies' default authorization.json, which
// provisioning writes into every kit; "file NAME.json" is testdata/NAME.json.
// role is "[kind/]role": kind defaults to admin, so "lead" is an
// admin lead, "site/-" a site certificate with no role and "admin/root" an
// admin with the role root. "-" stands for an empty field, and a field
// written as a Go string ("Hospital A") may hold spaces. Text after
// "allow:" or "deny:" must appear in the decision's reason.
//
// A request where Hearth decides otherwise than FLARE's evaluator would
// has a comment line just above it starting "# differs from FLARE:",
// saying why.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runGolden(t, file)
		})
	}
}

func runGolden(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	policyText, requests, ok := strings.Cut(string(data), "\n---\n")
	if !ok {
		t.Fatalf("%s: no separator line \"---\"", file)
	}
	policy := parseGoldenPolicy(t, file, policyText)
	n := 0
	for i, line := range strings.Split(requests, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		where := file + ":" + strconv.Itoa(lineOf(string(data), policyText)+i+1)
		req, wantAllow, wantReason := parseGoldenRequest(t, where, line)
		got := policy.Decide(req)
		if got.Reason == "" {
			t.Errorf("%s: %s: empty reason", where, line)
		}
		if got.Allowed != wantAllow || !strings.Contains(got.Reason, wantReason) {
			t.Errorf("%s: %s\n  got  allowed=%v reason %q\n  want allowed=%v reason containing %q",
				where, line, got.Allowed, got.Reason, wantAllow, wantReason)
		}
	}
	if n == 0 {
		t.Fatalf("%s: no requests", file)
	}
}

// parseGoldenPolicy parses the policy part of a golden file, dropping
// comment lines.
func parseGoldenPolicy(t *testing.T, file, text string) *authz.Policy {
	t.Helper()
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	text = strings.TrimSpace(strings.Join(kept, "\n"))
	if text == "default" {
		return defaultPolicy(t)
	}
	if name, ok := strings.CutPrefix(text, "file "); ok {
		p, err := authz.ParseFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatalf("%s: policy: %v", file, err)
		}
		return p
	}
	p, err := authz.Parse([]byte(text))
	if err != nil {
		t.Fatalf("%s: policy: %v", file, err)
	}
	return p
}

// defaultPolicy parses the default authorization.json that provisioning
// puts into every kit's local/ folder.
func defaultPolicy(t testing.TB) *authz.Policy {
	t.Helper()
	data, err := fs.ReadFile(policies.Defaults(), "authorization.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.Parse(data)
	if err != nil {
		t.Fatalf("default policy: %v", err)
	}
	return p
}

func parseGoldenRequest(t *testing.T, where, line string) (req authz.Request, allow bool, reason string) {
	t.Helper()
	lhs, rhs, ok := strings.Cut(line, "=>")
	if !ok {
		t.Fatalf("%s: %q: no \"=>\"", where, line)
	}
	f, err := goldenFields(lhs)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, line, err)
	}
	if len(f) != 5 && len(f) != 7 {
		t.Fatalf("%s: %q: want role org name right site_org [submitter_name submitter_org]", where, line)
	}
	for i := range f {
		if f[i] == "-" {
			f[i] = ""
		}
	}
	kind, role := pki.KindAdmin, f[0]
	if k, r, ok := strings.Cut(f[0], "/"); ok {
		kind, role = pki.Kind(k), r
		if role == "-" {
			role = ""
		}
	}
	req = authz.Request{
		Requester: pki.Identity{Name: f[2], Org: f[1], Kind: kind, Role: pki.Role(role)},
		Right:     authz.Right(f[3]),
		SiteOrg:   f[4],
	}
	if len(f) == 7 {
		req.Submitter = &pki.Identity{Name: f[5], Org: f[6], Kind: pki.KindAdmin}
	}
	verdict, reason, _ := strings.Cut(strings.TrimSpace(rhs), ":")
	switch strings.TrimSpace(verdict) {
	case "allow":
		allow = true
	case "deny":
	default:
		t.Fatalf("%s: %q: want \"=> allow\" or \"=> deny\"", where, line)
	}
	return req, allow, strings.TrimSpace(reason)
}

// goldenFields splits a request into fields at spaces; a field that
// starts with a double quote is a Go string and may hold spaces.
func goldenFields(s string) ([]string, error) {
	var f []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, err
			}
			v, _ := strconv.Unquote(q)
			f, s = append(f, v), s[len(q):]
			continue
		}
		field, rest, _ := strings.Cut(s, " ")
		f, s = append(f, field), rest
	}
	return f, nil
}

// lineOf is the 0-based line in data where the request part begins, for
// error positions.
func lineOf(data, policyText string) int {
	return strings.Count(data[:len(policyText)+len("\n---\n")], "\n")
}

func TestParseRefuses(t *testing.T) {
	const v = `"format_version": "1.0", `
	const want = `want any, all, none, no, o:site, o:submitter, o:<org>, n:submitter or n:<name>, each optionally after "not"`
	const wantRight = `want one of FLARE's rights: a command category, manage_job, view, operate, shell_commands or download_job, one of their commands, or submit_job, clone_job or byoc; see the package documentation`
	tests := []struct {
		name  string
		input string
		want  string // the whole error text
	}{
		{"empty input", ``,
			`authz: unexpected end of input`},
		{"not JSON", `format_version: 1.0`,
			`authz: invalid JSON: invalid character 'o' in literal false (expecting 'a')`},
		{"truncated", `{"format_version": "1.0", "permissions": {"lead": "any"`,
			`authz: permissions: unexpected end of input`},
		{"document is an array", `[]`,
			`authz: want the policy document as a JSON object, got array`},
		{"trailing data", `{` + v + `"permissions": {"member": "none"}} {}`,
			`authz: trailing data after the policy document`},
		{"unknown top-level key", `{` + v + `"permissions": {"member": "none"}, "roles": {}}`,
			`authz: unknown top-level key "roles" (want format_version and permissions)`},
		{"duplicate top-level key", `{` + v + `"permissions": {"member": "none"}, "permissions": {"lead": "any"}}`,
			`authz: duplicate key "permissions"`},
		{"missing format_version", `{"permissions": {"member": "none"}}`,
			`authz: missing format_version (want "1.0")`},
		{"wrong format_version", `{"format_version": "2.0", "permissions": {"member": "none"}}`,
			`authz: format_version: unsupported version "2.0" (want "1.0")`},
		{"format_version as a number", `{"format_version": 1.0, "permissions": {"member": "none"}}`,
			`authz: format_version: want the string "1.0", got number`},
		{"missing permissions", `{` + v[:len(v)-2] + `}`,
			`authz: missing permissions`},
		{"permissions null", `{` + v + `"permissions": null}`,
			`authz: permissions: want permissions as a JSON object, got null`},
		{"permissions an array", `{` + v + `"permissions": [{"lead": "any"}]}`,
			`authz: permissions: want permissions as a JSON object, got array`},
		{"no roles", `{` + v + `"permissions": {}}`,
			`authz: permissions: no roles (list each role, with "none" for a role that holds nothing)`},
		{"role with no name", `{` + v + `"permissions": {"": "any"}}`,
			`authz: permissions: role "" has no name`},
		{"role of white space only", `{` + v + `"permissions": {" \t ": "any"}}`,
			`authz: permissions: role " \t " has no name`},
		{"duplicate role", `{` + v + `"permissions": {"lead": "none", "lead": "any"}}`,
			`authz: permissions: duplicate key "lead"`},
		{"duplicate role in another case", `{` + v + `"permissions": {"lead": "none", "Lead": "any"}}`,
			`authz: permissions: duplicate role "lead" ("lead" and "Lead" are one role: names are not case-sensitive)`},
		{"duplicate role in other spacing", `{` + v + `"permissions": {"data scientist": "none", " Data  Scientist": "any"}}`,
			`authz: permissions: duplicate role "data scientist" ("data scientist" and " Data  Scientist" are one role: names are not case-sensitive)`},
		{"role a number", `{` + v + `"permissions": {"lead": 1}}`,
			`authz: permissions.lead: want a condition or a list of conditions for every right, or an object of rights, got number`},
		{"role null", `{` + v + `"permissions": {"lead": null}}`,
			`authz: permissions.lead: want a condition or a list of conditions for every right, or an object of rights, got null`},
		{"role an empty list", `{` + v + `"permissions": {"lead": []}}`,
			`authz: permissions.lead: empty list of conditions (FLARE refuses it too; write "none" for no one)`},
		{"role with an unknown condition", `{` + v + `"permissions": {"lead": "every"}}`,
			`authz: permissions.lead: unknown condition "every" (` + want + `)`},
		{"unknown right", `{` + v + `"permissions": {"lead": {"train_all": "any"}}}`,
			`authz: permissions.lead: unknown right "train_all" (` + wantRight + `)`},
		{"right misspelt", `{` + v + `"permissions": {"lead": {"submit_jobs": "any"}}}`,
			`authz: permissions.lead: unknown right "submit_jobs" (` + wantRight + `)`},
		{"right with a space for the underscore", `{` + v + `"permissions": {"lead": {"submit job": "any"}}}`,
			`authz: permissions.lead: unknown right "submit job" (` + wantRight + `)`},
		{"duplicate right", `{` + v + `"permissions": {"lead": {"view": "none", "view": "any"}}}`,
			`authz: permissions.lead: duplicate key "view"`},
		{"duplicate right in another case", `{` + v + `"permissions": {"lead": {"view": "none", "VIEW": "any"}}}`,
			`authz: permissions.lead: duplicate right "view" ("view" and "VIEW" are one right: names are not case-sensitive)`},
		{"unknown condition", `{` + v + `"permissions": {"lead": {"submit_job": "o:a:b"}}}`,
			`authz: permissions.lead.submit_job: unknown condition "o:a:b" (` + want + `)`},
		{"empty condition", `{` + v + `"permissions": {"lead": {"submit_job": ""}}}`,
			`authz: permissions.lead.submit_job: unknown condition "" (` + want + `)`},
		{"not alone", `{` + v + `"permissions": {"lead": {"submit_job": "not"}}}`,
			`authz: permissions.lead.submit_job: unknown condition "not" (` + want + `)`},
		{"not twice", `{` + v + `"permissions": {"lead": {"submit_job": "not not any"}}}`,
			`authz: permissions.lead.submit_job: unknown condition "not not any" (` + want + `)`},
		{"unknown condition type", `{` + v + `"permissions": {"lead": {"submit_job": "r:lead"}}}`,
			`authz: permissions.lead.submit_job: condition "r:lead": unknown type "r" (want o or org, n or name; ` + want + `)`},
		{"not with a space after the colon", `{` + v + `"permissions": {"lead": {"submit_job": "not o: site"}}}`,
			`authz: permissions.lead.submit_job: condition "not o: site": unknown type "not o" (want o or org, n or name; ` + want + `)`},
		{"not before an org with a space", `{` + v + `"permissions": {"lead": {"submit_job": "not o:hospital a"}}}`,
			`authz: permissions.lead.submit_job: condition "not o:hospital a": unknown type "not o" (want o or org, n or name; ` + want + `)`},
		{"org condition naming no org", `{` + v + `"permissions": {"lead": {"submit_job": "o:"}}}`,
			`authz: permissions.lead.submit_job: condition "o:" names no org`},
		{"name condition naming no one", `{` + v + `"permissions": {"lead": {"submit_job": "not n: "}}}`,
			`authz: permissions.lead.submit_job: condition "not n: " names no user`},
		{"n:site", `{` + v + `"permissions": {"lead": {"submit_job": "N:Site"}}}`,
			`authz: permissions.lead.submit_job: condition "N:Site": "site" is reserved, and n: takes a user name or submitter (the site's org is o:site)`},
		{"condition a number", `{` + v + `"permissions": {"lead": {"submit_job": 1}}}`,
			`authz: permissions.lead.submit_job: want a condition or a list of conditions, got number`},
		{"condition null", `{` + v + `"permissions": {"lead": {"submit_job": null}}}`,
			`authz: permissions.lead.submit_job: want a condition or a list of conditions, got null`},
		{"condition an object", `{` + v + `"permissions": {"lead": {"submit_job": {"any": true}}}}`,
			`authz: permissions.lead.submit_job: want a condition or a list of conditions, got object`},
		{"empty list of conditions", `{` + v + `"permissions": {"lead": {"submit_job": []}}}`,
			`authz: permissions.lead.submit_job: empty list of conditions (FLARE refuses it too; write "none" for no one)`},
		{"list holding a number", `{` + v + `"permissions": {"lead": {"submit_job": ["o:site", 1]}}}`,
			`authz: permissions.lead.submit_job[1]: want a condition, got number`},
		{"list holding null", `{` + v + `"permissions": {"lead": {"submit_job": [null]}}}`,
			`authz: permissions.lead.submit_job[0]: want a condition, got null`},
		{"list holding a list", `{` + v + `"permissions": {"lead": {"submit_job": ["any", ["o:site"]]}}}`,
			`authz: permissions.lead.submit_job[1]: want a condition, got array`},
		{"list holding an object", `{` + v + `"permissions": {"lead": [{"view": "any"}]}}`,
			`authz: permissions.lead[0]: want a condition, got object`},
		{"list holding a bad condition", `{` + v + `"permissions": {"member": {"submit_job": ["o:site", "O:orgA", "N:"]}}}`,
			`authz: permissions.member.submit_job[2]: condition "N:" names no user`},
		{"unterminated list", `{` + v + `"permissions": {"lead": ["any"`,
			`authz: permissions.lead: unexpected end of input`},
		{"comments, as in FLARE's documented sample", `{` + v + `"permissions": {"project_admin": "any", # can do everything
}}`,
			`authz: permissions: invalid JSON: invalid character '#' looking for beginning of object key string (authorization.json is plain JSON, without comments, as FLARE reads it)`},
		{"invalid UTF-8", `{` + v + `"permissions": {"lead": {"submit_job": "n:` + "\xff" + `"}}}`,
			`authz: the policy is not valid UTF-8 text`},
		{"lone surrogate escape", `{` + v + `"permissions": {"lead": {"submit_job": "n:\ud800"}}}`,
			`authz: permissions.lead.submit_job: "n:\ufffd" holds U+FFFD or a lone surrogate escape: not a name`},
		{"bad JSON inside a role", `{` + v + `"permissions": {"lead": {"submit_job" "any"}}}`,
			`authz: permissions.lead.submit_job: invalid JSON: invalid character '"' after object key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authz.Parse([]byte(tt.input))
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want error %q", tt.input, p, tt.want)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with its error")
			}
			if err.Error() != tt.want {
				t.Errorf("Parse(%s)\n  error %q\n  want  %q", tt.input, err, tt.want)
			}
			var pe *authz.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *authz.ParseError", err)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "authorization.json")
	if err := os.WriteFile(bad, []byte(`{"format_version": "1.0", "permissions": {"lead": {"submit_job": "o:a:b"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := authz.ParseFile(bad)
	var pe *authz.ParseError
	if !errors.As(err, &pe) || pe.File != bad || pe.Path != "permissions.lead.submit_job" {
		t.Fatalf("ParseFile(bad) = %v, want a ParseError naming the file and permissions.lead.submit_job", err)
	}
	if !strings.HasPrefix(err.Error(), "authz: "+bad+": permissions.lead.submit_job: unknown condition") {
		t.Errorf("error text %q", err)
	}
	if _, err := authz.ParseFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseFile(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestRightValid(t *testing.T) {
	for _, r := range []authz.Right{
		authz.RightSubmitJob, authz.RightCloneJob, authz.RightManageJob, authz.RightDownloadJob,
		authz.RightView, authz.RightOperate, authz.RightShellCommands, authz.RightBYOC,
		authz.RightAbortJob, authz.RightDeleteJob, authz.RightListJobs, authz.RightGetJobMeta,
		authz.RightCheckStatus, authz.RightShutdown, "abort", "ls", "grep", "sys_info",
		"download_job_components", "server-predeployed-flwr",
	} {
		if !r.Valid() {
			t.Errorf("%s: not valid", r)
		}
	}
	// Rights come from code and compare exactly; only a policy's keys fold.
	for _, r := range []authz.Right{"", "train_all", "View", "*", " view", "start_app", "super"} {
		if r.Valid() {
			t.Errorf("%q: valid", r)
		}
	}
}

// TestRightCategory pins FLARE's COMMAND_CATEGORIES
// (nvflare/security/security.py) as Category reports it.
func TestRightCategory(t *testing.T) {
	tests := []struct {
		right authz.Right
		want  authz.Right
	}{
		{authz.RightManageJob, authz.RightManageJob},
		{"abort", authz.RightManageJob},
		{authz.RightAbortJob, authz.RightManageJob},
		{authz.RightDeleteJob, authz.RightManageJob},
		{"delete_workspace", authz.RightManageJob},
		{"configure_job_log", authz.RightManageJob},
		{authz.RightView, authz.RightView},
		{authz.RightCheckStatus, authz.RightView},
		{"show_scopes", authz.RightView},
		{"show_stats", authz.RightView},
		{"reset_errors", authz.RightView},
		{"show_errors", authz.RightView},
		{authz.RightListJobs, authz.RightView},
		{authz.RightGetJobMeta, authz.RightView},
		{authz.RightOperate, authz.RightOperate},
		{"sys_info", authz.RightOperate},
		{"report_resources", authz.RightOperate},
		{"report_env", authz.RightOperate},
		{"restart", authz.RightOperate},
		{authz.RightShutdown, authz.RightOperate},
		{"remove_client", authz.RightOperate},
		{"disable_client", authz.RightOperate},
		{"enable_client", authz.RightOperate},
		{"set_timeout", authz.RightOperate},
		{"call", authz.RightOperate},
		{"configure_site_log", authz.RightOperate},
		{authz.RightShellCommands, authz.RightShellCommands},
		{"cat", authz.RightShellCommands},
		{"grep", authz.RightShellCommands},
		{"head", authz.RightShellCommands},
		{"tail", authz.RightShellCommands},
		{"ls", authz.RightShellCommands},
		{"pwd", authz.RightShellCommands},
		{authz.RightDownloadJob, authz.RightDownloadJob},
		{authz.RightSubmitJob, ""},
		{authz.RightCloneJob, ""},
		{authz.RightBYOC, ""},
		{"download_job_components", ""},
		{"get_job_log", ""},
		{"train_all", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.right), func(t *testing.T) {
			if got := tt.right.Category(); got != tt.want {
				t.Errorf("Category() = %q, want %q", got, tt.want)
			}
			if got, want := tt.right.IsCategory(), tt.right == tt.want; got != want {
				t.Errorf("IsCategory() = %v, want %v", got, want)
			}
		})
	}
}

// TestDecideDeniesWithoutPolicy shows that the zero Policy and a nil
// *Policy grant nothing, without panicking, and still give a reason.
func TestDecideDeniesWithoutPolicy(t *testing.T) {
	req := authz.Request{
		Requester: pki.Identity{Name: "ann", Org: "a", Kind: pki.KindAdmin, Role: pki.RoleProjectAdmin},
		Right:     authz.RightView,
		SiteOrg:   "a",
	}
	tests := []struct {
		name   string
		policy *authz.Policy
		req    authz.Request
		want   string
	}{
		{"nil policy", nil, req, `project_admin "ann" may not view: no policy`},
		{"zero policy", &authz.Policy{}, req, `project_admin "ann" may not view: role project_admin not in the policy`},
		{"zero request", defaultPolicy(t), authz.Request{}, `participant "" may not "": not an admin (kind ""); only admins hold rights`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Decide(tt.req)
			if got.Allowed || got.Reason != tt.want {
				t.Errorf("Decide = %+v, want denied with reason %q", got, tt.want)
			}
		})
	}
}

// FuzzParseDecide checks that Parse never panics, and that a policy it
// accepts answers any request without panicking and always with a reason.
func FuzzParseDecide(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("..", "defaults", "authorization.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, "lead", "a", "bob", "manage_job", "a", "bob", "b")
	f.Add([]byte(`{"format_version": "1.0", "permissions": {"member": true, "lead": {"view": false}}}`),
		"member", "a", "carl", "view", "", "", "")
	sample, err := os.ReadFile(filepath.Join("testdata", "flare_sample.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample, "Member", "OrgA", "John", "submit_job", "orgB", "", "")
	f.Add(sample, "lead", "orgB", "bob", "shell_commands", "orgB", "bob", "orgB")
	f.Add([]byte(`{"format_version": "1.0", "permissions": {"ops": ["not o:x", "N: Ann "], "Lead": {"Manage_Job": "not none", "abort_job": ["o:site", "not n:submitter"]}}}`),
		"LEAD", "x", "ann", "manage_job", "x", "ann", "x")
	f.Add([]byte(`{"format_version": "1.0", "permissions": {"ΑΣ": {"view": "n:ΟΔΟΣ"}}}`),
		"ας", "a", "οδος", "list_jobs", "a", "", "")
	f.Fuzz(func(t *testing.T, data []byte, role, org, name, right, siteOrg, subName, subOrg string) {
		p, err := authz.Parse(data)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy with error %v", err)
			}
			return
		}
		req := authz.Request{
			Requester: pki.Identity{Name: name, Org: org, Kind: pki.KindAdmin, Role: pki.Role(role)},
			Right:     authz.Right(right),
			SiteOrg:   siteOrg,
		}
		if subName != "" || subOrg != "" {
			req.Submitter = &pki.Identity{Name: subName, Org: subOrg, Kind: pki.KindAdmin}
		}
		if d := p.Decide(req); d.Reason == "" {
			t.Fatalf("Decide(%+v) = %+v: no reason", req, d)
		}
	})
}

// BenchmarkDecide measures one decision under the default policy, over a
// mix of allowed and denied requests that exercise every condition.
func BenchmarkDecide(b *testing.B) {
	p := defaultPolicy(b)
	admin := func(role pki.Role, name, org string) pki.Identity {
		return pki.Identity{Name: name, Org: org, Kind: pki.KindAdmin, Role: role}
	}
	bob := admin(pki.RoleLead, "bob", "a")
	reqs := []authz.Request{
		{Requester: bob, Right: authz.RightSubmitJob, SiteOrg: "b"},                                                          // any
		{Requester: admin(pki.RoleOrgAdmin, "ann", "a"), Right: authz.RightSubmitJob, SiteOrg: "a"},                          // none
		{Requester: bob, Right: authz.RightOperate, SiteOrg: "b"},                                                            // o:site, denied
		{Requester: admin(pki.RoleOrgAdmin, "ann", "a"), Right: authz.RightManageJob, SiteOrg: "b", Submitter: &bob},         // o:submitter
		{Requester: bob, Right: authz.RightDownloadJob, SiteOrg: "b", Submitter: &bob},                                       // n:submitter
		{Requester: admin(pki.RoleMember, "carl", "a"), Right: authz.RightManageJob, SiteOrg: "a", Submitter: &bob},          // not granted
		{Requester: pki.Identity{Name: "site-1", Org: "a", Kind: pki.KindSite}, Right: authz.RightView, SiteOrg: "a"},        // not an admin
		{Requester: admin(pki.RoleProjectAdmin, "pat", "hq"), Right: authz.RightShellCommands, SiteOrg: "a", Submitter: nil}, // single string
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := p.Decide(reqs[i%len(reqs)])
		if d.Reason == "" {
			b.Fatal("no reason")
		}
		i++
	}
}
