package participant

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	pluginfilter "github.com/hearthfl/hearth/plugins/filter"
	"github.com/hearthfl/hearth/policies/privacy"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// records is an audit log in memory.
type records struct {
	mu     sync.Mutex
	events []auditor.Event
}

func (r *records) Append(e auditor.Event) (auditor.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return auditor.Record{}, nil
}

func (r *records) of(action string) []auditor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []auditor.Event
	for _, e := range r.events {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// TestSitePluginFilter: a site's own filter, the real test plugin binary
// its privacy.json pins, runs first in the job's chain on the update
// leaving the site and is audited with its pin and arguments; a plugin
// that crashes, or hangs past its deadline, refuses the update (nothing
// leaves) and the refusal is audited; a job naming a plugin filter in its
// manifest is refused when it is parsed.
func TestSitePluginFilter(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hearth-filter-test")
	build := exec.Command("go", "build", "-o", bin, "github.com/hearthfl/hearth/plugins/filter/internal/testfilter/cmd/hearth-filter-test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(raw)
	sum := hex.EncodeToString(s[:])
	entry := func(args string) string {
		return `{"plugin": {"path": "` + bin + `", "sha256": "` + sum + `"}, "timeout": "1s", "args": ` + args + `}`
	}
	pol, err := privacy.Parse([]byte(`{"scopes": [
	  {"name": "own", "task_result_filters": [` + entry(`{"mode": "scale", "factor": 0.5}`) + `]},
	  {"name": "crashing", "task_result_filters": [` + entry(`{"mode": "crash"}`) + `]},
	  {"name": "hanging", "task_result_filters": [` + entry(`{"mode": "hang"}`) + `]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	site, err := pluginfilter.OpenSite(t.Context(), pluginfilter.SiteConfig{Policy: pol, WorkDir: dir, ShmDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	rec := &records{}
	p := &Participant{cfg: Config{Privacy: pol, FilterPlugins: site, Audit: rec}}
	global := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{3}, Data: []float32{1, 2, 3}}}}
	update := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{3}, Data: []float32{2, 2, 0}}}}

	t.Run("applied and audited", func(t *testing.T) {
		j := &joined{manifest: &job.Manifest{PrivacyScope: "own"}}
		if err := p.setupScope(j); err != nil {
			t.Fatal(err)
		}
		out, err := p.filterUpdate(j, "job-1", 1, global, update)
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Tensors[0].Data; got[0] != 1.5 || got[1] != 2 || got[2] != 1.5 {
			t.Fatalf("filtered %v, want the diff halved: [1.5 2 1.5]", got)
		}
		ev := rec.of("privacy.filtered")
		if len(ev) != 1 {
			t.Fatalf("audited %v", ev)
		}
		d := ev[0].Detail
		if d["filter"] != "plugin" || d["from"] != "site" || d["arg.plugin.sha256"] != sum || d["arg.plugin.path"] != bin || d["arg.args"] != `{"mode":"scale","factor":0.5}` {
			t.Fatalf("audit detail %v, want the plugin's pin and arguments", d)
		}
	})
	t.Run("a streamed update is written into its kept buffer", func(t *testing.T) {
		j := &joined{manifest: &job.Manifest{PrivacyScope: "own"}}
		if err := p.setupScope(j); err != nil {
			t.Fatal(err)
		}
		defer j.updates.Close()
		var kept *float32
		for round := int64(1); round <= 2; round++ {
			buf, err := p.streamedUpdate(j, "job-1", round, global, update)
			if err != nil {
				t.Fatal(err)
			}
			if round == 2 && &buf.Data[0] != kept {
				t.Error("round 2 got a new buffer, not the one kept from round 1")
			}
			kept = &buf.Data[0]
			if got := buf.Data; got[0] != 1.5 || got[1] != 2 || got[2] != 1.5 {
				t.Fatalf("round %d: streamed %v, want the diff halved: [1.5 2 1.5]", round, got)
			}
			j.updates.Put(buf)
		}
		if n := len(rec.of("privacy.filtered")); n != 3 {
			t.Fatalf("%d filters audited, want one a round", n)
		}
	})
	t.Run("a streamed update refused leaves nothing to send", func(t *testing.T) {
		j := &joined{manifest: &job.Manifest{PrivacyScope: "crashing"}}
		if err := p.setupScope(j); err != nil {
			t.Fatal(err)
		}
		defer j.updates.Close()
		buf, err := p.streamedUpdate(j, "job-2", 1, global, update)
		if buf != nil || err == nil || codeOf(err) != hearthv1.FailureCode_FAILURE_CODE_FILTERED {
			t.Fatalf("streamedUpdate = %v, %v; want no buffer and a filtered failure", buf, err)
		}
	})
	for _, scope := range []string{"crashing", "hanging"} {
		t.Run(scope+" refuses the update", func(t *testing.T) {
			j := &joined{manifest: &job.Manifest{PrivacyScope: scope}}
			if err := p.setupScope(j); err != nil {
				t.Fatal(err)
			}
			out, err := p.filterUpdate(j, "job-2", 1, global, update)
			if out != nil || err == nil {
				t.Fatalf("filterUpdate = %v, %v; want nothing and an error", out, err)
			}
			ev := rec.of("privacy.filter.refused")
			if len(ev) == 0 || ev[len(ev)-1].Detail["scope"] != scope || !strings.Contains(ev[len(ev)-1].Detail["reason"], "plugin") {
				t.Fatalf("refusals audited %v", ev)
			}
		})
	}
	t.Run("a job cannot name a plugin", func(t *testing.T) {
		_, err := privacy.ParseFilters("filters.task_result_filters", []any{map[string]any{"plugin": map[string]any{"path": bin, "sha256": sum}}})
		if err == nil || !strings.Contains(err.Error(), "a job cannot load a plugin binary") {
			t.Fatalf("ParseFilters = %v", err)
		}
		j := &joined{manifest: &job.Manifest{PrivacyScope: "own", ResultFilters: []privacy.FilterSpec{{Name: privacy.NamePlugin, Path: bin,
			Plugin: &privacy.PluginFilter{Path: bin, SHA256: s, Timeout: privacy.DefaultPluginTimeout, Args: []byte("{}"), Direction: privacy.DirectionOut}}}}}
		if err := p.setupScope(j); err == nil || !strings.Contains(err.Error(), "a job cannot load a plugin binary") {
			t.Fatalf("setupScope with a job's plugin filter = %v", err)
		}
	})
}
