package filter

import (
	"context"
	"fmt"
	"maps"
	"slices"

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

var _ learnfilter.FilterInto = (*Local)(nil)

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
// as Client.Apply does: the inputs checked, then ApplyInto a new model,
// which shares no memory with the inputs.
func (l *Local) Apply(global, local *model.Model) (*model.Model, learnfilter.Report, error) {
	if err := learnfilter.CheckInputs(NamePlugin, global, local); err != nil {
		return nil, learnfilter.Report{Filter: NamePlugin}, err
	}
	out := newLike(local)
	rep, err := l.ApplyInto(global, local, out)
	if err != nil {
		return nil, rep, err
	}
	return out, rep, nil
}

// ApplyInto runs the filter on inputs the caller has checked
// (actors/learning/filter.FilterInto) and copies its answer into dst,
// checked as Client.ApplyInto checks a plugin's.
func (l *Local) ApplyInto(global, local, dst *model.Model) (learnfilter.Report, error) {
	rep := learnfilter.Report{Filter: NamePlugin}
	if err := learnfilter.CheckTarget(local, dst); err != nil {
		return rep, fmt.Errorf("%s: %w", NamePlugin, err)
	}
	out, r, err := l.impl.Apply(context.Background(), l.dir, global, local)
	if err != nil {
		return rep, fmt.Errorf("%s: %w", NamePlugin, err)
	}
	if out == nil {
		return rep, fmt.Errorf("%s: refused: %w: no model", NamePlugin, ErrContract)
	}
	if err := learnfilter.CheckTarget(local, out); err != nil { // names, shapes and lengths
		return rep, fmt.Errorf("%s: refused: its output: %w", NamePlugin, err)
	}
	if rep, err = reportFromWire(reportToWire(r), local); err != nil {
		return rep, fmt.Errorf("%s: refused: %w", NamePlugin, err)
	}
	if learnfilter.SameMemory(out, local) { // passed through: values checked before the call
		copyModel(dst, local, rep.Mask)
	} else {
		for i, t := range dst.Tensors {
			if excluded(rep.Mask, i) {
				continue
			}
			if err := copyChecked(t.Data, out.Tensors[i].Data, t.Name); err != nil {
				return learnfilter.Report{Filter: NamePlugin}, fmt.Errorf("%s: refused: %w", NamePlugin, err)
			}
		}
	}
	setExcluded(dst, rep.Mask, global)
	return rep, nil
}

// checkBlock is how many values copyChecked copies before it checks them:
// 64 KiB, still in cache when they are read again.
const checkBlock = 16 << 10

// copyChecked copies src into dst (of the same length) block by block,
// checking each block's values finite in dst, after the copy: src may be
// memory a plugin can still write, and what was checked is what stays.
// name is the tensor's, for the error.
func copyChecked(dst, src []float32, name string) error {
	for off := 0; off < len(dst); off += checkBlock {
		block := dst[off:min(off+checkBlock, len(dst))]
		copy(block, src[off:])
		for j, v := range block {
			if v-v != 0 {
				return fmt.Errorf("%w: tensor %q value %d is %v", learnfilter.ErrNonFinite, clipName(name), off+j, v)
			}
		}
	}
	return nil
}

// copyModel copies src's values into dst (same layout), but for the
// tensors mask excludes.
func copyModel(dst, src *model.Model, mask []bool) {
	for i, t := range dst.Tensors {
		if !excluded(mask, i) {
			copy(t.Data, src.Tensors[i].Data)
		}
	}
}

// setExcluded makes the tensors mask excludes hold the global's values
// (zeros for a nil global).
func setExcluded(dst *model.Model, mask []bool, global *model.Model) {
	for i, t := range dst.Tensors {
		if !excluded(mask, i) {
			continue
		}
		if global != nil {
			copy(t.Data, global.Tensors[i].Data)
		} else {
			clear(t.Data)
		}
	}
}

// excluded says whether mask (nil: none) excludes tensor i.
func excluded(mask []bool, i int) bool { return mask != nil && mask[i] }

// newLike is a model with m's layout (names and shapes copied) and zeroed
// values.
func newLike(m *model.Model) *model.Model {
	out := &model.Model{Tensors: make([]model.Tensor, len(m.Tensors))}
	for i, t := range m.Tensors {
		out.Tensors[i] = model.Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: make([]float32, len(t.Data))}
	}
	return out
}
