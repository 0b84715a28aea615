package filter_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/filter"
)

// TestPluginChangesTheUpdate: the real plugin binary scales or clips the
// diff as its arguments say, against a global model or a reference of
// zeros, and leaves its inputs as they were.
func TestPluginChangesTheUpdate(t *testing.T) {
	global, local := models()
	tests := []struct {
		name        string
		args        map[string]any
		global      *model.Model
		want        func(g, l float64) float64
		wantClipped int
	}{
		{"scale", map[string]any{"mode": "scale", "factor": 0.5}, global,
			func(g, l float64) float64 { return g + 0.5*(l-g) }, 0},
		{"scale without a global", map[string]any{"mode": "scale", "factor": 0.25}, nil,
			func(_, l float64) float64 { return 0.25 * l }, 0},
		{"clip", map[string]any{"mode": "clip", "max_abs": 0.3}, global,
			func(g, l float64) float64 { return g + math.Max(-0.3, math.Min(0.3, l-g)) }, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.args, 10*time.Second)
			before := local.Clone()
			out, rep, err := c.Apply(tt.global, local)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if err := out.SameLayout(local); err != nil {
				t.Fatal(err)
			}
			for i, ts := range out.Tensors {
				for j, v := range ts.Data {
					var g float64
					if tt.global != nil {
						g = float64(tt.global.Tensors[i].Data[j])
					}
					if want := float32(tt.want(g, float64(local.Tensors[i].Data[j]))); v != want {
						t.Errorf("%s[%d] = %v, want %v", ts.Name, j, v, want)
					}
				}
			}
			if rep.Filter != filter.NamePlugin || rep.Values != 9 || rep.Clipped != tt.wantClipped {
				t.Errorf("report %+v, want filter %q, 9 values, %d clipped", rep, filter.NamePlugin, tt.wantClipped)
			}
			if !equalModels(local, before) {
				t.Error("Apply changed its input")
			}
			if &out.Tensors[0].Data[0] == &local.Tensors[0].Data[0] {
				t.Error("the output shares memory with the input")
			}
		})
	}
}

// TestPluginAnswersOutsideTheContractAreRefused: a NaN, a layout other
// than the model's, a report beyond its bounds: refused with an error
// saying which, and no model.
func TestPluginAnswersOutsideTheContractAreRefused(t *testing.T) {
	global, local := models()
	tests := []struct {
		mode string
		want error
		text string
	}{
		{"nan", learnfilter.ErrNonFinite, `tensor "w" value 0 is NaN`},
		{"wrong_layout", model.ErrLayout, `"w.renamed"`},
		{"bad_report", filter.ErrContract, "zeroed 10 of a model of 9 values"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			c := newClient(t, map[string]any{"mode": tt.mode}, 10*time.Second)
			out, _, err := c.Apply(global, local)
			if out != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Apply = %v, %v; want no model and an error wrapping %v saying %q", out, err, tt.want, tt.text)
			}
			if !strings.Contains(err.Error(), "refused") {
				t.Errorf("error %q does not say refused", err)
			}
		})
	}
}

// TestPluginFailuresFailClosed: a plugin that crashes, hangs past its
// deadline or writes to its read-only input gives an error and no model,
// and a chain holding it gives none either: nothing unfiltered leaves.
func TestPluginFailuresFailClosed(t *testing.T) {
	global, local := models()
	tests := []struct {
		mode    string
		timeout time.Duration
		want    error
	}{
		{"crash", 10 * time.Second, plugins.ErrExited},
		{"write_input", 10 * time.Second, plugins.ErrExited},
		{"hang", 500 * time.Millisecond, plugins.ErrDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			c := newClient(t, map[string]any{"mode": tt.mode}, tt.timeout)
			start := time.Now()
			out, _, err := c.Apply(global, local)
			if out != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %v, %v; want no model and %v", out, err, tt.want)
			}
			if d := time.Since(start); d > tt.timeout+5*time.Second {
				t.Errorf("the failure took %v", d)
			}
			out, rep, err := learnfilter.RunChain([]learnfilter.Filter{c}, global, local)
			if out != nil || err == nil {
				t.Fatalf("RunChain = %v, %v; want no model and an error", out, err)
			}
			if len(rep.Reports) != 1 {
				t.Errorf("chain reports %v, want the failed filter's", rep.Reports)
			}
		})
	}
}

