package filter

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// ChainReport is what a chain of filters did: each filter's Report, in the
// order they ran, and the tensors excluded by any of them.
type ChainReport struct {
	Reports []Report
	// Mask[i] is true when the local model's tensor i was excluded by a
	// filter of the chain: the filtered model holds the global's values
	// there (zeros for a nil global) and the site is no contributor to
	// that tensor's average (FedAvg of updates sent inline, which name
	// them; streamed updates, the robust rules, swarm rounds and
	// homomorphic sums count the global's values). Excluded names the same
	// tensors in order.
	Mask     []bool
	Excluded []string
}

// FilterInto is a Filter that can also write its output into a model its
// caller provides, for inputs its caller has checked: a plugin filter,
// whose answer is copied out of shared memory anyway. The chain runs it
// so, so that an update is checked once (by the chain, not by the chain
// and the filter both) and its output copied once, into the buffer the
// caller sends from (RunChainInto).
type FilterInto interface {
	Filter
	// ApplyInto is Apply on inputs that CheckInputs accepted: it writes
	// the filtered model into dst, which has local's layout (names,
	// shapes and lengths) and shares no memory with global or local, and
	// returns the report. Every value written is finite, as Apply's are;
	// the excluded tensors of its Mask hold the global's values. On error
	// dst's values are unspecified.
	ApplyInto(global, local, dst *model.Model) (Report, error)
}

// RunChain applies chain in order, each filter to the output of the one
// before, and returns the last output. A filter that excludes tensors
// (its Report's Mask) takes them out of what every later filter sees, as
// FLARE's ExcludeVars removes them from the data that later filters get:
// so that, for example, a percentile's cutoff is computed over the values
// that are sent, and noise is not spent on values that are not. The first
// error stops the chain; the reports of the filters that ran come with
// it. The inputs are checked once, here (CheckInputs), and never changed;
// the output shares no memory with them.
func RunChain(chain []Filter, global, local *model.Model) (*model.Model, ChainReport, error) {
	if err := CheckInputs("chain", global, local); err != nil {
		return nil, ChainReport{}, err
	}
	return runChain(chain, global, local, nil)
}

// RunChainInto is RunChain writing the chain's output into dst, a model
// with local's layout (the buffer the caller sends from, kept from one
// round to the next) that shares no memory with global or local; a
// FilterInto at the end of the chain writes into it directly. On error
// dst's values are unspecified: nothing in it may be sent.
func RunChainInto(chain []Filter, global, local, dst *model.Model) (ChainReport, error) {
	if err := CheckInputs("chain", global, local); err != nil {
		return ChainReport{}, err
	}
	if err := CheckTarget(local, dst); err != nil {
		return ChainReport{}, fmt.Errorf("chain: %w", err)
	}
	if aliases(dst, local) || aliases(dst, global) {
		return ChainReport{}, errors.New("chain: the output buffer holds an input's memory")
	}
	_, rep, err := runChain(chain, global, local, dst)
	return rep, err
}

// CheckTarget refuses an output buffer whose layout is not like's: other
// names or shapes, or data of other lengths. It reads no values.
func CheckTarget(like, dst *model.Model) error {
	if dst == nil {
		return fmt.Errorf("%w: no output buffer", model.ErrLayout)
	}
	if err := like.SameLayout(dst); err != nil {
		return fmt.Errorf("the output buffer: %w", err)
	}
	for i, t := range dst.Tensors {
		if n := len(like.Tensors[i].Data); len(t.Data) != n {
			return fmt.Errorf("%w: the output buffer's tensor %q holds %d values, not %d", model.ErrLayout, t.Name, len(t.Data), n)
		}
	}
	return nil
}

// runChain is RunChain on checked inputs; with dst set, the output is
// written into it and dst returned.
func runChain(chain []Filter, global, local, dst *model.Model) (*model.Model, ChainReport, error) {
	var rep ChainReport
	rep.Mask = make([]bool, len(local.Tensors))
	// pos maps the tensors still in play to their place in local.
	pos := make([]int, len(local.Tensors))
	for i := range pos {
		pos[i] = i
	}
	curGlobal, cur := global, local
	for k, f := range chain {
		var out *model.Model
		var r Report
		var err error
		if fi, ok := f.(FilterInto); ok {
			// Its inputs are checked: the chain's own, or an earlier
			// filter's output, finite by the Filter contract.
			out = dst
			if k < len(chain)-1 || dst == nil || len(pos) != len(local.Tensors) {
				out = newLike(cur)
			}
			r, err = fi.ApplyInto(curGlobal, cur, out)
		} else {
			out, r, err = f.Apply(curGlobal, cur)
		}
		rep.Reports = append(rep.Reports, r)
		if err != nil {
			return nil, rep, fmt.Errorf("filter %d of the chain: %w", k, err)
		}
		if err := CheckTarget(cur, out); err != nil { // a Filter outside this package got it wrong
			return nil, rep, fmt.Errorf("filter %d of the chain (%s): its output: %w", k, f.Name(), err)
		}
		cur = out
		if r.Mask == nil {
			continue
		}
		if len(r.Mask) != len(cur.Tensors) { // a Filter outside this package got it wrong
			return nil, rep, fmt.Errorf("filter %d of the chain (%s): a mask of %d tensors for a model of %d", k, f.Name(), len(r.Mask), len(cur.Tensors))
		}
		keep := &model.Model{}
		var keepGlobal *model.Model
		if curGlobal != nil {
			keepGlobal = &model.Model{}
		}
		var keepPos []int
		for i, t := range cur.Tensors {
			if r.Mask[i] {
				rep.Mask[pos[i]] = true
				continue
			}
			keep.Tensors = append(keep.Tensors, t)
			if keepGlobal != nil {
				keepGlobal.Tensors = append(keepGlobal.Tensors, curGlobal.Tensors[i])
			}
			keepPos = append(keepPos, pos[i])
		}
		cur, curGlobal, pos = keep, keepGlobal, keepPos
	}
	excluded := slices.Contains(rep.Mask, true)
	if dst != nil && cur == dst { // the last filter wrote the chain's output, and excluded nothing
		return dst, rep, nil
	}
	// A chain that excluded nothing: the last filter's output is the
	// chain's, new memory as every filter's output is.
	if dst == nil && len(chain) > 0 && !excluded && !aliases(cur, local) && !aliases(cur, global) {
		return cur, rep, nil
	}
	// Reassemble the local layout: the tensors in play from the last
	// output (copied when no filter ran, so that nothing is shared), the
	// excluded ones from the global.
	out := dst
	if out == nil {
		out = newLike(local)
	}
	for i, p := range pos {
		if d := out.Tensors[p].Data; len(d) == 0 || &d[0] != &cur.Tensors[i].Data[0] { // else the last filter wrote it there
			copy(d, cur.Tensors[i].Data)
		}
	}
	for i, masked := range rep.Mask {
		if masked {
			setGlobal(out, global, i)
			rep.Excluded = append(rep.Excluded, local.Tensors[i].Name)
		}
	}
	return out, rep, nil
}

// aliases says whether a tensor of a holds memory of b's same tensor (a
// filter outside this package that broke its contract): the chain then
// copies its output.
func aliases(a, b *model.Model) bool {
	if a == nil || b == nil || len(a.Tensors) != len(b.Tensors) {
		return false
	}
	for i, t := range a.Tensors {
		u := b.Tensors[i].Data
		if len(t.Data) > 0 && len(u) > 0 && &t.Data[0] == &u[0] {
			return true
		}
	}
	return false
}
