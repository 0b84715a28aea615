package auditor

import (
	"errors"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/bus/bridge"
)

// Append asks the auditor actor to append Event to its log. Request it
// (RequestFuture, or ctx.Request from an actor) to get an *Appended back;
// Send it to write without an answer, in which case a failure is logged.
type Append struct {
	Event Event
}

// Appended answers a requested Append: the record as stored, or why it
// could not be stored.
type Appended struct {
	Record Record
	Err    error
}

// Actor writes audit records for the other actors of its process, so that
// they never wait on disk: they Send (or Request) an *Append. Appends are
// written in the order the actor receives them. The log is durable state
// kept outside the actor: a supervised restart keeps using the same Log.
type Actor struct {
	Log    *Log
	Logger *slog.Logger // nil discards
}

// Props makes the actor's props.
func (a *Actor) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return a })
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Append:
		var (
			rec Record
			err error
		)
		switch {
		case m == nil:
			err = errors.New("audit: nil Append message")
		case a.Log == nil:
			err = errors.New("audit: actor has no log")
		default:
			rec, err = a.Log.Append(m.Event)
		}
		if err != nil {
			action := ""
			if m != nil {
				action = m.Event.Action
			}
			a.logger().Error("audit record not written", "action", action, "err", err)
		}
		if ctx.Sender() != nil {
			ctx.Respond(&Appended{Record: rec, Err: err})
		}
	}
}

func (a *Actor) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// FromOrigin starts the event that an actor records for a message it is
// handling from another process: Peer, JobID and Round come from the
// bridge's verified origin (bridge.OriginOf), and Detail["message_id"]
// from the message id. The caller sets PeerEvent from the message body.
// ok is false, and the event carries only action, for a message that did
// not come through the bridge.
func FromOrigin(ctx actor.Context, action string) (e Event, ok bool) {
	o, ok := bridge.OriginOf(ctx)
	if !ok {
		return Event{Action: action}, false
	}
	e = Event{Action: action, JobID: o.JobID, Round: o.Round, Peer: o.Sender.Name}
	if o.MessageID != "" {
		e.Detail = map[string]string{"message_id": o.MessageID}
	}
	return e, true
}