// TestPluginCrashRestarts: after a crash the next Apply starts the plugin
// again, configured, and it answers.
func TestPluginCrashRestarts(t *testing.T) {
	global, local := models()
	c := newClient(t, map[string]any{"mode": "crash_once", "marker": filepath.Join(t.TempDir(), "crashed")}, 10*time.Second)
	if _, _, err := c.Apply(global, local); !errors.Is(err, plugins.ErrExited) {
		t.Fatalf("first Apply: %v, want %v", err, plugins.ErrExited)
	}
	out, _, err := c.Apply(global, local)
	if err != nil || !equalModels(out, local) {
		t.Fatalf("second Apply = %v, %v; want the model passed through", out, err)
	}
}

// TestPluginRefusedBinaryOrArgs: a binary whose hash differs from the pin
// never runs; arguments the plugin refuses refuse every Apply with its
// reason.
func TestPluginRefusedBinaryOrArgs(t *testing.T) {
	wrong := binSum
	wrong[0] ^= 1
	_, err := filter.NewClient(filter.ClientConfig{Pin: plugins.Pin{Path: bin, SHA256: wrong}, Direction: filter.DirectionOut,
		Timeout: time.Second, WorkDir: t.TempDir(), ShmDir: t.TempDir()})
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("NewClient with a wrong pin: %v, want %v", err, plugins.ErrChecksum)
	}
	c := newClient(t, map[string]any{"mode": "noop", "refuse": "max_abs is missing"}, 10*time.Second)
	if err := c.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "max_abs is missing") {
		t.Fatalf("Start = %v, want the plugin's refusal", err)
	}
	global, local := models()
	if out, _, err := c.Apply(global, local); out != nil || err == nil {
		t.Fatalf("Apply after a refused configuration = %v, %v; want an error", out, err)
	}
}

// TestPluginExcludesATensor: a plugin's mask takes a tensor out of the
// chain: it holds the global's values (whatever the plugin wrote) and the
// chain reports it excluded.
func TestPluginExcludesATensor(t *testing.T) {
	global, local := models()
	c := newClient(t, map[string]any{"mode": "exclude_first"}, 10*time.Second)
	out, rep, err := learnfilter.RunChain([]learnfilter.Filter{c}, global, local)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Excluded, []string{"w"}) || !slices.Equal(out.Tensors[0].Data, global.Tensors[0].Data) || !slices.Equal(out.Tensors[1].Data, local.Tensors[1].Data) {
		t.Fatalf("excluded %v, out %v; want w excluded, holding the global's values, and b the local's", rep.Excluded, out.Tensors)
	}
}

// TestSharedMemoryIsPrivateAndRemoved: the models lie in a folder only
// the site's user may enter, in files only it may read, and Close removes
// them.
func TestSharedMemoryIsPrivateAndRemoved(t *testing.T) {
	shm := t.TempDir()
	c, err := filter.NewClient(filter.ClientConfig{Pin: plugins.Pin{Path: bin, SHA256: binSum}, Args: []byte(`{"mode":"noop"}`),
		Direction: filter.DirectionOut, Timeout: 10 * time.Second, WorkDir: t.TempDir(), ShmDir: shm})
	if err != nil {
		t.Fatal(err)
	}
	global, local := models()
	if _, _, err := c.Apply(global, local); err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(shm, "hearth-filter-*"))
	if len(dirs) != 1 {
		t.Fatalf("shared memory folders %v, want one", dirs)
	}
	st, err := os.Stat(dirs[0])
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("the folder: %v, %v; want mode 0700", st.Mode(), err)
	}
	files, _ := os.ReadDir(dirs[0])
	if len(files) != 2 {
		t.Fatalf("files %v, want the input and the output", files)
	}
	for _, f := range files {
		if info, err := f.Info(); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f.Name(), info.Mode(), err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(shm); len(left) != 0 {
		t.Fatalf("left after Close: %v", left)
	}
}

