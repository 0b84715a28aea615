// Package aggregator is the aggregator actor and the streamed sums: it
// combines a round's model updates under the job's Rule (FedAvg weighted by
// each site's weight, coordinate-wise median, trimmed mean, Krum or
// Multi-Krum), after bounding each update's distance from the round's
// global model (clipped or refused, with the reason reported), and hands
// out the aggregate only once every value of it is checked finite.
//
// Made with HoldingProps, the actor is the only owner of a job's global
// model and of every buffer that holds or sums it (see held.go for the
// protocol): the workflow keeps round bookkeeping only. Made with Props, it
// aggregates the rounds it is handed a model for (Begin with a Layout).
//
// Inline models (at most one envelope, job.InlineLimit bytes) are held
// whole until the round closes: N sites cost N inline models. Streamed
// models never are: see StreamSum, whose memory is one model plus a window
// of chunks per site.
package aggregator

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Begin starts a round whose updates must have Layout's names and shapes;
// Layout is also the round's global model, from which each update's
// distance is bounded. Rule is the job's (the zero Rule is the default).
// With Layout nil, an aggregator that holds the job's model (HoldingProps)
// begins the round on the model it holds and answers *Offered: the model
// to send Sites, inline or as one stream offer each.
//
// Expect names sites that hold the round's global model already (a swarm
// round's members, and the aggregating site itself) and whose streamed
// updates (FoldStream) the round awaits without offering them the model: a
// lockstep sum waits for theirs as for those of Sites.
type Begin struct {
	Round  int64
	Layout *model.Model
	Rule   Rule
	Sites  []string
	Expect []string
}

// Fold adds one site's update with its weight (the site's committed,
// capped sample count), used by FedAvg. The aggregator reads the update's
// values until the round closes, without copying them when they lie in
// one array, and never changes them: neither may the sender.
type Fold struct {
	Round  int64
	Site   string
	Update *model.Model
	Weight float64
	// Excluded names the update's tensors the site's filters excluded:
	// FedAvg averages each of them over the other sites only (the global
	// model's values where no site sent it). The robust rules count them
	// as the global model's values.
	Excluded []string
}

// Close ends the round; the aggregator responds *Closed. Every pull into a
// streamed round must have ended first (StreamPulled; Withdraw ends one).
// WantMean asks, for a streamed round, for Closed.Mean too: a copy of the
// new held model in the Go heap, the requester's own (a swarm aggregator
// keeps the round's model at its site), or with Config.HeapModels the held
// model itself, which the aggregator then holds no more; an inline round's
// Mean is always set.
type Close struct {
	Round    int64
	WantMean bool
}

// Closed is the round's result: the aggregate of the folded updates, or
// Err (nothing folded, a round mismatch, too few updates for the rule, a
// non-finite aggregate). Sites lists the updates aggregated. Refused lists
// updates that did not count (wrong layout, bad weight, a second update,
// over the norm bound with on_violation refuse), with the reason; Clipped
// lists updates that counted after being clipped to the norm bound, with
// the reason.
type Closed struct {
	Round       int64
	Mean        *model.Model
	Sites       []string
	TotalWeight float64
	Refused     map[string]string
	Clipped     map[string]string
	// Screened lists updates the rule's screen left out of this round
	// (Rule.Screen), with the reason; they were well formed and in bounds.
	Screened map[string]string
	Err      error
}

// excludedValues marks the values of the named tensors of layout: nil
// for none; an unknown or repeated name is refused.
func excludedValues(layout *model.Model, names []string) ([]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if len(names) > len(layout.Tensors) {
		return nil, fmt.Errorf("%d tensors excluded of a model of %d", len(names), len(layout.Tensors))
	}
	out := make([]bool, layout.NumParams())
	seen := map[string]bool{}
	for _, name := range names {
		off, found := 0, false
		for _, t := range layout.Tensors {
			if t.Name == name && !seen[name] {
				for k := range t.Data {
					out[off+k] = true
				}
				found = true
				break
			}
			off += len(t.Data)
		}
		if !found {
			return nil, fmt.Errorf("excluded tensor %q: not one of the model's, or named twice", clipName(name))
		}
		seen[name] = true
	}
	return out, nil
}

func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// update is one site's folded update, flattened.
type update struct {
	site   string
	x      []float32
	weight float64
	excl   []bool // per value: excluded by the site's filters; nil for none
}

