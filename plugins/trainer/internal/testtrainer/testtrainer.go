// Package testtrainer is the trainer the trainer plugin tests run, in
// process and as a real plugin binary (cmd/hearth-trainer-test). What it
// does is chosen by the arguments its Configure is handed (Args): train
// well (every value plus one), or break the contract in one of the ways
// the host must refuse, crash or hang.
// It is test code: no Hearth binary links it.
package testtrainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins/trainer"
)

// Args are the test trainer's arguments (the job's trainer arguments).
type Args struct {
	// Mode is one of "ok" (Train adds 1 to every value), "nan" (ok, with
	// a NaN first value), "wrong_layout" (ok, the first tensor renamed),
	// "no_samples", "bad_loss" (NaN), "bad_accuracy" (1.5),
	// "many_metrics" (33 of them), "huge" (an initial model of 2^20
	// values), "crash" (Train exits), "hang" (Train blocks, deaf to its
	// context).
	Mode string `json:"mode"`
	// Refuse makes Configure fail with this text.
	Refuse string `json:"refuse"`
}

// Trainer is the test trainer; the zero value is unconfigured.
type Trainer struct {
	mu    sync.Mutex
	args  Args
	setup trainer.Setup
}

var _ trainer.Trainer = (*Trainer)(nil)

// Configure takes a JSON Args and checks the folders it was handed.
func (t *Trainer) Configure(_ context.Context, s trainer.Setup) error {
	var a Args
	if err := json.Unmarshal(s.Args, &a); err != nil {
		return fmt.Errorf("testtrainer: args: %w", err)
	}
	if a.Refuse != "" {
		return errors.New(a.Refuse)
	}
	if st, err := os.Stat(s.WorkDir); err != nil || !st.IsDir() {
		return fmt.Errorf("testtrainer: no working folder %q", s.WorkDir)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.args, t.setup = a, s
	return nil
}

// Initial is the test trainer's initial model.
func Initial() *model.Model {
	return &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Shape: []int{3}, Data: []float32{0, 0, 0}},
	}}
}

// Prepare returns Initial (mode "huge": a model of 2^20 values).
func (t *Trainer) Prepare(context.Context) (*model.Model, error) {
	if t.mode() == "huge" {
		return &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{1 << 20}, Data: make([]float32, 1<<20)}}}, nil
	}
	return Initial(), nil
}

func (t *Trainer) mode() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.args.Mode
}

// Train adds 1 to every value of global, then breaks the contract as its
// mode says.
func (t *Trainer) Train(_ context.Context, round int, global *model.Model) (*model.Model, trainer.Result, error) {
	out := global.Clone()
	for _, ts := range out.Tensors {
		for i := range ts.Data {
			ts.Data[i]++
		}
	}
	res := trainer.Result{Samples: 10, Loss: 0.5, Metrics: map[string]float64{"round": float64(round)}}
	switch t.mode() {
	case "nan":
		out.Tensors[0].Data[0] = float32(math.NaN())
	case "wrong_layout":
		out.Tensors[0].Name = "renamed"
	case "no_samples":
		res.Samples = 0
	case "bad_loss":
		res.Loss = math.NaN()
	case "many_metrics":
		for i := range 33 {
			res.Metrics["m"+strconv.Itoa(i)] = 1
		}
	case "crash":
		os.Exit(2)
	case "hang":
		select {}
	}
	return out, res, nil
}

// Evaluate reports 5 samples, loss 0.25 and accuracy 0.8 (mode
// "bad_accuracy": 1.5).
func (t *Trainer) Evaluate(context.Context, *model.Model, trainer.Split) (trainer.Metrics, error) {
	m := trainer.Metrics{Samples: 5, Loss: 0.25, Accuracy: 0.8}
	if t.mode() == "bad_accuracy" {
		m.Accuracy = 1.5
	}
	return m, nil
}

// Main serves a fresh Trainer as a plugin.
func Main() { trainer.Serve(&Trainer{}) }
