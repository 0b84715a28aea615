package privacy_test

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/policies/privacy"
)

// The site's scope clips hard (percentile privacy, gamma 0.01); the job
// asks for a much weaker clip of its own (gamma 1) and would like no site
// filter at all. The chain runs the site's filter first and the job's
// after it, so the job's cannot loosen anything: every value leaves within
// the site's gamma.
const sitePolicy = `{
  "scopes": [
    {"name": "private",
     "task_data_filters": [{"path": "quantize", "args": {"codec": "float16"}}],
     "task_result_filters": [
       {"path": "nvflare.app_common.filters.exclude_vars.ExcludeVars", "args": {"exclude_vars": "^embedding$"}},
       {"path": "nvflare.app_common.filters.percentile_privacy.PercentilePrivacy", "args": {"percentile": 0, "gamma": 0.01}}
     ]}
  ],
  "default_scope": "private"
}`

// The job's manifest, as YAML.
const jobYAML = `
filters:
  task_result_filters:
    - path: percentile_privacy
      args: {percentile: 0, gamma: 1}
    - path: quantize
      args: {codec: bfloat16}
  task_data_filters: []
`

func jobFilters(t *testing.T) (result, data []privacy.FilterSpec) {
	t.Helper()
	var manifest struct {
		Filters map[string]any `yaml:"filters"`
	}
	if err := yaml.Unmarshal([]byte(jobYAML), &manifest); err != nil {
		t.Fatal(err)
	}
	result, err := privacy.ParseFilters("filters.task_result_filters", manifest.Filters["task_result_filters"])
	if err != nil {
		t.Fatal(err)
	}
	data, err = privacy.ParseFilters("filters.task_data_filters", manifest.Filters["task_data_filters"])
	if err != nil {
		t.Fatal(err)
	}
	return result, data
}

