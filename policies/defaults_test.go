package policies

import (
	"encoding/json"
	"io/fs"
	"slices"
	"testing"
)

func TestDefaultsAreTheJSONOnly(t *testing.T) {
	entries, err := fs.ReadDir(Defaults(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			t.Errorf("%s is not a regular file", e.Name())
		}
		got = append(got, e.Name())
	}
	want := []string{"authorization.json", "components.json", "privacy.json", "resources.json"}
	if !slices.Equal(got, want) {
		t.Fatalf("Defaults() holds %v, want %v (README.md must not be embedded)", got, want)
	}
}

func TestDefaultContents(t *testing.T) {

	var authz struct {
		FormatVersion string                     `json:"format_version"`
		Permissions   map[string]json.RawMessage `json:"permissions"`
	}
	readJSON(t, "authorization.json", &authz)
	if authz.FormatVersion != "1.0" {
		t.Errorf("format_version = %q, want 1.0", authz.FormatVersion)
	}
	var all string
	if err := json.Unmarshal(authz.Permissions["project_admin"], &all); err != nil || all != "any" {
		t.Errorf("project_admin = %s, want \"any\"", authz.Permissions["project_admin"])
	}
	tests := []struct {
		role  string
		right string
		want  string
	}{
		{"org_admin", "submit_job", "none"},
		{"org_admin", "clone_job", "none"},
		{"org_admin", "manage_job", "o:submitter"},
		{"org_admin", "download_job", "o:submitter"},
		{"org_admin", "view", "any"},
		{"org_admin", "operate", "o:site"},
		{"org_admin", "shell_commands", "o:site"},
		{"org_admin", "byoc", "none"},
		{"lead", "submit_job", "any"},
		{"lead", "clone_job", "n:submitter"},
		{"lead", "manage_job", "n:submitter"},
		{"lead", "download_job", "n:submitter"},
		{"lead", "view", "any"},
		{"lead", "operate", "o:site"},
		{"lead", "shell_commands", "o:site"},
		{"lead", "byoc", "any"},
		{"member", "view", "any"},
	}
	for _, tt := range tests {
		var rights map[string]string
		if err := json.Unmarshal(authz.Permissions[tt.role], &rights); err != nil {
			t.Fatalf("%s: %v", tt.role, err)
		}
		if rights[tt.right] != tt.want {
			t.Errorf("%s.%s = %q, want %q", tt.role, tt.right, rights[tt.right], tt.want)
		}
	}
	var member map[string]string
	_ = json.Unmarshal(authz.Permissions["member"], &member)
	if len(member) != 1 {
		t.Errorf("member holds %v, want view only", member)
	}

	var privacy struct {
		Scopes []struct {
			Name              string `json:"name"`
			TaskDataFilters   []any  `json:"task_data_filters"`
			TaskResultFilters []any  `json:"task_result_filters"`
		} `json:"scopes"`
		DefaultScope string `json:"default_scope"`
	}
	readJSON(t, "privacy.json", &privacy)
	if privacy.DefaultScope != "public" || len(privacy.Scopes) != 2 ||
		privacy.Scopes[0].Name != "public" || privacy.Scopes[1].Name != "private" {
		t.Errorf("privacy.json = %+v, want scopes public and private, default public", privacy)
	}
	for _, s := range privacy.Scopes {
		if s.TaskDataFilters == nil || s.TaskResultFilters == nil || len(s.TaskDataFilters)+len(s.TaskResultFilters) != 0 {
			t.Errorf("scope %s: want empty filter lists, got %+v", s.Name, s)
		}
	}

	var res map[string]int
	readJSON(t, "resources.json", &res)
	if v, ok := res["num_of_gpus"]; !ok || v != 0 {
		t.Errorf("num_of_gpus = %v", res)
	}
	if v, ok := res["mem_per_gpu_in_GiB"]; !ok || v != 0 {
		t.Errorf("mem_per_gpu_in_GiB = %v", res)
	}
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := fs.ReadFile(Defaults(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
