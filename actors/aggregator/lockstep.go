package aggregator

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/gonum/blas/blas32"
)

// lockstep is a rule sum's assembler (see StreamSum): chunk next is
// combined once every member not failed holds it; a member may hold chunks
// up to next+LockstepWindow-1 and blocks beyond. Every field is guarded by
// mu; the combining runs under it, in whichever member's WriteChunk
// delivered the last missing copy of the chunk.
type lockstep struct {
	sum    *StreamSum
	global []float32
	rule   Rule

	patience time.Duration // LockstepPatience; shorter in tests

	mu      sync.Mutex
	moved   *sync.Cond // next advanced, a member left, or the sum failed
	members map[string]*member
	next    int         // the next chunk to combine
	err     error       // the round's aggregate failed: every member fails
	free    [][]float32 // chunk buffers for reuse
	out     []float32   // one chunk, the combination before it is written
}

// member is one site of a lockstep round.
type member struct {
	site      string
	weight    float64
	joined    bool
	chunks    map[int][]float32 // held: delivered, not yet combined
	delivered int               // chunks delivered, combined or held
	failed    error             // its stream failed, or the bound refused it
	clips     int               // chunks clipped by the norm bound
	reason    string            // the first clip's reason
}

func newLockstep(s *StreamSum, global []float32, rule Rule, sites []string) *lockstep {
	l := &lockstep{sum: s, global: global, rule: rule, members: map[string]*member{}, out: make([]float32, s.chunkBytes/4),
		patience: LockstepPatience}
	l.moved = sync.NewCond(&l.mu)
	for _, site := range sites {
		l.members[site] = &member{site: site, chunks: map[int][]float32{}}
	}
	return l
}

// join returns site's member, nil for a site the sum was not made for.
func (l *lockstep) join(site string, weight float64) *member {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.members[site]
	if m == nil || m.joined {
		return nil
	}
	m.joined, m.weight = true, weight
	return m
}

// write holds a copy of chunk index of m's update, blocking while it is a
// window or more ahead of the chunk to combine, and combines every chunk
// that is then complete.
func (l *lockstep) write(m *member, index int, xs blas32.Vector) error {
	if m == nil {
		return errors.New("not a site of this round's sum, or its sink is already taken")
	}
	if !(m.weight > 0) || m.weight > math.MaxFloat64 {
		return fmt.Errorf("weight %v is not a finite positive number", m.weight)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if index >= l.next+LockstepWindow && m.failed == nil && l.err == nil {
		waitingFor := l.next
		patience := time.AfterFunc(l.patience, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.next == waitingFor && l.err == nil {
				l.leaveOutSlow(waitingFor)
			}
		})
		defer patience.Stop()
	}
	for index >= l.next+LockstepWindow && m.failed == nil && l.err == nil {
		l.moved.Wait()
	}
	switch {
	case l.err != nil:
		return l.err
	case m.failed != nil:
		return m.failed
	case index < l.next || m.chunks[index] != nil:
		return fmt.Errorf("chunk %d delivered twice", index)
	}
	buf := l.buffer()[:xs.N]
	copy(buf, xs.Data)
	m.chunks[index] = buf
	m.delivered++
	l.advance()
	if l.err != nil {
		return l.err
	}
	return m.failed
}

func (l *lockstep) buffer() []float32 {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b[:cap(b)]
	}
	return make([]float32, l.sum.chunkBytes/4)
}

// leaveOutSlow fails the live members that have not delivered chunk c
// while another waited LockstepPatience for it, and combines what is then
// complete (l.mu held).
func (l *lockstep) leaveOutSlow(c int) {
	for _, m := range l.live() {
		if m.chunks[c] == nil {
			m.failed = fmt.Errorf("too slow for the round's lockstep: chunk %d not delivered %v after another site was held back for it", c, l.patience)
		}
	}
	l.advance()
	l.moved.Broadcast()
}

// live is the members still in the round, in site order.
func (l *lockstep) live() []*member {
	var out []*member
	for _, site := range slices.Sorted(maps.Keys(l.members)) {
		if m := l.members[site]; m.failed == nil {
			out = append(out, m)
		}
	}
	return out
}

