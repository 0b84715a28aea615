// Package trainer is the contract between a site and a trainer plugin: the
// plugin kind that lets a job bring its own training code (a PyTorch
// script, or a pinned binary) beside the built-in pure-Go trainers of
// actors/learning/trainer, which stay in process.
//
// The Go interface a plugin implements (Trainer) and its plain types are
// here. Beside it, split by role as plugins/filter is: the go-plugin glue
// (plugin.go), the host side (client.go: Client, which runs a pinned
// plugin through plugins.Load), the plugin side for Go trainers
// (server.go: Serve, a plugin's whole main), the shared memory the models
// travel in (shm_unix.go), the conversions and bounds on what a plugin
// answers (convert.go), and the PyTorch trainer (python.go, with the
// Python side of the protocol in python/).
//
// # The calls
//
// Configure (once after each start: the job's arguments, the site's data
// folder, the trainer's own working folder), Prepare (the initial model:
// its layout, its values written into shared memory), Train (one round
// from the global model: the trained model, the sample count, the loss
// and the trainer's own metrics) and Evaluate (samples, loss, accuracy of
// a model on the site's validation data). As with privacy filters, no
// model value crosses gRPC: the host writes the models into files of a
// private folder (mode 0700, /dev/shm by default), the plugin maps them,
// and writes its model into a second file the host made.
//
// # Failing closed
//
// The host refuses, with an error naming why, every answer outside the
// contract: a layout that does not decode or is beyond the bounds
// (ErrContract), a trained model whose layout is not the global's
// (model.ErrLayout), a value that is not a finite float32 (ErrNonFinite;
// the values are copied out of shared memory first, then checked), a
// sample count below 1 or above MaxSamples, a loss that is negative or not
// finite, an accuracy outside [0, 1], too many or too long metric names,
// metric values that are not finite. A plugin that crashes, hangs past
// its deadline (it is then killed), or cannot start is a *plugins.Error;
// a plugin that reports its memory limit reached is ErrMemoryLimit. A
// site leaves itself out of the round on any of them.
package trainer

import (
	"context"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Setup is what a trainer is configured with, once after each start.
type Setup struct {
	// Args are the job manifest's trainer arguments, a JSON object in the
	// trainer's own schema ({} when the job gives none); at most MaxArgs
	// bytes.
	Args []byte
	// DataDir is the site's data folder, the only data the trainer reads.
	DataDir string
	// WorkDir is the trainer's own working folder (mode 0700), where it
	// may write.
	WorkDir string
}

// Result is one round of training.
type Result struct {
	// Samples is the number of local samples trained on, the update's
	// weight in FedAvg; 1..MaxSamples.
	Samples int
	// Loss is the round's mean training loss; finite, not negative.
	Loss float64
	// Metrics are further figures of the trainer's own, for the site's
	// records: at most MaxMetrics, names of 1..MaxMetricName bytes,
	// finite values.
	Metrics map[string]float64
}

// Metrics is the quality of a model on the site's validation data.
type Metrics struct {
	Samples  int     // samples evaluated, 1..MaxSamples
	Loss     float64 // mean loss, finite and not negative
	Accuracy float64 // share classified right, in [0, 1]
}

// Trainer is a job's trainer, as a plugin implements it (see Serve). The
// site calls it one call at a time.
type Trainer interface {
	// Configure hands the trainer its setup, once after each start of
	// the plugin, before any other call. An error means the trainer
	// cannot run at this site.
	Configure(ctx context.Context, s Setup) error
	// Prepare returns the initial model.
	Prepare(ctx context.Context) (*model.Model, error)
	// Train trains one round (from 0) from global on the local data and
	// returns the trained model, in global's layout. global is a
	// read-only view of shared memory, valid only until Train returns.
	Train(ctx context.Context, round int, global *model.Model) (*model.Model, Result, error)
	// Evaluate measures m on the local validation data. m is a read-only
	// view of shared memory, valid only until Evaluate returns.
	Evaluate(ctx context.Context, m *model.Model) (Metrics, error)
}

// MetricScriptSeconds is the metric the PyTorch trainer adds to every
// round: the seconds the job's train() took, so that a site can tell the
// script's own time from the round's overhead.
const MetricScriptSeconds = "hearth.script_seconds"
