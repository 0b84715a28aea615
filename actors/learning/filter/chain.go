package filter

import (
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

// RunChain applies chain in order, each filter to the output of the one
// before, and returns the last output. A filter that excludes tensors
// (its Report's Mask) takes them out of what every later filter sees, as
// FLARE's ExcludeVars removes them from the data that later filters get:
// so that, for example, a percentile's cutoff is computed over the values
// that are sent, and noise is not spent on values that are not. The first
// error stops the chain; the reports of the filters that ran come with
// it. The inputs are never changed, and the output shares no memory with
// them.
func RunChain(chain []Filter, global, local *model.Model) (*model.Model, ChainReport, error) {
	var rep ChainReport
	if err := checkInputs("chain", global, local); err != nil {
		return nil, rep, err
	}
	rep.Mask = make([]bool, len(local.Tensors))
	// pos maps the tensors still in play to their place in local.
	pos := make([]int, len(local.Tensors))
	for i := range pos {
		pos[i] = i
	}
	curGlobal, cur := global, local
	for k, f := range chain {
		out, r, err := f.Apply(curGlobal, cur)
		rep.Reports = append(rep.Reports, r)
		if err != nil {
			return nil, rep, fmt.Errorf("filter %d of the chain: %w", k, err)
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
	// A chain that excluded nothing: the last filter's output is the
	// chain's, new memory as every filter's output is.
	if len(chain) > 0 && !slices.Contains(rep.Mask, true) && !aliases(cur, local) && !aliases(cur, global) {
		if err := local.SameLayout(cur); err != nil {
			return nil, rep, fmt.Errorf("the chain's output: %w", err)
		}
		return cur, rep, nil
	}
	// Reassemble the local layout: the tensors in play from the last
	// output (copied when no filter ran, so that nothing is shared), the
	// excluded ones from the global.
	out := newLike(local)
	for i, p := range pos {
		copy(out.Tensors[p].Data, cur.Tensors[i].Data)
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
