// Package aggregator is the FedAvg aggregator actor: it folds each site's
// model update into a running sum weighted by the site's sample count as
// the update arrives, so its memory is one model's worth whatever the
// number of sites, and hands out the weighted mean when a round closes.
package aggregator

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// Begin starts a round whose updates must have Layout's names and shapes.
type Begin struct {
	Round  int64
	Layout *model.Model
}

// Fold adds one site's update with its weight (sample count).
type Fold struct {
	Round  int64
	Site   string
	Update *model.Model
	Weight float64
}

// Close ends the round; the aggregator responds *Closed.
type Close struct{ Round int64 }

// Closed is the round's result: the weighted mean of the folded updates, or
// Err (nothing folded, or a round mismatch). Refused lists updates that did
// not fold (wrong layout, bad weight), with the reason.
type Closed struct {
	Round       int64
	Mean        *model.Model
	Sites       []string
	TotalWeight float64
	Refused     map[string]string
	Err         error
}

// Aggregator is the actor. Its state is one round's running sum: a
// supervised restart loses only the round in progress, which the
// coordinator then fails or repeats.
type Aggregator struct {
	round   int64
	sum     *model.WeightedSum
	sites   []string
	refused map[string]string
}

// Props makes the actor's props.
func Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &Aggregator{} })
}

// Receive implements actor.Actor.
func (a *Aggregator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Begin:
		a.round, a.sum, a.sites, a.refused = m.Round, model.NewWeightedSum(m.Layout), nil, map[string]string{}
	case *Fold:
		switch {
		case a.sum == nil || m.Round != a.round:
			a.refuse(m.Site, fmt.Sprintf("update for round %d while aggregating round %d", m.Round, a.round))
		default:
			if err := a.sum.Add(m.Update, m.Weight); err != nil {
				a.refuse(m.Site, err.Error())
				return
			}
			a.sites = append(a.sites, m.Site)
		}
	case *Close:
		ctx.Respond(a.close(m.Round))
	}
}

func (a *Aggregator) refuse(site, reason string) {
	if a.refused == nil {
		a.refused = map[string]string{}
	}
	a.refused[site] = reason
}

func (a *Aggregator) close(round int64) *Closed {
	c := &Closed{Round: round, Sites: a.sites, Refused: a.refused}
	switch {
	case a.sum == nil || round != a.round:
		c.Err = fmt.Errorf("close of round %d while aggregating round %d", round, a.round)
	case a.sum.Count() == 0:
		c.Err = errors.New("no update was aggregated")
	default:
		c.Mean, c.Err = a.sum.Mean()
		c.TotalWeight = a.sum.TotalWeight()
	}
	a.sum, a.sites, a.refused = nil, nil, nil
	return c
}
