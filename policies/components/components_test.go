package components_test

import (
	"os"
	"strings"
	"testing"

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
	for _, tc := range []struct{ name, text, want string }{
		{"a missing list", `{"trainers": [], "workflows": [], "filters": []}`, "scripts: required"},
		{"an unknown key", `{"trainers": [], "workflows": [], "filters": [], "scripts": [], "plugins": []}`, "unknown field"},
		{"any with pins", `{"trainers": [], "workflows": [], "filters": [], "scripts": ["any", "` + strings.Repeat("ab", 32) + `"]}`, "stands alone"},
		{"a bad pin", `{"trainers": [], "workflows": [], "filters": [], "scripts": ["abc"]}`, "scripts[0]"},
		{"oversized", `{"trainers": [` + strings.Repeat(" ", 70<<10) + `]}`, "bytes"},
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
