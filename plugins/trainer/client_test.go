package trainer_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/trainer"
	"github.com/hearthfl/hearth/plugins/trainer/internal/testtrainer"
)

// newClient runs the test trainer with args (testtrainer.Args) under the
// call deadline timeout; it is closed when the test ends.
func newClient(t testing.TB, args testtrainer.Args, timeout time.Duration, maxModel int64) *trainer.Client {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c, err := trainer.NewClient(trainer.ClientConfig{
		Pin: plugins.Pin{Path: bin, SHA256: binSum}, Setup: trainer.Setup{Args: raw, DataDir: t.TempDir()},
		Timeout: timeout, StageDir: t.TempDir(), ShmDir: t.TempDir(), MaxModelBytes: maxModel, Logger: bustest.Logger(),
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestClientRound(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, testtrainer.Args{Mode: "ok"}, 10*time.Second, 0)
	global, err := c.Prepare(ctx)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := testtrainer.Initial().SameLayout(global); err != nil || !slices.Equal(global.Tensors[0].Data, testtrainer.Initial().Tensors[0].Data) {
		t.Fatalf("Prepare: %v %v, want the test trainer's initial model", global.Tensors, err)
	}
	trained, res, err := c.Train(ctx, 3, global)
	if err != nil {
		t.Fatalf("Train: %v", err)
	}
	if want := []float32{2, 3, 4, 5, 6, 7}; !slices.Equal(trained.Tensors[0].Data, want) || !slices.Equal(trained.Tensors[1].Data, []float32{1, 1, 1}) {
		t.Errorf("Train: %v, want every value plus one", trained.Tensors)
	}
	if res.Samples != 10 || res.Loss != 0.5 || res.Metrics["round"] != 3 {
		t.Errorf("Train: %+v, want 10 samples, loss 0.5, metric round 3", res)
	}
	met, err := c.Evaluate(ctx, trained, trainer.Validation)
	if err != nil || met != (trainer.Metrics{Samples: 5, Loss: 0.25, Accuracy: 0.8}) {
		t.Errorf("Evaluate: %+v, %v", met, err)
	}
	if st, err := os.Stat(c.WorkDir()); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("working folder: %v %v, want a folder of mode 0700", st, err)
	}
}

// TestClientRefuses: every answer outside the contract is refused with
// its reason, and every failure of the plugin is an error, never a model.
func TestClientRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		call       string // prepare, train or evaluate
		timeout    time.Duration
		maxModel   int64
		want       error
	}{
		{"non-finite value", "nan", "train", 0, 0, trainer.ErrNonFinite},
		{"layout changed", "wrong_layout", "train", 0, 0, model.ErrLayout},
		{"no samples", "no_samples", "train", 0, 0, trainer.ErrContract},
		{"loss not finite", "bad_loss", "train", 0, 0, trainer.ErrContract},
		{"too many metrics", "many_metrics", "train", 0, 0, trainer.ErrContract},
		{"accuracy above 1", "bad_accuracy", "evaluate", 0, 0, trainer.ErrContract},
		{"initial model beyond the bound", "huge", "prepare", 0, 1 << 10, nil},
		{"crash", "crash", "train", 0, 0, plugins.ErrExited},
		{"hang past the deadline", "hang", "train", time.Second, 0, plugins.ErrDeadline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			c := newClient(t, testtrainer.Args{Mode: tc.mode}, timeout, tc.maxModel)
			var err error
			var out any
			switch tc.call {
			case "prepare":
				out, err = c.Prepare(ctx)
			case "train":
				out, _, err = c.Train(ctx, 0, testtrainer.Initial())
			case "evaluate":
				_, err = c.Evaluate(ctx, testtrainer.Initial(), trainer.Validation)
			}
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("%s: %v, want %v", tc.call, err, tc.want)
			}
			if m, ok := out.(*model.Model); ok && m != nil {
				t.Errorf("%s returned a model with its error", tc.call)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestClientLayoutPrepared: once Prepare ran, a model of another layout
// is refused before it reaches the plugin.
func TestClientLayoutPrepared(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, testtrainer.Args{Mode: "ok"}, 10*time.Second, 0)
	if _, err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	other := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{6}, Data: make([]float32, 6)}}}
	if _, _, err := c.Train(ctx, 0, other); !errors.Is(err, model.ErrLayout) {
		t.Fatalf("Train on another layout: %v, want model.ErrLayout", err)
	}
}

// TestClientPinned: a binary whose hash is not the pin never runs.
func TestClientPinned(t *testing.T) {
	wrong := binSum
	wrong[0] ^= 1
	_, err := trainer.NewClient(trainer.ClientConfig{Pin: plugins.Pin{Path: bin, SHA256: wrong}, Timeout: time.Second, StageDir: t.TempDir(), ShmDir: t.TempDir()})
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("NewClient with a wrong pin: %v, want plugins.ErrChecksum", err)
	}
}

// TestClientConfigureRefused: a trainer that refuses its setup cannot
// start.
func TestClientConfigureRefused(t *testing.T) {
	c := newClient(t, testtrainer.Args{Refuse: "no GPU here"}, 10*time.Second, 0)
	if err := c.Start(context.Background()); !errors.Is(err, plugins.ErrStart) {
		t.Fatalf("Start: %v, want plugins.ErrStart", err)
	}
}