func TestChainSiteFiltersFirst(t *testing.T) {
	p, err := privacy.Parse([]byte(sitePolicy))
	if err != nil {
		t.Fatal(err)
	}
	scope, err := p.Scope("")
	if err != nil {
		t.Fatal(err)
	}
	jobResult, jobData := jobFilters(t)
	chains, err := privacy.Chain(scope, jobResult, jobData)
	if err != nil {
		t.Fatal(err)
	}

	// The order and the parameters, as the audit records them.
	want := []string{
		`site scope "private" [0] exclude_vars{exclude_vars=^embedding$ match=regexp}`,
		`site scope "private" [1] percentile_privacy{gamma=0.01 percentile=0 steps=1}`,
		`job [0] percentile_privacy{gamma=1 percentile=0 steps=1}`,
		`job [1] quantize{codec=bfloat16}`,
	}
	if len(chains.Result) != len(want) {
		t.Fatalf("result chain %v", chains.Result)
	}
	for i, l := range chains.Result {
		if l.String() != want[i] {
			t.Errorf("result[%d] = %s\n  want %s", i, l, want[i])
		}
	}
	if chains.Scope != "private" || len(chains.Data) != 1 || chains.Data[0].Origin != privacy.OriginSite || chains.Data[0].Name != filter.NameQuantize {
		t.Errorf("data chain %v", chains.Data)
	}
	if chains.Result[0].Path != "nvflare.app_common.filters.exclude_vars.ExcludeVars" || chains.Result[0].Origin != privacy.OriginSite || chains.Result[2].Origin != privacy.OriginJob {
		t.Errorf("links %+v", chains.Result)
	}

	// Run it: the site's reports come first, and the job's weaker clip
	// gets only what the site's clip let through.
	fs, err := privacy.Build(chains.Result, nil, filter.WithSeed([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	global := &model.Model{Tensors: []model.Tensor{
		{Name: "embedding", Shape: []int{2}, Data: []float32{1, 1}},
		{Name: "w", Shape: []int{3}, Data: []float32{0, 0, 0}},
	}}
	local := &model.Model{Tensors: []model.Tensor{
		{Name: "embedding", Shape: []int{2}, Data: []float32{5, -3}},
		{Name: "w", Shape: []int{3}, Data: []float32{0.5, -0.25, 0.005}},
	}}
	out, rep, err := filter.RunChain(fs, global, local)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rep.Reports {
		if r.Filter != chains.Result[i].Name {
			t.Errorf("report %d is %s's, want %s's", i, r.Filter, chains.Result[i].Name)
		}
	}
	if g := rep.Reports[1]; g.Clipped != 2 {
		t.Errorf("the site's percentile clipped %d values, want 2", g.Clipped)
	}
	if j := rep.Reports[2]; j.Clipped != 0 {
		t.Errorf("the job's percentile clipped %d values after the site's, want 0", j.Clipped)
	}
	if out.Tensors[0].Data[0] != 1 || out.Tensors[0].Data[1] != 1 || !rep.Mask[0] {
		t.Errorf("embedding left the site: %v", out.Tensors[0].Data)
	}
	for j, v := range out.Tensors[1].Data {
		if math.Abs(float64(v)) > 0.01*1.01 { // bfloat16 rounds by at most 2^-8
			t.Errorf("w[%d] = %v leaves beyond the site's gamma 0.01", j, v)
		}
	}
}

func TestChainRefusesForgedJobFilters(t *testing.T) {
	p, _ := privacy.Parse([]byte(sitePolicy))
	scope, _ := p.Scope("private")
	tests := []struct {
		name string
		spec privacy.FilterSpec
	}{
		{"unknown path", privacy.FilterSpec{Name: "percentile_privacy", Path: "my.Filter", Config: filter.DefaultPercentile()}},
		{"name and config disagree", privacy.FilterSpec{Name: "quantize", Path: "quantize", Config: filter.DefaultPercentile()}},
		{"no config", privacy.FilterSpec{Name: "quantize", Path: "quantize"}},
		{"out of range", privacy.FilterSpec{Name: "percentile_privacy", Path: "percentile_privacy", Config: filter.Percentile{Percentile: 10, Gamma: -1, Steps: 1}}},
		{"a plugin", privacy.FilterSpec{Name: privacy.NamePlugin, Path: "/tmp/evil", Plugin: &privacy.PluginFilter{Path: "/tmp/evil", Timeout: time.Second, Args: []byte("{}"), Direction: "out"}}},
		{"a plugin posing as a built-in", privacy.FilterSpec{Name: "quantize", Path: "quantize", Config: filter.Quantize{Codec: "float16"}, Plugin: &privacy.PluginFilter{Path: "/tmp/evil", Timeout: time.Second, Direction: "out"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := privacy.Chain(scope, []privacy.FilterSpec{tt.spec}, nil); err == nil {
				t.Fatalf("Chain accepted %v", c.Result)
			}
		})
	}
	if _, err := privacy.Chain(nil, nil, nil); err == nil {
		t.Error("Chain without a scope")
	}
	many := make([]privacy.FilterSpec, privacy.MaxFilters+1)
	for i := range many {
		many[i] = privacy.FilterSpec{Name: "quantize", Path: "quantize", Config: filter.Quantize{Codec: "float16"}}
	}
	if _, err := privacy.Chain(scope, nil, many); err == nil {
		t.Error("Chain took more than MaxFilters job filters")
	}
}

func TestParseFilters(t *testing.T) {
	tests := []struct {
		name string
		json string // decoded with encoding/json into any (numbers as float64)
		want []string
		err  string // part of the error, with its path
	}{
		{"empty", `[]`, nil, ""},
		{"every form", `[{"path": "svt_privacy", "args": {"steps": 3, "replace": false}}, {"path": "nvflare.app_common.filters.ExcludeVars", "args": {"exclude_vars": ["a"]}}]`,
			[]string{"svt_privacy{epsilon=0.1 fraction=0.1 gamma=1e-05 noise_var=0.1 replace=false steps=3 tau=1e-06}", `exclude_vars{exclude_vars=["a"] match=names}`}, ""},
		{"not a list", `{"path": "quantize"}`, nil, "job.filters: want a list of filters"},
		{"null", `null`, nil, "job.filters: want a list of filters ({\"path\": ..., \"args\": {...}}), got null"},
		{"direction", `[{"path": "quantize", "args": {"codec": "float16"}, "direction": "out"}]`, nil, "job.filters[0].direction: a job's filter names no direction"},
		{"unknown filter", `[{"path": "my_filters.Noise"}]`, nil, `job.filters[0].path: unknown filter "my_filters.Noise"`},
		{"bad arg", `[{"path": "gaussian_privacy", "args": {"noise_multiplier": 1, "clip_norm": -2}}]`, nil, "job.filters[0].args.clip_norm: -2 is not a finite positive number"},
		{"a plugin", `[{"plugin": {"path": "/tmp/evil", "sha256": "` + strings.Repeat("00", 32) + `"}}]`, nil, "job.filters[0].plugin: a job cannot load a plugin binary: only the site's own privacy.json may name one"},
		{"a plugin's timeout", `[{"path": "quantize", "args": {"codec": "float16"}, "timeout": "1h"}]`, nil, "job.filters[0].timeout: a job cannot load a plugin binary"},
		{"the plugin name as a path", `[{"path": "plugin"}]`, nil, `job.filters[0].path: unknown filter "plugin"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.json), &v); err != nil {
				t.Fatal(err)
			}
			specs, err := privacy.ParseFilters("job.filters", v)
			if tt.err != "" {
				var pe *privacy.ParseError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want a *ParseError containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != len(tt.want) {
				t.Fatalf("got %v, want %v", specs, tt.want)
			}
			for i := range specs {
				if specs[i].String() != tt.want[i] {
					t.Errorf("[%d] = %s, want %s", i, specs[i], tt.want[i])
				}
			}
		})
	}
	t.Run("Go values", func(t *testing.T) {
		// As yaml.v3 or a caller builds them: ints, uint64, json.Number,
		// map[any]any.
		v := []any{
			map[any]any{"path": "percentile_privacy", "args": map[string]any{"percentile": uint64(20), "gamma": json.Number("0.5"), "steps": int32(2)}},
		}
		specs, err := privacy.ParseFilters("f", v)
		if err != nil || len(specs) != 1 || specs[0].String() != "percentile_privacy{gamma=0.5 percentile=20 steps=2}" {
			t.Fatalf("got %v, %v", specs, err)
		}
		for _, bad := range []any{
			[]any{map[any]any{1: "x"}},
			[]any{map[string]any{"path": "quantize", "args": map[string]any{"codec": struct{}{}}}},
			[]any{map[string]any{"path": "percentile_privacy", "args": map[string]any{"gamma": math.NaN()}}},
		} {
			if _, err := privacy.ParseFilters("f", bad); err == nil {
				t.Errorf("ParseFilters(%v) succeeded", bad)
			}
		}
	})
}

// TestPluginEntries: a site's plugin entry parses into a FilterSpec that
// names the binary, its pin, its deadline, its arguments and its list's
// direction; a chain puts it first, as the site wrote it; Build refuses
// it without a plugin host, and refuses a job's link that carries one.
func TestPluginEntries(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	p, err := privacy.Parse([]byte(`{"scopes": [{"name": "own",
	  "task_data_filters": [{"plugin": {"path": "bin/hearth-filter-clip", "sha256": "` + sum + `"}, "direction": "in"}],
	  "task_result_filters": [
	    {"plugin": {"path": "/opt/hearth/hearth-filter-clip", "sha256": "` + strings.ToUpper(sum) + `"}, "timeout": "2m", "args": {"max_abs": 0.5, "names": ["a", "b"]}},
	    {"path": "quantize", "args": {"codec": "float16"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	scope, _ := p.Scope("own")
	job, err := privacy.ParseFilters("filters", []any{map[string]any{"path": "percentile_privacy"}})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := privacy.Chain(scope, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains.Result) != 3 || len(chains.Data) != 1 {
		t.Fatalf("chains %v", chains)
	}
	out, in := chains.Result[0], chains.Data[0]
	if out.Name != privacy.NamePlugin || out.Plugin == nil || out.Origin != privacy.OriginSite || out.Index != 0 || out.Config != nil {
		t.Fatalf("result link %+v, want the site's plugin first", out)
	}
	want := map[string]string{"plugin.path": "/opt/hearth/hearth-filter-clip", "plugin.sha256": sum, "timeout": "2m0s", "args": `{"max_abs":0.5,"names":["a","b"]}`}
	if got := out.Plugin.Params(); !maps.Equal(got, want) {
		t.Errorf("params %v, want %v", got, want)
	}
	if out.Plugin.Direction != privacy.DirectionOut || in.Plugin.Direction != privacy.DirectionIn {
		t.Errorf("directions %q and %q", out.Plugin.Direction, in.Plugin.Direction)
	}
	if in.Plugin.Timeout != privacy.DefaultPluginTimeout || string(in.Plugin.Args) != "{}" || in.Plugin.Path != "bin/hearth-filter-clip" {
		t.Errorf("the data filter's defaults: %+v", in.Plugin)
	}
	if s := out.String(); !strings.HasPrefix(s, `site scope "own" [0] plugin{args={"max_abs":0.5`) || !strings.Contains(s, "plugin.sha256="+sum) {
		t.Errorf("String() = %s", s)
	}
	if _, err := privacy.Build(chains.Result, nil); !errors.Is(err, privacy.ErrNoPluginHost) {
		t.Errorf("Build without a plugin host: %v, want %v", err, privacy.ErrNoPluginHost)
	}
	forged := out
	forged.Origin = privacy.OriginJob
	if _, err := privacy.Build([]privacy.Link{forged}, nil); err == nil || !strings.Contains(err.Error(), "a job cannot load a plugin binary") {
		t.Errorf("Build of a job's plugin link: %v", err)
	}
	scope.ResultFilters()[0].Plugin.Args[0] = 'X'
	if got := scope.ResultFilters()[0].Plugin.Args[0]; got != '{' {
		t.Error("the scope's plugin entry changed through a copy")
	}
}
