package privacy_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/policies"
	"github.com/hearthfl/hearth/policies/privacy"
)

// Golden files, testdata/*.txt, one subtest each. A file is a policy, a
// separator line "---", then what is expected of it:
//
//	# comment lines are allowed anywhere; blank lines are skipped
//	default            (or "file NAME.json", or the literal privacy.json text)
//	---
//	scope NAME => ok: TEXT       the scope Policy.Scope(NAME) decides; TEXT is its String()
//	scope NAME => error: TEXT    Scope refuses, with TEXT in the error
//	refused: TEXT                the policy does not parse, with TEXT in the error
//
// "default" is package policies' default privacy.json, which provisioning
// writes into every kit. NAME "-" is "" (the job names no scope); a NAME
// written as a Go string may hold spaces.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runGolden(t, file) })
	}
}

func runGolden(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	policyText, expected, ok := strings.Cut(string(data), "\n---\n")
	if !ok {
		t.Fatalf("%s: no separator line \"---\"", file)
	}
	p, perr := parseGoldenPolicy(t, policyText)
	base := strings.Count(policyText, "\n") + 2
	n := 0
	for i, line := range strings.Split(expected, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		where := file + ":" + strconv.Itoa(base+i)
		if want, ok := strings.CutPrefix(line, "refused:"); ok {
			want = strings.TrimSpace(want)
			if perr == nil || !strings.Contains(perr.Error(), want) {
				t.Errorf("%s: parse error %v, want one containing %q", where, perr, want)
			}
			continue
		}
		if perr != nil {
			t.Fatalf("%s: policy: %v", where, perr)
		}
		name, verdict := parseGoldenScope(t, where, line)
		s, err := p.Scope(name)
		switch {
		case strings.HasPrefix(verdict, "ok:"):
			want := strings.TrimSpace(strings.TrimPrefix(verdict, "ok:"))
			if err != nil || s.String() != want {
				t.Errorf("%s: Scope(%q) = %v, %v\n  want %s", where, name, s, err, want)
			}
		case strings.HasPrefix(verdict, "error:"):
			want := strings.TrimSpace(strings.TrimPrefix(verdict, "error:"))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Scope(%q) = %v, %v; want an error containing %q", where, name, s, err, want)
			}
		default:
			t.Fatalf("%s: %q: want \"=> ok: ...\" or \"=> error: ...\"", where, line)
		}
	}
	if n == 0 {
		t.Fatalf("%s: nothing expected", file)
	}
}

func parseGoldenPolicy(t *testing.T, text string) (*privacy.Policy, error) {
	t.Helper()
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	text = strings.TrimSpace(strings.Join(kept, "\n"))
	if text == "default" {
		data, err := fs.ReadFile(policies.Defaults(), "privacy.json")
		if err != nil {
			t.Fatal(err)
		}
		return privacy.Parse(data)
	}
	if name, ok := strings.CutPrefix(text, "file "); ok {
		return privacy.ParseFile(filepath.Join("testdata", name))
	}
	return privacy.Parse([]byte(text))
}

func parseGoldenScope(t *testing.T, where, line string) (name, verdict string) {
	t.Helper()
	rest, ok := strings.CutPrefix(line, "scope ")
	lhs, rhs, ok2 := strings.Cut(rest, "=>")
	if !ok || !ok2 {
		t.Fatalf("%s: %q: want \"scope NAME => ...\"", where, line)
	}
	name = strings.TrimSpace(lhs)
	if strings.HasPrefix(name, `"`) {
		var err error
		if name, err = strconv.Unquote(name); err != nil {
			t.Fatalf("%s: %q: %v", where, line, err)
		}
	} else if name == "-" {
		name = ""
	}
	return name, strings.TrimSpace(rhs)
}