// Aggregator is the actor. Its state is one round's updates and, made by
// HoldingProps, the job's global model (see Hold): a supervised restart
// loses the round in progress, which the workflow then fails.
type Aggregator struct {
	held *custody // nil: made by Props, it holds only a round's updates

	round   int64
	onHeld  bool // the round is on the held model
	rule    Rule
	layout  *model.Model
	global  []float32
	updates []update
	refused map[string]string
	// badLayout is why the round's global model was refused at Begin.
	badLayout error
}

// Props makes the actor's props.
func Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &Aggregator{} })
}

// Receive implements actor.Actor.
func (a *Aggregator) Receive(ctx actor.Context) {
	if a.held != nil && a.receiveHeld(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *Begin:
		a.begin(m)
	case *Fold:
		if err := a.fold(m); err != nil {
			a.refuse(m.Site, err.Error())
		}
	case *Close:
		ctx.Respond(a.close(m.Round))
	}
}

// receiveHeld handles what concerns the held model, and says whether it
// did.
func (a *Aggregator) receiveHeld(ctx actor.Context) bool {
	h := a.held
	switch m := ctx.Message().(type) {
	case *Begin:
		if m.Layout != nil { // a round on a model given, as Props' aggregator takes it
			a.onHeld = false
			return false
		}
		a.onHeld = true
		switch {
		case h.big != nil:
			a.begin(&Begin{Round: m.Round, Rule: m.Rule}) // refuses inline updates: no layout
			ctx.Respond(h.beginStreamed(m))
		case h.inline != nil:
			h.abandon()
			a.begin(&Begin{Round: m.Round, Layout: h.inline, Rule: m.Rule})
			ctx.Respond(h.offer(m.Round, m.Sites))
		default:
			a.begin(&Begin{Round: m.Round, Rule: m.Rule})
			ctx.Respond(&Offered{Round: m.Round, Err: errNoModel})
		}
	case *Fold:
		delete(h.expected, m.Site)
		if h.big != nil && a.onHeld {
			a.refuse(m.Site, "an inline update for a streamed model")
			return true
		}
		return false
	case *Close:
		if !a.onHeld {
			return false
		}
		a.onHeld = false
		if h.big != nil {
			refused := a.refused
			a.layout, a.global, a.updates, a.refused, a.badLayout = nil, nil, nil, nil, nil
			if refused == nil {
				refused = map[string]string{}
			}
			ctx.Respond(h.closeStreamed(m.Round, refused, m.WantMean))
			return true
		}
		c := a.close(m.Round)
		if c.Err == nil {
			h.inline = c.Mean
		}
		ctx.Respond(c)
	case *Hold:
		ctx.Respond(h.hold(m))
	case *Offer:
		ctx.Respond(h.offer(0, m.Sites))
	case *FoldStream:
		ctx.Respond(h.foldStream(ctx, m))
	case *Withdraw:
		h.withdraw(ctx, m.Site)
	case *Checkpoint:
		ctx.Respond(h.checkpoint(m.Round))
	case *sumReady:
		h.sumReady(ctx, m)
	case *pullEnded:
		h.pullEnded(ctx, m)
	case *actor.Stopped, *actor.Restarting:
		h.release()
	default:
		return false
	}
	return true
}

func (a *Aggregator) begin(m *Begin) {
	a.round, a.rule, a.layout, a.global, a.updates, a.refused = m.Round, m.Rule, nil, nil, nil, map[string]string{}
	if a.badLayout = m.Layout.Validate(); a.badLayout == nil {
		a.layout, a.global = m.Layout, flatten(m.Layout)
	}
}

func (a *Aggregator) fold(m *Fold) error {
	switch {
	case m.Round != a.round || (a.layout == nil && a.badLayout == nil):
		return fmt.Errorf("update for round %d while aggregating round %d", m.Round, a.round)
	case a.layout == nil:
		return fmt.Errorf("the round's global model is malformed: %w", a.badLayout)
	case !(m.Weight > 0) || m.Weight > math.MaxFloat64:
		return fmt.Errorf("weight %v is not a finite positive number", m.Weight)
	}
	if err := m.Update.Validate(); err != nil {
		return err
	}
	if err := a.layout.SameLayout(m.Update); err != nil {
		return err
	}
	for i, u := range a.updates {
		if u.site == m.Site { // neither counts: the site is refused
			a.updates = slices.Delete(a.updates, i, i+1)
			return errors.New("two updates in one round: both refused")
		}
	}
	if a.refused[m.Site] != "" {
		return errors.New("an update after a refused one in the same round")
	}
	excl, err := excludedValues(a.layout, m.Excluded)
	if err != nil {
		return err
	}
	a.updates = append(a.updates, update{site: m.Site, x: flatten(m.Update), weight: m.Weight, excl: excl})
	return nil
}