// advance combines chunk next while every live member holds it.
func (l *lockstep) advance() {
	for l.err == nil && l.next < l.sum.chunks {
		live := l.live()
		if len(live) == 0 {
			return
		}
		for _, m := range live {
			if m.chunks[l.next] == nil {
				return
			}
		}
		l.combine(l.next, live)
		for _, m := range live {
			l.free = append(l.free, m.chunks[l.next])
			delete(m.chunks, l.next)
		}
		l.next++
		l.moved.Broadcast()
	}
}

// combine bounds the live members' chunk c and writes the rule's aggregate
// of them into the sum's buffer.
func (l *lockstep) combine(c int, live []*member) {
	floats := l.sum.chunkBytes / 4
	lo := c * floats
	g := l.global[lo : lo+len(live[0].chunks[c])]
	xs := make([][]float32, len(live))
	for i, m := range live {
		xs[i] = m.chunks[c]
	}
	k := &kept{}
	frac := float64(len(g)) / float64(len(l.global))
	for i, v := range l.rule.bound(g, xs, frac) {
		m := live[i]
		switch {
		case v.refused:
			m.failed = fmt.Errorf("norm bound, chunk %d: %s", c, v.reason())
			l.drop(m)
			continue
		case v.clipped:
			if m.clips++; m.reason == "" {
				m.reason = fmt.Sprintf("chunk %d: %s", c, v.reason())
			}
		}
		k.xs, k.scales, k.weights = append(k.xs, xs[i]), append(k.scales, v.scale), append(k.weights, m.weight)
	}
	out := l.out[:len(g)]
	if err := l.rule.combine(g, k, false, out); err != nil {
		l.fail(fmt.Errorf("aggregate (%s) of chunk %d: %w", l.rule.method(), c, err))
		return
	}
	copy(l.sum.acc.Data[lo:lo+len(g)], out)
}

// drop releases the chunks a member that left still holds; the current
// chunk's copy stays with the caller of combine.
func (l *lockstep) drop(m *member) {
	for i, b := range m.chunks {
		if i != l.next {
			l.free = append(l.free, b)
			delete(m.chunks, i)
		}
	}
	l.moved.Broadcast()
}

func (l *lockstep) fail(err error) {
	if l.err == nil {
		l.err = err
	}
	l.moved.Broadcast()
}

func (l *lockstep) abort(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail(err)
}

// done ends site's stream (see StreamSum.Done); after a whole stream it
// blocks until the site's chunks are combined.
func (l *lockstep) done(site string, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.members[site]
	if m == nil {
		return fmt.Errorf("%s is not a site of this round's sum", site)
	}
	if err != nil && m.failed == nil {
		l.leave(m, err)
	}
	// Every chunk delivered: the verdict waits until they are combined
	// (the bound may yet refuse one), which needs only the others.
	for err == nil && len(m.chunks) > 0 && m.failed == nil && l.err == nil {
		l.moved.Wait()
	}
	if l.err != nil {
		return l.err
	}
	return m.failed
}

// leave fails m with err: the chunks it holds are dropped, never
// combined, and its stream, if the window holds it back, wakes to the
// failure (l.mu held).
func (l *lockstep) leave(m *member, err error) {
	m.failed = err
	for i, b := range m.chunks {
		l.free = append(l.free, b)
		delete(m.chunks, i)
	}
	l.moved.Broadcast()
	l.advance() // the others may have been waiting for it
}

// withdraw leaves m out of the round now (see SiteSink.Withdraw), unless
// it has failed already or delivered its whole update.
func (l *lockstep) withdraw(m *member, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.failed == nil && m.delivered < l.sum.chunks {
		l.leave(m, err)
	}
}

// complete says whether every chunk was combined.
func (l *lockstep) complete() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.err != nil:
		return l.err
	case l.next < l.sum.chunks:
		return fmt.Errorf("chunk %d of the model was delivered by no site still in the round", l.next)
	}
	return nil
}

func (l *lockstep) clippedReasons() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for site, m := range l.members {
		if m.clips > 0 && m.failed == nil {
			out[site] = fmt.Sprintf("norm bound clipped %d of %d chunks; first %s", m.clips, l.sum.chunks, m.reason)
		}
	}
	return out
}
