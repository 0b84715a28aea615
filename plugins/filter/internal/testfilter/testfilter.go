// Package testfilter is the filter the plugin filter tests run, in
// process and as a real plugin binary (cmd/hearth-filter-test). What it
// does is chosen by the arguments its Configure is handed (Args): scale
// or clip the diff, pass the model through (the benchmark's no-op), or
// break the contract in one of the ways the host must refuse (a NaN, a
// wrong layout, a report beyond its bounds), crash, hang, write to its
// read-only input, or refuse its arguments.
// It is test code: no Hearth binary links it.
package testfilter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins/filter"
)

// Args are the test filter's arguments (its entry's "args" in a site's
// privacy.json).
type Args struct {
	// Mode is one of "noop", "scale" (the diff times Factor), "clip" (the
	// diff clipped to ±MaxAbs), "nan" (noop with a NaN in the first
	// value), "wrong_layout" (noop with the first tensor renamed),
	// "bad_report" (noop reporting more zeroed values than the model
	// has), "exclude_first" (noop excluding the first tensor),
	// "write_input" (writes to the read-only input), "crash" (exits),
	// "hang" (blocks), "crash_once" (exits the first time, when the
	// marker file Marker is absent, then works as noop) and "scribble"
	// (scale, then, from ScribbleAfter after answering, writes NaNs over
	// its output file through a mapping of its own, and creates the marker
	// file Marker when done: a plugin that changes its answer after
	// giving it).
	Mode   string  `json:"mode"`
	Factor float64 `json:"factor"`
	MaxAbs float64 `json:"max_abs"`
	Marker string  `json:"marker"`
	// ScribbleAfter is how long "scribble" waits after answering, in
	// milliseconds.
	ScribbleAfter int `json:"scribble_after_ms"`
	// Refuse makes Configure fail with this text.
	Refuse string `json:"refuse"`
}

// Filter is the test filter; the zero value is unconfigured.
type Filter struct {
	mu   sync.Mutex
	args *Args
	dir  filter.Direction
}

var _ filter.Filter = (*Filter)(nil)

// Configure takes a JSON Args.
func (f *Filter) Configure(_ context.Context, args []byte, d filter.Direction) error {
	var a Args
	if err := json.Unmarshal(args, &a); err != nil {
		return fmt.Errorf("testfilter: args: %w", err)
	}
	if a.Refuse != "" {
		return errors.New(a.Refuse)
	}
	switch a.Mode {
	case "noop", "scale", "clip", "nan", "wrong_layout", "bad_report", "exclude_first", "write_input", "crash", "hang", "crash_once", "scribble":
	default:
		return fmt.Errorf("testfilter: unknown mode %q", a.Mode)
	}
	f.mu.Lock()
	f.args, f.dir = &a, d
	f.mu.Unlock()
	return nil
}

// Apply does what the mode says.
func (f *Filter) Apply(ctx context.Context, d filter.Direction, global, local *model.Model) (*model.Model, filter.Report, error) {
	f.mu.Lock()
	a := f.args
	f.mu.Unlock()
	if a == nil {
		return nil, filter.Report{}, errors.New("testfilter: not configured")
	}
	if a.Mode == "scribble" { // its output file is mapped now, by the plugin's server
		path, err := outputFile()
		if err != nil {
			return nil, filter.Report{}, err
		}
		go scribble(path, time.Duration(a.ScribbleAfter)*time.Millisecond, a.Marker)
		a = &Args{Mode: "scale", Factor: 0.5}
	}
	switch a.Mode {
	case "noop":
		return local, filter.Report{}, nil
	case "scale", "clip":
		out := local.Clone()
		var clipped int
		for i, t := range out.Tensors {
			for j, v := range t.Data {
				var g float64
				if global != nil {
					g = float64(global.Tensors[i].Data[j])
				}
				diff := float64(v) - g
				if a.Mode == "scale" {
					diff *= a.Factor
				} else if math.Abs(diff) > a.MaxAbs {
					diff = math.Copysign(a.MaxAbs, diff)
					clipped++
				}
				t.Data[j] = float32(g + diff)
			}
		}
		return out, filter.Report{Clipped: clipped}, nil
	case "nan":
		out := local.Clone()
		out.Tensors[0].Data[0] = float32(math.NaN())
		return out, filter.Report{}, nil
	case "wrong_layout":
		out := local.Clone()
		out.Tensors[0].Name += ".renamed"
		return out, filter.Report{}, nil
	case "bad_report":
		return local, filter.Report{Zeroed: local.NumParams() + 1}, nil
	case "exclude_first":
		mask := make([]bool, len(local.Tensors))
		mask[0] = true
		return local, filter.Report{Mask: mask}, nil
	case "write_input":
		local.Tensors[0].Data[0] = 1 // a read-only mapping: the process dies here
		return local, filter.Report{}, nil
	case "crash":
		os.Exit(3)
	case "crash_once":
		if first(a.Marker) {
			os.Exit(3)
		}
		return local, filter.Report{}, nil
	case "hang":
		<-ctx.Done() // the host's deadline; the host kills the process then
		select {}
	}
	return nil, filter.Report{}, fmt.Errorf("testfilter: mode %q", a.Mode)
}

// outputFile is the path of the output file this process has mapped
// (its name begins "out-"), as /proc/self/maps lists it.
func outputFile() (string, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return "", fmt.Errorf("testfilter: %w", err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if i := strings.Index(line, " /"); i >= 0 && strings.HasPrefix(filepath.Base(line[i+1:]), "out-") {
			return line[i+1:], nil
		}
	}
	return "", errors.New("testfilter: no output file mapped")
}

// first reports whether marker is set and absent, creating it: true once
// per marker file.
func first(marker string) bool {
	if marker == "" {
		return false
	}
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Main serves the test filter as a plugin.
func Main() { filter.Serve(&Filter{}) }