// equalModels reports whether a and b hold the same names, shapes and
// values.
func equalModels(a, b *model.Model) bool {
	if a == nil || b == nil || a.SameLayout(b) != nil {
		return false
	}
	for i := range a.Tensors {
		if !slices.Equal(a.Tensors[i].Data, b.Tensors[i].Data) {
			return false
		}
	}
	return true
}

// TestPluginAppliesIntoTheCallersBuffer: in a chain, the plugin's answer
// is copied into the buffer the caller sends from (RunChainInto), checked
// there: a changed answer, a pass-through answer (the host's own copy of
// the update), and a global that is the update's own memory (written into
// shared memory once, read by the plugin as the global too: the diff is
// zero, so scaling it changes nothing).
func TestPluginAppliesIntoTheCallersBuffer(t *testing.T) {
	global, local := models()
	tests := []struct {
		name   string
		mode   string
		global *model.Model
		want   func(i, j int) float32
	}{
		{"changed", "scale", global, func(i, j int) float32 {
			g := global.Tensors[i].Data[j]
			return g + 0.5*(local.Tensors[i].Data[j]-g)
		}},
		{"passed through", "noop", global, func(i, j int) float32 { return local.Tensors[i].Data[j] }},
		{"the global is the update", "scale", local, func(i, j int) float32 { return local.Tensors[i].Data[j] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, map[string]any{"mode": tt.mode, "factor": 0.5}, 10*time.Second)
			dst := zeroLike(local)
			dst.Tensors[1].Data[2] = 42 // what a buffer holds from its last round
			before := local.Clone()
			rep, err := learnfilter.RunChainInto([]learnfilter.Filter{c}, tt.global, local, dst)
			if err != nil {
				t.Fatalf("RunChainInto: %v", err)
			}
			for i, ts := range dst.Tensors {
				for j, v := range ts.Data {
					if want := tt.want(i, j); v != want {
						t.Errorf("%s[%d] = %v, want %v", ts.Name, j, v, want)
					}
				}
			}
			if len(rep.Reports) != 1 || rep.Reports[0].Filter != filter.NamePlugin || !equalModels(local, before) {
				t.Fatalf("reports %+v, or the input changed", rep.Reports)
			}
		})
	}
	t.Run("a buffer unlike the update", func(t *testing.T) {
		c := newClient(t, map[string]any{"mode": "noop"}, 10*time.Second)
		dst := zeroLike(local)
		dst.Tensors[0].Data = dst.Tensors[0].Data[:5]
		if _, err := c.ApplyInto(global, local, dst); !errors.Is(err, model.ErrLayout) {
			t.Fatalf("ApplyInto a short buffer: %v, want %v", err, model.ErrLayout)
		}
	})
}

// TestPluginChangingItsAnswerLaterChangesNothing: a plugin that answers,
// then writes NaNs over its output file through a mapping of its own,
// changes nothing of what the host took: the buffer the update is sent
// from keeps the checked answer.
func TestPluginChangingItsAnswerLaterChangesNothing(t *testing.T) {
	global, local := models()
	marker := filepath.Join(t.TempDir(), "scribbled")
	c := newClient(t, map[string]any{"mode": "scribble", "scribble_after_ms": 200, "marker": marker}, 10*time.Second)
	dst := zeroLike(local)
	if _, err := learnfilter.RunChainInto([]learnfilter.Filter{c}, global, local, dst); err != nil {
		t.Fatalf("RunChainInto: %v", err)
	}
	taken := dst.Clone()
	bustest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, err := os.Stat(marker); err != nil {
			return fmt.Errorf("the plugin has not written over its answer yet: %v", err)
		}
		return nil
	})
	if !equalModels(dst, taken) {
		t.Fatalf("the buffer changed after the answer: %v, was %v", dst.Tensors, taken.Tensors)
	}
	for i, ts := range dst.Tensors {
		for j, v := range ts.Data {
			g := global.Tensors[i].Data[j]
			if want := g + 0.5*(local.Tensors[i].Data[j]-g); v != want {
				t.Errorf("%s[%d] = %v, want the scaled answer %v", ts.Name, j, v, want)
			}
		}
	}
}

// zeroLike is a model of m's layout holding zeros, in memory of its own.
func zeroLike(m *model.Model) *model.Model {
	out := m.Clone()
	for _, t := range out.Tensors {
		clear(t.Data)
	}
	return out
}
