// Package liveness is the actor every Hearth process runs to show it is up
// and reachable through the signed bus: it answers each Ping with a Pong
// and logs each Notice it receives.
package liveness

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/bus/bridge"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Responder answers pings on behalf of participant Self.
type Responder struct {
	Self string
	Log  *slog.Logger
	// Noticed, if set, is called with each notice (tests, the demo).
	Noticed func(from string, n *hearthv1.Notice)
}

// Props makes the actor's props.
func (r *Responder) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return r })
}

// Receive implements actor.Actor.
func (r *Responder) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *hearthv1.Ping:
		from, _ := bridge.OriginOf(ctx)
		r.Log.Debug("ping", "from", from.Sender.Name, "seq", m.Seq)
		ctx.Respond(&hearthv1.Pong{Seq: m.Seq, Text: m.Text, Responder: r.Self, Payload: m.Payload})
	case *hearthv1.Notice:
		from, _ := bridge.OriginOf(ctx)
		r.Log.Info("notice", "from", from.Sender.Name, "text", m.Text)
		if r.Noticed != nil {
			r.Noticed(from.Sender.Name, m)
		}
	}
}
