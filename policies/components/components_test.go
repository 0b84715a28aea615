package components_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/policies/components"
)

func TestDefaultAllowsTheBuiltIns(t *testing.T) {
	a, err := components.ParseFile("../defaults/components.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []components.Job{
		{Trainer: "logreg", Workflow: "fedavg"},
		{Trainer: "mlp", Workflow: "swarm", Filters: []string{"gaussian_privacy", "exclude_vars"}},
		{Trainer: "pytorch", Workflow: "fedavg", ScriptSHA256: strings.Repeat("ab", 32)},
	} {
		if d := a.Check(j); !d.Allowed {
			t.Errorf("%+v refused by the default: %s", j, d.Reason)
		}
	}
}

func TestCheck(t *testing.T) {
	pinned := strings.Repeat("cd", 32)
	a, err := components.Parse([]byte(`{"trainers": ["logreg", "pytorch"], "workflows": ["fedavg"], "filters": ["exclude_vars"], "scripts": ["` + pinned + `"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		job  components.Job
		want string
	}{
		{"listed", components.Job{Trainer: "logreg", Workflow: "fedavg", Filters: []string{"exclude_vars"}}, ""},
		{"a pinned script", components.Job{Trainer: "pytorch", Workflow: "fedavg", ScriptSHA256: strings.ToUpper(pinned)}, ""},
		{"a trainer not listed", components.Job{Trainer: "mlp", Workflow: "fedavg"}, `trainer "mlp"`},
		{"a workflow not listed", components.Job{Trainer: "logreg", Workflow: "swarm"}, `workflow "swarm"`},
		{"a filter not listed", components.Job{Trainer: "logreg", Workflow: "fedavg", Filters: []string{"gaussian_privacy"}}, `filter "gaussian_privacy"`},
		{"a script not pinned", components.Job{Trainer: "pytorch", Workflow: "fedavg", ScriptSHA256: strings.Repeat("ef", 32)}, "not one this site allows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Check(tc.job)
			if tc.want == "" && !d.Allowed || tc.want != "" && (d.Allowed || !strings.Contains(d.Reason, tc.want)) {
				t.Fatalf("Check = %+v, want %q", d, tc.want)
			}
		})
	}
	none, _ := components.Parse([]byte(`{"trainers": ["pytorch"], "workflows": ["fedavg"], "filters": [], "scripts": []}`))
	if d := none.Check(components.Job{Trainer: "pytorch", Workflow: "fedavg", ScriptSHA256: pinned}); d.Allowed {
		t.Fatal("scripts: [] allowed a script")
	}
}

func TestParseRefuses(t *testing.T) {
	const base = `{"trainers": [], "workflows": [], "filters": [], "scripts": []`
	pin := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, text, want string }{
		{"a missing list", `{"trainers": [], "workflows": [], "filters": []}`, "scripts: required"},
		{"an unknown key", `{"trainers": [], "workflows": [], "filters": [], "scripts": [], "plugins": []}`, "unknown field"},
		{"any with pins", `{"trainers": [], "workflows": [], "filters": [], "scripts": ["any", "` + strings.Repeat("ab", 32) + `"]}`, "stands alone"},
		{"a bad pin", `{"trainers": [], "workflows": [], "filters": [], "scripts": ["abc"]}`, "scripts[0]"},
		{"oversized", `{"trainers": [` + strings.Repeat(" ", 70<<10) + `]}`, "bytes"},
		{"too little memory for job code", base + `, "job_code": {"memory_mib": 64}}`, "memory_mib 64"},
		{"a call timeout that is no duration", base + `, "job_code": {"call_timeout": "soon"}}`, "call_timeout"},
		{"a call timeout too short", base + `, "job_code": {"call_timeout": "10ms"}}`, "call_timeout"},
		{"too many threads", base + `, "job_code": {"threads": 5000}}`, "threads 5000"},
		{"an unknown job_code key", base + `, "job_code": {"network": true}}`, "unknown field"},
		{"a checker on a relative path", base + `, "checkers": [{"name": "imports", "path": "bin/c", "sha256": "` + pin + `"}]}`, "not absolute"},
		{"a checker without its pin", base + `, "checkers": [{"name": "imports", "path": "/opt/c"}]}`, "sha256"},
		{"a checker named twice", base + `, "checkers": [{"name": "a", "path": "/opt/c", "sha256": "` + pin + `"}, {"name": "a", "path": "/opt/d", "sha256": "` + pin + `"}]}`, "named twice"},
		{"a checker's bad name", base + `, "checkers": [{"name": "A B", "path": "/opt/c", "sha256": "` + pin + `"}]}`, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := components.Parse([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat("../defaults/components.json"); err != nil {
		t.Fatal(err)
	}
}

// TestJobCodeLimits: job_code's limits and timeout parse, absent fields
// mean the defaults, and the sandbox is on unless the site turns it off.
func TestJobCodeLimits(t *testing.T) {
	a, err := components.Parse([]byte(`{"trainers": ["pytorch"], "workflows": ["fedavg"], "filters": [], "scripts": ["any"],
		"job_code": {"memory_mib": 1536, "cpu_seconds": 60, "open_files": 64, "threads": 2, "call_timeout": "90s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if l := a.JobCode; l.MemoryMiB != 1536 || l.CPUSeconds != 60 || l.OpenFiles != 64 || l.Threads != 2 || l.Timeout() != 90*time.Second || !l.Sandboxed() {
		t.Fatalf("job_code %+v, timeout %v, sandboxed %v", *l, l.Timeout(), l.Sandboxed())
	}
	var none *components.JobCodeLimits
	if none.Timeout() != components.DefaultCallTimeout || !none.Sandboxed() {
		t.Fatalf("without job_code: timeout %v, sandboxed %v; want the defaults, confined", none.Timeout(), none.Sandboxed())
	}
	off, err := components.Parse([]byte(`{"trainers": [], "workflows": [], "filters": [], "scripts": [], "job_code": {"sandbox": false}}`))
	if err != nil || off.JobCode.Sandboxed() {
		t.Fatalf("sandbox false: %v, sandboxed %v", err, off.JobCode.Sandboxed())
	}
}