func (a *Aggregator) refuse(site, reason string) {
	if a.refused == nil {
		a.refused = map[string]string{}
	}
	a.refused[site] = reason
}

func (a *Aggregator) close(round int64) *Closed {
	c := &Closed{Round: round, Refused: a.refused, Clipped: map[string]string{}, Screened: map[string]string{}}
	if c.Refused == nil {
		c.Refused = map[string]string{}
	}
	defer func() { a.layout, a.global, a.updates, a.refused, a.badLayout = nil, nil, nil, nil, nil }()
	switch {
	case a.layout == nil && a.badLayout != nil && round == a.round:
		c.Err = fmt.Errorf("the round's global model is malformed: %w", a.badLayout)
		return c
	case a.layout == nil || round != a.round:
		c.Err = fmt.Errorf("close of round %d while aggregating round %d", round, a.round)
		return c
	case len(a.updates) == 0:
		c.Err = errors.New("no update was aggregated")
		return c
	}
	xs := make([][]float32, len(a.updates))
	for i, u := range a.updates {
		xs[i] = u.x
	}
	k := &kept{}
	for i, v := range a.rule.bound(a.global, xs, 1) {
		u := a.updates[i]
		switch {
		case v.refused:
			c.Refused[u.site] = "norm bound: " + v.reason()
			continue
		case v.clipped:
			c.Clipped[u.site] = "norm bound: " + v.reason()
		}
		k.xs, k.scales, k.weights, k.excl = append(k.xs, u.x), append(k.scales, v.scale), append(k.weights, u.weight), append(k.excl, u.excl)
		c.Sites = append(c.Sites, u.site)
		c.TotalWeight += u.weight
	}
	if a.rule.screens(len(k.xs)) {
		k = a.screen(k, c)
	}
	out := make([]float32, len(a.global))
	if err := a.rule.combine(a.global, k, true, out); err != nil {
		c.Err = fmt.Errorf("aggregate (%s): %w", a.rule.method(), err)
		return c
	}
	c.Mean = unflatten(a.layout, out)
	return c
}

// screen leaves out of the round the updates the rule's screen finds
// outlying (Rule.Screen) and moves them from c.Sites to c.Screened.
func (a *Aggregator) screen(k *kept, c *Closed) *kept {
	out := a.rule.outliers(a.global, k)
	if len(out) == 0 {
		return k
	}
	kept := &kept{}
	sites := c.Sites
	c.Sites, c.TotalWeight = nil, 0
	for i, site := range sites {
		if reason, ok := out[i]; ok {
			c.Screened[site] = reason
			continue
		}
		kept.xs, kept.scales, kept.weights, kept.excl = append(kept.xs, k.xs[i]), append(kept.scales, k.scales[i]), append(kept.weights, k.weights[i]), append(kept.excl, k.excl[i])
		c.Sites, c.TotalWeight = append(c.Sites, site), c.TotalWeight+k.weights[i]
	}
	return kept
}

// flatten concatenates m's tensors.
func flatten(m *model.Model) []float32 {
	if x, ok := contiguous(m); ok {
		return x // read only, as every use of an update's values here is
	}
	out := make([]float32, 0, m.NumParams())
	for _, t := range m.Tensors {
		out = append(out, t.Data...)
	}
	return out
}

// contiguous returns m's values as one slice without copying them when its
// tensors lie one after another in one array: a model of one tensor, or
// whose tensors are slices of one array each reaching to its end (cap), as
// actors/swarm's ModelSink makes them. Adjacent memory alone proves
// nothing (two allocations can be neighbours), so capacity decides.
func contiguous(m *model.Model) ([]float32, bool) {
	if len(m.Tensors) == 0 {
		return nil, false
	}
	first := m.Tensors[0].Data
	n := len(first)
	for _, t := range m.Tensors[1:] {
		if len(t.Data) == 0 || cap(first) < n+len(t.Data) || &first[:n+1][n] != &t.Data[0] {
			return nil, false
		}
		n += len(t.Data)
	}
	return first[:n:n], true
}

// unflatten cuts data into layout's tensors.
func unflatten(layout *model.Model, data []float32) *model.Model {
	out := &model.Model{Tensors: make([]model.Tensor, len(layout.Tensors))}
	off := 0
	for i, t := range layout.Tensors {
		n := len(t.Data)
		out.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: data[off : off+n : off+n]}
		off += n
	}
	return out
}
