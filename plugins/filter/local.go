package filter

import (
	"context"
	"fmt"
	"maps"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// Local is a filter of this kind run in process, behind the same
// interface as a plugin (actors/learning/filter.Filter) and under the
// same checks on what it answers (layout, finite values, report bounds):
// for filters the site builds into its own binary, and to measure what
// the plugin boundary costs. It is safe for concurrent use when impl is.
type Local struct {
	impl   Filter
	dir    Direction
	params map[string]string
}

var _ learnfilter.Filter = (*Local)(nil)

// NewLocal configures impl with args (a JSON object; {} when nil) for
// direction d; params are its parameters for the audit.
func NewLocal(ctx context.Context, impl Filter, d Direction, args []byte, params map[string]string) (*Local, error) {
	if _, ok := directionToWire(d); !ok {
		return nil, fmt.Errorf("filter: local: no direction")
	}
	if args == nil {
		args = []byte("{}")
	}
	if err := impl.Configure(ctx, args, d); err != nil {
		return nil, fmt.Errorf("filter: local: configure: %w", err)
	}
	return &Local{impl: impl, dir: d, params: maps.Clone(params)}, nil
}

// Name is NamePlugin.
func (l *Local) Name() string { return NamePlugin }

// Params are the parameters NewLocal was given.
func (l *Local) Params() map[string]string { return maps.Clone(l.params) }

// Apply runs the filter on local against global and checks its answer
// as Client.Apply does; the output is a copy, sharing no memory with the
// inputs.
func (l *Local) Apply(global, local *model.Model) (*model.Model, learnfilter.Report, error) {
	rep := learnfilter.Report{Filter: NamePlugin}
	if err := checkInputs(global, local); err != nil {
		return nil, rep, err
	}
	out, r, err := l.impl.Apply(context.Background(), l.dir, global, local)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", NamePlugin, err)
	}
	if out == nil {
		return nil, rep, fmt.Errorf("%s: refused: %w: no model", NamePlugin, ErrContract)
	}
	if err := out.SameLayout(local); err != nil {
		return nil, rep, fmt.Errorf("%s: refused: %w", NamePlugin, err)
	}
	if out.NumParams() != local.NumParams() {
		return nil, rep, fmt.Errorf("%s: refused: %w: %d values for a model of %d", NamePlugin, model.ErrLayout, out.NumParams(), local.NumParams())
	}
	if rep, err = reportFromWire(reportToWire(r), local); err != nil {
		return nil, rep, fmt.Errorf("%s: refused: %w", NamePlugin, err)
	}
	copied := out.Clone()
	if err := finish(copied, rep, global); err != nil {
		return nil, learnfilter.Report{Filter: NamePlugin}, fmt.Errorf("%s: refused: %w", NamePlugin, err)
	}
	return copied, rep, nil
}

// finish makes a filter's copied output whole: the global's values in the
// tensors its mask excludes, and every other value checked finite.
func finish(out *model.Model, rep learnfilter.Report, global *model.Model) error {
	for i, t := range out.Tensors {
		if rep.Mask != nil && rep.Mask[i] {
			if global != nil {
				copy(t.Data, global.Tensors[i].Data)
			} else {
				clear(t.Data)
			}
			continue
		}
		for j, v := range t.Data {
			if v-v != 0 {
				return fmt.Errorf("%w: tensor %q value %d is %v", learnfilter.ErrNonFinite, clipName(t.Name), j, v)
			}
		}
	}
	return nil
}
