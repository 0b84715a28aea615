package auditor

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"strings"
)

// Trail links the records of several logs through their PeerEvent
// references, so that one action can be followed across processes.
type Trail struct {
	byID    map[string]Record
	answers map[string][]string // event id -> ids of the records answering it
}

// Dangling is a record whose PeerEvent names a record that none of the
// logs given to Link holds: a log is missing, was cut, or a peer lied.
type Dangling struct {
	ID        string // the record holding the reference
	PeerEvent string // the id it refers to
}

// LinkError lists what Link could not link. It unwraps to ErrDangling
// and/or ErrDuplicate.
type LinkError struct {
	Dangling  []Dangling // in the order of the logs given to Link
	Duplicate []string   // ids held by more than one record; the first one counts
}

// Error summarizes the problems, naming the first of each kind.
func (e *LinkError) Error() string {
	var parts []string
	if n := len(e.Dangling); n > 0 {
		parts = append(parts, fmt.Sprintf("%d record(s) refer to missing records (first: %s -> %s)",
			n, e.Dangling[0].ID, e.Dangling[0].PeerEvent))
	}
	if n := len(e.Duplicate); n > 0 {
		parts = append(parts, fmt.Sprintf("%d event id(s) used twice (first: %s)", n, e.Duplicate[0]))
	}
	return "audit trail: " + strings.Join(parts, "; ")
}

// Unwrap returns ErrDangling and/or ErrDuplicate, for errors.Is.
func (e *LinkError) Unwrap() []error {
	var errs []error
	if len(e.Dangling) > 0 {
		errs = append(errs, ErrDangling)
	}
	if len(e.Duplicate) > 0 {
		errs = append(errs, ErrDuplicate)
	}
	return errs
}

// Link indexes the records of several logs (as Verify returns them: Link
// does not verify) and resolves every PeerEvent. It always returns a usable
// Trail; the error, a *LinkError, lists every reference to a record that no
// log holds and every event id held twice, so that nothing is dropped
// silently.
func Link(logs ...[]Record) (*Trail, error) {
	t := &Trail{byID: make(map[string]Record), answers: make(map[string][]string)}
	var le LinkError
	var kept []Record // first holder of each id, in input order
	for _, recs := range logs {
		for _, r := range recs {
			if _, dup := t.byID[r.ID]; dup {
				le.Duplicate = append(le.Duplicate, r.ID)
				continue
			}
			t.byID[r.ID] = r
			kept = append(kept, r)
		}
	}
	for _, r := range kept {
		if r.PeerEvent == "" {
			continue
		}
		if _, ok := t.byID[r.PeerEvent]; !ok {
			le.Dangling = append(le.Dangling, Dangling{ID: r.ID, PeerEvent: r.PeerEvent})
			continue
		}
		t.answers[r.PeerEvent] = append(t.answers[r.PeerEvent], r.ID)
	}
	if len(le.Dangling) > 0 || len(le.Duplicate) > 0 {
		return t, &le
	}
	return t, nil
}

// Record returns the record with id eventID.
func (t *Trail) Record(eventID string) (Record, bool) {
	r, ok := t.byID[eventID]
	return r, ok
}

// Chain returns the records linked to eventID through PeerEvent: the
// records it answers, transitively (its causes), the record itself, and
// the records that answer it, transitively (its consequences). Records on
// other branches (a task sent to another site by the same submission) are
// not included. The order is causal, which is time order with sane clocks:
// a record always comes after the record it answers and after the earlier
// records of its own log; otherwise earlier Time first. It returns nil for
// an unknown id.
func (t *Trail) Chain(eventID string) []Record {
	start, ok := t.byID[eventID]
	if !ok {
		return nil
	}
	in := map[string]bool{start.ID: true}
	for r := start; r.PeerEvent != ""; { // causes
		up, ok := t.byID[r.PeerEvent]
		if !ok || in[up.ID] {
			break
		}
		in[up.ID] = true
		r = up
	}
	for queue := []string{start.ID}; len(queue) > 0; { // consequences
		id := queue[0]
		queue = queue[1:]
		for _, a := range t.answers[id] {
			if !in[a] {
				in[a] = true
				queue = append(queue, a)
			}
		}
	}
	recs := make([]Record, 0, len(in))
	for id := range in {
		recs = append(recs, t.byID[id])
	}
	return causalOrder(recs)
}

// before is the tie-break between records that are not causally ordered.
func before(a, b Record) int {
	return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Participant, b.Participant),
		cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.ID, b.ID))
}

// causalOrder sorts recs topologically: an edge from each record to the
// records answering it and to the next record of the same log; among
// records that are ready, the earliest by before. Records in a reference
// cycle (only a forged log makes one) come last, by before.
func causalOrder(recs []Record) []Record {
	slices.SortFunc(recs, before)
	idx := make(map[string]int, len(recs))
	for i, r := range recs {
		idx[r.ID] = i
	}
	next := make([][]int, len(recs))
	indeg := make([]int, len(recs))
	edge := func(from, to int) {
		next[from] = append(next[from], to)
		indeg[to]++
	}
	lastOf := make(map[string]int) // participant -> its record with the highest seq so far
	bySeq := make([]int, len(recs))
	for i := range bySeq {
		bySeq[i] = i
	}
	slices.SortFunc(bySeq, func(a, b int) int {
		return cmp.Or(cmp.Compare(recs[a].Participant, recs[b].Participant), cmp.Compare(recs[a].Seq, recs[b].Seq))
	})
	for _, i := range bySeq {
		if j, ok := lastOf[recs[i].Participant]; ok {
			edge(j, i)
		}
		lastOf[recs[i].Participant] = i
	}
	for i, r := range recs {
		if j, ok := idx[r.PeerEvent]; ok && r.PeerEvent != "" && j != i {
			edge(j, i)
		}
	}
	// recs is sorted by before, so the smallest index is the earliest.
	ready := &intHeap{}
	for i := range recs {
		if indeg[i] == 0 {
			heap.Push(ready, i)
		}
	}
	out := make([]Record, 0, len(recs))
	done := make([]bool, len(recs))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, recs[i])
		done[i] = true
		for _, j := range next[i] {
			if indeg[j]--; indeg[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	for i, r := range recs {
		if !done[i] {
			out = append(out, r)
		}
	}
	return out
}

// intHeap is a min-heap of indexes.
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
