package filter_test

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/filter"
	"github.com/hearthfl/hearth/policies/privacy"
)

// TestSiteRunsItsPolicysPlugins: a site's privacy.json names the test
// filter in two scopes (by a path relative to the kit, and pinned with a
// wrong hash); the site opens, its chain in the first scope runs the
// plugin first and scales the update, its chain in the second is refused
// with the checksum reason, and a link the policy does not hold is
// refused.
func TestSiteRunsItsPolicysPlugins(t *testing.T) {
	kit := t.TempDir()
	if err := os.MkdirAll(filepath.Join(kit, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kit, "bin", "hearth-filter-test"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(binSum[:])
	wrong := strings.Repeat("01", 32)
	pol, err := privacy.Parse([]byte(`{"scopes": [
	  {"name": "own", "task_result_filters": [
	    {"plugin": {"path": "bin/hearth-filter-test", "sha256": "` + sum + `"}, "timeout": "10s", "args": {"mode": "scale", "factor": 0.5}}]},
	  {"name": "tampered", "task_result_filters": [
	    {"plugin": {"path": "` + bin + `", "sha256": "` + wrong + `"}, "args": {"mode": "noop"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	site, err := filter.OpenSite(t.Context(), filter.SiteConfig{Policy: pol, KitDir: kit, WorkDir: t.TempDir(), ShmDir: t.TempDir(), Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	if probs := site.Problems(); len(probs) != 1 || !errors.Is(probs[0], plugins.ErrChecksum) || !strings.Contains(probs[0].Error(), `scope "tampered"`) {
		t.Fatalf("Problems() = %v, want the tampered scope's checksum", probs)
	}

	own, _ := pol.Scope("own")
	job, _ := privacy.ParseFilters("filters", []any{map[string]any{"path": "quantize", "args": map[string]any{"codec": "float32"}}})
	chains, err := privacy.Chain(own, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := privacy.Build(chains.Result, site)
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Name() != filter.NamePlugin || fs[0].Params()["plugin.sha256"] != sum {
		t.Fatalf("first filter %s %v, want the site's plugin", fs[0].Name(), fs[0].Params())
	}
	global, local := models()
	out, rep, err := learnfilter.RunChain(fs, global, local)
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range out.Tensors {
		for j, v := range ts.Data {
			g, l := float64(global.Tensors[i].Data[j]), float64(local.Tensors[i].Data[j])
			if want := float32(g + 0.5*(l-g)); v != want {
				t.Errorf("%s[%d] = %v, want %v", ts.Name, j, v, want)
			}
		}
	}
	if len(rep.Reports) != 2 || rep.Reports[0].Filter != filter.NamePlugin {
		t.Errorf("reports %v", rep.Reports)
	}

	tampered, _ := pol.Scope("tampered")
	chains, _ = privacy.Chain(tampered, nil, nil)
	if _, err := privacy.Build(chains.Result, site); !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("Build in the tampered scope: %v, want %v", err, plugins.ErrChecksum)
	}
	forged := chains.Result[0]
	forged.Plugin = forged.Plugin.Clone()
	forged.Plugin.SHA256 = binSum
	if _, err := site.Filter(forged); err == nil || !strings.Contains(err.Error(), "not a plugin entry") {
		t.Fatalf("a link with another pin than the policy's: %v", err)
	}
	if err := site.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := site.Filter(chains.Result[0]); err == nil {
		t.Fatal("Filter after Close")
	}
}
