// Package filter is the contract between a site and its own privacy
// filters: the plugin kind that lets a site run a filter of its own (a
// binary its local/privacy.json pins by SHA-256) in its scopes' chains,
// beside the built-in filters of actors/learning/filter.
//
// The Go interface a plugin implements (Filter) and its plain types are
// here. The go-plugin glue (plugin.go), the host side (client.go: Client,
// an actors/learning/filter.Filter that runs a pinned binary, so that
// RunChain and the participant use it unchanged), the plugin side
// (server.go: Serve, a plugin's whole main), the shared memory the models
// travel in (plugins/internal/shm), the conversions and bounds on what a plugin
// answers (convert.go) and a site's plugin filters, opened from its
// privacy policy (site.go), sit beside it.
//
// # Models travel in shared memory
//
// An update can be gigabytes; a plugin's gRPC link carries a few hundred
// MB/s in messages of at most 4 MB. So no model value crosses gRPC: the
// host writes the local model (and the global, when there is one) into a
// file in a folder of its own (mode 0700, under SiteConfig.ShmDir,
// /dev/shm by default: memory, not disk), and the plugin maps it
// read-only; the plugin writes the filtered model into a second file the
// host made, which both map. The Apply call carries only the two files'
// paths, the regions in them and the model's layout. A global that is the
// local model's own memory (a site that sends back the model it got) is
// written once and named as both. The files are kept from one call to
// the next while the model's size stays the same (fresh memory costs a
// page fault per page), and removed when the filter closes.
//
// In a chain (actors/learning/filter.RunChain, RunChainInto) the Client
// is a FilterInto: the chain checks the inputs once, and the plugin's
// answer is copied straight into the buffer the caller sends from. A
// plugin that returns its input unchanged writes nothing: the host copies
// its own update instead.
//
// # Failing closed
//
// The host refuses, with an error naming why, everything a plugin
// answers outside the contract, before any of it leaves the filter: an
// output layout other than the input's (model.ErrLayout), a value that is
// not a finite float32 (actors/learning/filter.ErrNonFinite; the output
// is copied out of the shared file block by block, each block checked in
// the host's copy, so that a plugin cannot change what was checked, nor,
// by writing to its file after answering, what is sent), report counts beyond the model's
// size, a noise scale that is not finite, a mask of the wrong length. A
// plugin that crashes, hangs past its deadline (it is then killed) or
// cannot start is an error too (a *plugins.Error). An error stops the
// chain (RunChain), and the participant then sends nothing for the round:
// nothing unfiltered leaves the site. The plugin runs under the loader's
// controls (plugins.Load: the pinned hash checked on a private copy,
// AutoMTLS, SkipHostEnv, restarts with backoff).
//
// A plugin filter's report makes no differential privacy statement: the
// site accounts ε only for its built-in gaussian and SVT filters and for
// DP-SGD.
package filter

import (
	"context"
	"fmt"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Direction is where the filtered model goes.
type Direction int

// The directions, as a site's privacy.json lists them.
const (
	// DirectionIn: task data entering the site (the global model); a
	// scope's task_data_filters.
	DirectionIn Direction = iota + 1
	// DirectionOut: a task result leaving the site (its update); a
	// scope's task_result_filters.
	DirectionOut
)

// String is "in" or "out", as FLARE names the directions.
func (d Direction) String() string {
	switch d {
	case DirectionIn:
		return "in"
	case DirectionOut:
		return "out"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Report is what one application of a plugin filter did, for the site's
// audit; fields a filter does not use are zero.
type Report struct {
	// Zeroed counts values whose diff the filter set to zero (at most the
	// model's number of values).
	Zeroed int
	// Clipped counts values the filter clipped; it stays in the site's
	// own records.
	Clipped int
	// NoiseStd is the standard deviation (or scale) of the noise the
	// filter added; finite and not negative.
	NoiseStd float64
	// Mask, when not nil, has one entry per tensor of the model: true
	// where the filter did not send the tensor. The site's output then
	// holds the global's values there (whatever the plugin wrote) and the
	// chain's later filters do not see it.
	Mask []bool
}

// Filter is a site's own privacy filter, as a plugin implements it.
type Filter interface {
	// Configure hands the filter its arguments, the "args" object of its
	// entry in the site's privacy.json (JSON in the plugin's own schema;
	// {} when the entry has none), and the direction of the list the
	// entry is in, once after each start of the plugin, before any Apply.
	// An error means the filter cannot run: the site refuses every job
	// whose chain holds it.
	Configure(ctx context.Context, args []byte, d Direction) error
	// Apply filters local against global (nil: a reference of zeros), as
	// actors/learning/filter's filters do: it returns the filtered local
	// model, with local's layout, and a report. global and local are
	// read-only views of shared memory, valid only until Apply returns:
	// writing to them kills the plugin, and so does reading them after.
	// The model returned may share memory with them. An error is a
	// refusal: the site sends nothing filtered by this chain.
	Apply(ctx context.Context, d Direction, global, local *model.Model) (*model.Model, Report, error)
}
