package trainer_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/trainer"
)

// requireTorch skips the test when the site's Python lacks what the
// PyTorch trainer needs, and fails it when CI=true (CI installs them).
func requireTorch(t testing.TB) {
	t.Helper()
	out, err := exec.Command(trainer.DefaultInterpreter, "-I", "-c", "import torch, grpc, google.protobuf, cryptography").CombinedOutput()
	if err == nil {
		return
	}
	msg := "the PyTorch trainer needs " + trainer.DefaultInterpreter + " with torch, grpc, protobuf and cryptography " +
		"(apt-get install python3-torch python3-grpcio python3-protobuf python3-cryptography): " + string(out)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// siteData writes one site's share of optdigits (the first of 5
// Dirichlet shares of the train split; the next share as its validation
// data, held out from its training; the test split) as a site's data
// folder holds it, and returns the folder.
func siteData(t testing.TB) string {
	t.Helper()
	return sitesData(t, 1)[0]
}

// sitesData is siteData for the first n of the 5 sites.
func sitesData(t testing.TB, n int) []string {
	t.Helper()
	train, test, err := dataset.Load("optdigits")
	if err != nil {
		t.Fatal(err)
	}
	shares, err := dataset.DirichletSplit(train, 5, 1.0, 7)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for i := range n {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "optdigits"), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]*dataset.Set{"train": shares[i], "val": shares[(i+1)%len(shares)], "test": test} {
			f, err := os.Create(filepath.Join(dir, "optdigits", name+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(f); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// newPython runs testdata/<script> as a job's PyTorch trainer at a site
// whose data folder is data; it is closed when the test ends.
func newPython(t testing.TB, script, data string, args map[string]any, limits trainer.Limits, timeout time.Duration) *trainer.Client {
	t.Helper()
	return newPythonWith(t, script, data, args, func(c *trainer.PythonConfig) { c.Limits, c.Timeout = limits, timeout })
}

// newPythonWith is newPython with the configuration as edit leaves it.
func newPythonWith(t testing.TB, script, data string, args map[string]any, edit func(*trainer.PythonConfig)) *trainer.Client {
	t.Helper()
	c, err := trainer.NewPython(pythonConfig(t, script, data, args, edit))
	if err != nil {
		t.Fatalf("NewPython: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// TestPythonMLPOptdigits trains the MLP script on one site's share of
// optdigits for a few rounds (each round's model the next one's global,
// as FedAvg with one site) and evaluates it on the test split.
func TestPythonMLPOptdigits(t *testing.T) {
	requireTorch(t)
	ctx := context.Background()
	c := newPython(t, "mlp.py", siteData(t), map[string]any{"dataset": "optdigits", "epochs": 3, "hidden": 64, "lr": 0.05}, trainer.Limits{}, time.Minute)
	global, err := c.Prepare(ctx)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	want := []model.TensorShape{{Name: "0.weight", Shape: []int{64, 64}}, {Name: "0.bias", Shape: []int{64}}, {Name: "2.weight", Shape: []int{10, 64}}, {Name: "2.bias", Shape: []int{10}}}
	if err := (&model.Model{Tensors: tensors(want)}).SameLayout(global); err != nil {
		t.Fatalf("Prepare's layout: %v", err)
	}
	before, err := c.Evaluate(ctx, global, trainer.Test)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	var res trainer.Result
	for round := range 5 {
		if global, res, err = c.Train(ctx, round, global); err != nil {
			t.Fatalf("Train round %d: %v", round, err)
		}
		t.Logf("round %d: %d samples, loss %.4f, metrics %v", round, res.Samples, res.Loss, res.Metrics)
	}
	after, err := c.Evaluate(ctx, global, trainer.Test)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	val, err := c.Evaluate(ctx, global, trainer.Validation)
	if err != nil || val.Samples == after.Samples {
		t.Fatalf("the validation split: %+v, %v; want the site's val.bin, not its test data", val, err)
	}
	t.Logf("test accuracy %.4f before training, %.4f after (%d samples, loss %.4f)", before.Accuracy, after.Accuracy, after.Samples, after.Loss)
	if after.Accuracy < 0.9 || after.Samples != 1797 || res.Metrics["batches"] < 1 {
		t.Errorf("after 5 rounds: %+v, last round %+v; want an accuracy of at least 0.9 on the 1797 test samples", after, res)
	}
}

// pythonConfig is the configuration of testdata/<script> as a job's
// PyTorch trainer at a site whose data folder is data, as edit leaves it.
func pythonConfig(t testing.TB, script, data string, args map[string]any, edit func(*trainer.PythonConfig)) trainer.PythonConfig {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cfg := trainer.PythonConfig{
		Script:   plugins.Pin{Path: path, SHA256: trainer.ScriptSHA256(src)},
		Setup:    trainer.Setup{Args: raw, DataDir: data},
		Timeout:  time.Minute,
		StageDir: t.TempDir(), ShmDir: t.TempDir(), Logger: bustest.Logger(),
	}
	edit(&cfg)
	return cfg
}

// tensors is a model of layout without values.
func tensors(layout []model.TensorShape) []model.Tensor {
	out := make([]model.Tensor, len(layout))
	for i, s := range layout {
		out[i] = model.Tensor{Name: s.Name, Shape: s.Shape}
	}
	return out
}

// TestPythonScriptPinned: a script whose bytes are not the ones the
// manifest pinned is refused, and nothing runs.
func TestPythonScriptPinned(t *testing.T) {
	path, _ := filepath.Abs(filepath.Join("testdata", "mlp.py"))
	_, err := trainer.NewPython(trainer.PythonConfig{
		Script:  plugins.Pin{Path: path, SHA256: trainer.ScriptSHA256([]byte("something else"))},
		Timeout: time.Minute, StageDir: t.TempDir(), ShmDir: t.TempDir(),
	})
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("NewPython with a wrong pin: %v, want plugins.ErrChecksum", err)
	}
}

// TestPythonMemoryLimit: a script that allocates beyond its memory limit
// is stopped, the site told so (ErrMemoryLimit), and the process ended;
// the next call starts a fresh one.
func TestPythonMemoryLimit(t *testing.T) {
	requireTorch(t)
	ctx := context.Background()
	c := newPython(t, "greedy.py", siteData(t), map[string]any{"dataset": "optdigits"}, trainer.Limits{Memory: 2 << 30}, time.Minute)
	global, err := c.Prepare(ctx)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	_, _, err = c.Train(ctx, 0, global)
	if !errors.Is(err, trainer.ErrMemoryLimit) {
		t.Fatalf("Train beyond the memory limit: %v, want ErrMemoryLimit", err)
	}
	t.Logf("refused: %v", err)
	if err := bustest.Poll(30*time.Second, 50*time.Millisecond, func() error {
		_, err := c.Evaluate(ctx, global, trainer.Validation)
		return err
	}); err != nil {
		t.Fatalf("Evaluate after the restart: %v", err)
	}
	builds, err := os.ReadFile(filepath.Join(c.WorkDir(), "builds"))
	if err != nil || strings.Count(string(builds), "\n") != 2 {
		t.Errorf("the script built its module %q (%v), want twice: the process that hit the limit ended, a fresh one evaluated", builds, err)
	}
}

// TestPythonSeesNoHost: the script finds none of the host's environment
// (a variable set in the host is not there, nor any but go-plugin's
// own), and its working folder holds no kit: it is empty.
func TestPythonSeesNoHost(t *testing.T) {
	requireTorch(t)
	t.Setenv("HEARTH_TEST_SITE_SECRET", "the site's key material")
	ctx := context.Background()
	c := newPython(t, "snoop.py", siteData(t), map[string]any{"dataset": "optdigits", "secret_var": "HEARTH_TEST_SITE_SECRET"}, trainer.Limits{}, time.Minute)
	global, err := c.Prepare(ctx)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	_, res, err := c.Train(ctx, 0, global)
	if err != nil {
		t.Fatalf("Train: %v", err)
	}
	for _, k := range []string{"host_vars", "secret_seen", "work_entries", "key_found"} {
		if v, ok := res.Metrics[k]; !ok || v != 0 {
			t.Errorf("the script saw %s = %v (present %v), want 0", k, v, ok)
		}
	}
}

// TestPythonLimits: a script past its CPU time is stopped (SIGXCPU: the
// harness exits; the host sees the plugin exit, before the call's
// deadline), one past its open files limit fails with the system's
// error.
func TestPythonLimits(t *testing.T) {
	requireTorch(t)
	data := siteData(t)
	for _, tc := range []struct {
		name, script string
		limits       trainer.Limits
		want         error
		text         string
	}{
		{"cpu time", "spin.py", trainer.Limits{CPUTime: 3 * time.Second}, plugins.ErrExited, ""},
		{"open files", "hoard.py", trainer.Limits{OpenFiles: 64}, nil, "Too many open files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := newPython(t, tc.script, data, map[string]any{"dataset": "optdigits"}, tc.limits, time.Minute)
			global, err := c.Prepare(ctx)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			start := time.Now()
			_, _, err = c.Train(ctx, 0, global)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Train: %v, want %v %q", err, tc.want, tc.text)
			}
			t.Logf("stopped after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestPythonFedAvgFiveSites runs the MLP script at 5 sites (each with its
// Dirichlet share of optdigits) under FedAvg, weighted by sample counts,
// and evaluates the global model on the test split: the figure
// (at least 93%), here without the bus.
func TestPythonFedAvgFiveSites(t *testing.T) {
	if testing.Short() {
		t.Skip("5 PyTorch processes; not with -short")
	}
	requireTorch(t)
	ctx := context.Background()
	args := map[string]any{"dataset": "optdigits", "epochs": 2, "hidden": 64, "lr": 0.05}
	var sites []*trainer.Client
	for _, dir := range sitesData(t, 5) {
		sites = append(sites, newPython(t, "mlp.py", dir, args, trainer.Limits{}, time.Minute))
	}
	global, err := sites[0].Prepare(ctx)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for round := range 10 {
		sum := model.NewWeightedSum(global)
		for i, c := range sites {
			m, res, err := c.Train(ctx, round, global)
			if err != nil {
				t.Fatalf("round %d, site %d: %v", round, i, err)
			}
			if err := sum.Add(m, float64(res.Samples)); err != nil {
				t.Fatal(err)
			}
		}
		if global, err = sum.Mean(); err != nil {
			t.Fatal(err)
		}
	}
	met, err := sites[0].Evaluate(ctx, global, trainer.Test)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	t.Logf("FedAvg, 5 sites, 10 rounds: test accuracy %.4f, loss %.4f (%d samples)", met.Accuracy, met.Loss, met.Samples)
	if met.Accuracy < 0.93 {
		t.Errorf("test accuracy %.4f, want at least 0.93", met.Accuracy)
	}
}

// TestPythonRefusesBadData: the harness's set file reader is strict, as
// the Go one: a train split whose checksum does not match stops the
// trainer's start with the reason.
func TestPythonRefusesBadData(t *testing.T) {
	requireTorch(t)
	dir := siteData(t)
	path := filepath.Join(dir, "optdigits", "train.bin")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := newPython(t, "mlp.py", dir, map[string]any{"dataset": "optdigits"}, trainer.Limits{}, time.Minute)
	err = c.Start(context.Background())
	if !errors.Is(err, plugins.ErrStart) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Start on a corrupt train split: %v, want plugins.ErrStart naming the checksum", err)
	}
}