func TestParseRefuses(t *testing.T) {
	// scope wraps a scope's JSON into a policy.
	scope := func(s string) string { return `{"scopes": [` + s + `]}` }
	// result wraps a result filter into a scope named s.
	result := func(f string) string { return scope(`{"name": "s", "task_result_filters": [` + f + `]}`) }
	const f0 = "scopes[0].task_result_filters[0]"
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		doc  string
		path string // the ParseError's Path
		msg  string // part of its message
	}{
		{"not UTF-8", "{\"scopes\": [{\"name\": \"\xff\"}]}", "", "not valid UTF-8"},
		{"not an object", `[]`, "", "as a JSON object, got a list"},
		{"comments", "# site policy\n{}", "", "without comments"},
		{"trailing data", `{"scopes": [{"name": "a"}]} {}`, "", "trailing data"},
		{"truncated", `{"scopes": [{"name": "a"}`, "scopes", "unexpected end of input"},
		{"duplicate top-level key", `{"scopes": [{"name": "a"}], "scopes": []}`, "", `duplicate key "scopes"`},
		{"duplicate key in args", result(`{"path": "percentile_privacy", "args": {"gamma": 1, "gamma": -1}}`), f0 + ".args", `duplicate key "gamma"`},
		{"too deep", scope(`{"name": "a", "properties": {"x": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`), "scopes[0].properties.x" + strings.Repeat("[0]", 29), "nested deeper than 32"},
		{"huge number", scope(`{"name": "a", "properties": {"x": 1e400}}`), "scopes[0].properties.x", "out of range"},
		{"lone surrogate", scope(`{"name": "\ud800"}`), "scopes[0].name", "lone surrogate"},
		{"no scopes key", `{"default_scope": "a"}`, "", "missing scopes"},
		{"empty scopes", `{"scopes": []}`, "scopes", "no scopes"},
		{"scopes not a list", `{"scopes": {}}`, "scopes", "want a list of scopes"},
		{"unknown top-level key", `{"scopes": [{"name": "a"}], "format_version": 2}`, "format_version", "unknown top-level key"},
		{"components", `{"scopes": [{"name": "a"}], "components": []}`, "components", "not supported"},
		{"default not a scope", `{"scopes": [{"name": "a"}], "default_scope": "b"}`, "default_scope", `"b" is not one of the scopes`},
		{"empty default", `{"scopes": [{"name": "a"}], "default_scope": ""}`, "default_scope", "leave default_scope out"},
		{"default not a string", `{"scopes": [{"name": "a"}], "default_scope": null}`, "default_scope", "got null"},
		{"scope without name", scope(`{"task_data_filters": []}`), "scopes[0]", "has no name"},
		{"empty name", scope(`{"name": ""}`), "scopes[0].name", "1 to 128 bytes"},
		{"name not a string", scope(`{"name": 7}`), "scopes[0].name", "got a number"},
		{"name with a newline", scope(`{"name": "a\nb"}`), "scopes[0].name", "does not print"},
		{"duplicate scope", scope(`{"name": "a"}, {"name": "b"}, {"name": "a"}`), "scopes[2].name", `duplicate scope "a" (also scopes[0])`},
		{"unknown scope key", scope(`{"name": "a", "filters": []}`), "scopes[0].filters", "unknown key in a scope"},
		{"properties not an object", scope(`{"name": "a", "properties": []}`), "scopes[0].properties", "as an object"},
		{"budget not an object", scope(`{"name": "a", "properties": {"dp_budget": 8}}`), "scopes[0].properties.dp_budget", `want {"epsilon": E, "delta": D}`},
		{"budget without delta", scope(`{"name": "a", "properties": {"dp_budget": {"epsilon": 8}}}`), "scopes[0].properties.dp_budget", "want both"},
		{"budget epsilon zero", scope(`{"name": "a", "properties": {"dp_budget": {"epsilon": 0, "delta": 1e-5}}}`), "scopes[0].properties.dp_budget.epsilon", "0 is not a finite positive number"},
		{"budget delta one", scope(`{"name": "a", "properties": {"dp_budget": {"epsilon": 1, "delta": 1}}}`), "scopes[0].properties.dp_budget.delta", "below 1"},
		{"budget delta a string", scope(`{"name": "a", "properties": {"dp_budget": {"epsilon": 1, "delta": "1e-5"}}}`), "scopes[0].properties.dp_budget.delta", "want a number"},
		{"budget unknown key", scope(`{"name": "a", "properties": {"dp_budget": {"epsilon": 1, "delta": 0.1, "rounds": 3}}}`), "scopes[0].properties.dp_budget.rounds", "unknown key"},
		{"filters not a list", scope(`{"name": "s", "task_data_filters": {}}`), "scopes[0].task_data_filters", "want a list of filters"},
		{"too many filters", scope(`{"name": "s", "task_data_filters": [` + strings.Repeat(`{"path": "quantize", "args": {"codec": "float16"}},`, 64) + `{"path": "quantize", "args": {"codec": "float16"}}]}`), "scopes[0].task_data_filters", "65 filters, at most 64"},
		{"filter not an object", result(`"percentile_privacy"`), f0, "as an object"},
		{"filter without path", result(`{"args": {}}`), f0, "has no path"},
		{"unknown filter", result(`{"path": "custom_filters.BadModelDetector"}`), f0 + ".path", `unknown filter "custom_filters.BadModelDetector": Hearth runs only its built-in filters: exclude_vars,`},
		{"FLARE filter by class name", result(`{"path": "PercentilePrivacy"}`), f0 + ".path", "unknown filter"},
		{"built-in name in another case", result(`{"path": "Percentile_Privacy"}`), f0 + ".path", "unknown filter"},
		{"FLARE name form", result(`{"name": "PercentilePrivacy"}`), f0 + ".name", "unknown key in a filter"},
		{"direction the other way", result(`{"path": "percentile_privacy", "direction": "in"}`), f0 + ".direction", `want "out"`},
		{"direction inout", scope(`{"name": "s", "task_data_filters": [{"path": "quantize", "args": {"codec": "float16"}, "direction": "inout"}]}`), "scopes[0].task_data_filters[0].direction", `want "in"`},
		{"args not an object", result(`{"path": "percentile_privacy", "args": [10]}`), f0 + ".args", "as an object"},
		{"unknown arg", result(`{"path": "percentile_privacy", "args": {"percentil": 10}}`), f0 + `.args.percentil`, `percentile_privacy takes no argument "percentil" (it takes percentile, gamma, steps)`},
		{"data_kinds", result(`{"path": "percentile_privacy", "args": {"data_kinds": ["WEIGHT_DIFF"]}}`), f0 + ".args.data_kinds", "always work on the update's diff"},
		{"svt override", result(`{"path": "svt_privacy", "args": {"epsilon_release": 1}}`), f0 + ".args.epsilon_release", "standard budget split"},
		{"number as a string", result(`{"path": "percentile_privacy", "args": {"gamma": "0.01"}}`), f0 + ".args.gamma", "want a number, got a string"},
		{"boolean as a number", result(`{"path": "percentile_privacy", "args": {"percentile": true}}`), f0 + ".args.percentile", "want a number, got a boolean"},
		// FLARE would return the update unfiltered.
		{"gamma zero", result(`{"path": "percentile_privacy", "args": {"gamma": 0}}`), f0 + ".args.gamma", "0 is not a finite positive number"},
		{"percentile above 100", result(`{"path": "nvflare.app_common.filters.percentile_privacy.PercentilePrivacy", "args": {"percentile": 101}}`), f0 + ".args.percentile", "from 0 to 100"},
		{"steps fractional", result(`{"path": "percentile_privacy", "args": {"steps": 1.5}}`), f0 + ".args.steps", "want a whole number, got 1.5"},
		{"steps zero", result(`{"path": "svt_privacy", "args": {"steps": 0}}`), f0 + ".args.steps", "not a whole number from 1"},
		{"svt fraction zero", result(`{"path": "svt_privacy", "args": {"fraction": 0}}`), f0 + ".args.fraction", "above 0"},
		{"svt replace a string", result(`{"path": "svt_privacy", "args": {"replace": "yes"}}`), f0 + ".args.replace", "want true or false"},
		{"svt tau negative", result(`{"path": "svt_privacy", "args": {"tau": -1e-6}}`), f0 + ".args.tau", "at least 0"},
		{"gaussian without args", result(`{"path": "gaussian_privacy"}`), f0 + ".args.noise_multiplier", "missing"},
		{"gaussian without clip", result(`{"path": "gaussian_privacy", "args": {"noise_multiplier": 1}}`), f0 + ".args.clip_norm", "missing"},
		{"gaussian sigma zero", result(`{"path": "gaussian_privacy", "args": {"noise_multiplier": 0, "clip_norm": 1}}`), f0 + ".args.noise_multiplier", "is not a number from"},
		{"quantize without codec", result(`{"path": "quantize"}`), f0 + ".args.codec", "missing"},
		{"quantize unknown codec", result(`{"path": "quantize", "args": {"codec": "blockwise8"}}`), f0 + ".args.codec", `"blockwise8" is not a codec`},
		// FLARE's ExcludeVars would silently exclude nothing.
		{"exclude without args", result(`{"path": "nvflare.app_common.filters.exclude_vars.ExcludeVars", "args": {}}`), f0 + ".args.exclude_vars", "missing"},
		{"exclude empty pattern", result(`{"path": "exclude_vars", "args": {"exclude_vars": ""}}`), f0 + ".args.exclude_vars", "empty regular expression"},
		{"exclude empty list", result(`{"path": "exclude_vars", "args": {"exclude_vars": []}}`), f0 + ".args.exclude_vars", "names nothing"},
		{"exclude a number", result(`{"path": "exclude_vars", "args": {"exclude_vars": 3}}`), f0 + ".args.exclude_vars", "got a number"},
		{"exclude list of numbers", result(`{"path": "exclude_vars", "args": {"exclude_vars": ["a", 3]}}`), f0 + ".args.exclude_vars[1]", "want a tensor's name"},
		{"plugin not an object", result(`{"plugin": "/opt/f"}`), f0 + ".plugin", `want {"path": "<binary>", "sha256": "<64 hex digits>"}`},
		{"plugin without sha256", result(`{"plugin": {"path": "/opt/f"}}`), f0 + ".plugin", "want both path and sha256"},
		{"plugin short sha256", result(`{"plugin": {"path": "/opt/f", "sha256": "abcd"}}`), f0 + ".plugin.sha256", "64 hex digits"},
		{"plugin empty path", result(`{"plugin": {"path": "", "sha256": "` + sum + `"}}`), f0 + ".plugin.path", "1 to 4096 bytes"},
		{"plugin unknown key", result(`{"plugin": {"path": "/opt/f", "sha256": "` + sum + `", "args": {}}}`), f0 + ".plugin.args", "unknown key in a plugin"},
		{"plugin and path", result(`{"path": "quantize", "plugin": {"path": "/opt/f", "sha256": "` + sum + `"}}`), f0, "either a built-in (path) or a plugin binary (plugin)"},
		{"plugin timeout too short", result(`{"plugin": {"path": "/opt/f", "sha256": "` + sum + `"}, "timeout": "1ms"}`), f0 + ".timeout", "not a duration from 100ms to 30m0s"},
		{"plugin timeout a number", result(`{"plugin": {"path": "/opt/f", "sha256": "` + sum + `"}, "timeout": 60}`), f0 + ".timeout", "want a duration"},
		{"timeout on a built-in", result(`{"path": "percentile_privacy", "timeout": "1s"}`), f0 + ".timeout", "only a plugin filter takes a timeout"},
		{"plugin args not an object", result(`{"plugin": {"path": "/opt/f", "sha256": "` + sum + `"}, "args": [1]}`), f0 + ".args", "as an object"},
		{"plugin args too large", result(`{"plugin": {"path": "/opt/f", "sha256": "` + sum + `"}, "args": {"x": "` + strings.Repeat("a", privacy.MaxPluginArgs) + `"}}`), f0 + ".args", "bytes of arguments, at most"},
		{"exclude Python-only regexp", result(`{"path": "exclude_vars", "args": {"exclude_vars": "(?<=conv)\\.bias"}}`), f0 + ".args.exclude_vars", "Go RE2 syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := privacy.Parse([]byte(tt.doc))
			var pe *privacy.ParseError
			if p != nil || !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want a *ParseError", p, err)
			}
			if pe.Path != tt.path || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error %q\n  path %q, want %q\n  want message containing %q", err, pe.Path, tt.path, tt.msg)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		_, err := privacy.Parse([]byte(`{"scopes": [{"name": "a"}], "x": "` + strings.Repeat("a", privacy.MaxPolicyBytes) + `"}`))
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("range errors unwrap to the filter's", func(t *testing.T) {
		_, err := privacy.Parse([]byte(result(`{"path": "percentile_privacy", "args": {"gamma": -1}}`)))
		var ae *filter.ArgError
		if !errors.As(err, &ae) || !errors.Is(err, filter.ErrArg) || ae.Arg != "gamma" {
			t.Fatalf("err %v", err)
		}
	})
}

func TestParseFileNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "privacy.json")
	if err := os.WriteFile(path, []byte(`{"scopes": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := privacy.ParseFile(path)
	var pe *privacy.ParseError
	if !errors.As(err, &pe) || pe.File != path || !strings.HasPrefix(err.Error(), "privacy: "+path+": scopes: ") {
		t.Fatalf("err %v", err)
	}
	if _, err := privacy.ParseFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestScopeRefuses(t *testing.T) {
	p, err := privacy.Parse([]byte(`{"scopes": [{"name": "public"}, {"name": "private"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name   string
		policy *privacy.Policy
		scope  string
		want   error
		text   string
	}{
		{"unknown scope", p, "secret", privacy.ErrUnknownScope, `scope "secret": the site has no such privacy scope`},
		{"no scope, no default", p, "", privacy.ErrNoDefaultScope, "names no privacy scope"},
		{"no policy", nil, "public", privacy.ErrNoPolicy, "no privacy policy"},
		// A job's text is quoted bounded.
		{"long name", p, long, privacy.ErrUnknownScope, `scope "` + strings.Repeat("x", 64) + `...":`},
		{"case differs", p, "PUBLIC", privacy.ErrUnknownScope, `"PUBLIC"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.policy.Scope(tt.scope)
			if s != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Scope = %v, %v; want %v containing %q", s, err, tt.want, tt.text)
			}
		})
	}
	if got := p.ScopeNames(); len(got) != 2 || got[0] != "public" || got[1] != "private" || p.DefaultScope() != "" {
		t.Errorf("ScopeNames %v, DefaultScope %q", got, p.DefaultScope())
	}
}

func TestScopeProperties(t *testing.T) {
	p, err := privacy.Parse([]byte(`{"scopes": [{"name": "s", "properties": {
		"train_dataset": "/data/train", "dp_budget": {"epsilon": 8, "delta": 1e-5},
		"limits": {"rounds": 1.50, "sites": [1, 2]}}}], "default_scope": "s"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Scope("")
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := s.Budget(); !ok || b != (privacy.Budget{Epsilon: 8, Delta: 1e-5}) {
		t.Errorf("Budget = %v, %v", b, ok)
	}
	if names := s.PropertyNames(); len(names) != 2 || names[0] != "train_dataset" || names[1] != "limits" {
		t.Errorf("PropertyNames = %v (dp_budget is read, not kept)", names)
	}
	for name, want := range map[string]string{"train_dataset": `"/data/train"`, "limits": `{"rounds":1.50,"sites":[1,2]}`} {
		if got, ok := s.Property(name); !ok || string(got) != want {
			t.Errorf("Property(%q) = %s, %v; want %s", name, got, ok, want)
		}
	}
	if _, ok := s.Property("dp_budget"); ok {
		t.Error("dp_budget is also an opaque property")
	}
	p2, _ := privacy.Parse([]byte(`{"scopes": [{"name": "s"}]}`))
	s2, _ := p2.Scope("s")
	if _, ok := s2.Budget(); ok || s2.DataFilters() == nil && len(s2.DataFilters()) != 0 {
		t.Error("a scope without a budget has one")
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{`{"scopes": [{"name": "a"}]}`, `{"scopes": [{"name": "a", "task_result_filters": [{"path": "svt_privacy", "args": {"fraction": 0.5}}]}], "default_scope": "a"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := privacy.Parse(data)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v", p, err)
		}
		if p != nil {
			for _, name := range p.ScopeNames() {
				s, err := p.Scope(name)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := privacy.Chain(s, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// A Scope cannot be changed through what it hands out.
func TestScopeIsImmutable(t *testing.T) {
	p, err := privacy.Parse([]byte(`{"scopes": [{"name": "s", "task_result_filters": [{"path": "exclude_vars", "args": {"exclude_vars": ["secret.weight"]}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := p.Scope("s")
	specs := s.ResultFilters()
	specs[0].Config.(filter.ExcludeVars).Names[0] = "nothing"
	chains, _ := privacy.Chain(s, nil, nil)
	chains.Result[0].Config.(filter.ExcludeVars).Names[0] = "nothing"
	if got := s.ResultFilters()[0].Config.(filter.ExcludeVars).Names[0]; got != "secret.weight" {
		t.Fatalf("the scope now excludes %q", got)
	}
}
