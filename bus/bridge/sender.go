package bridge

import (
	"strconv"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/bus/pki"
)

// Message headers the bridge sets on everything it delivers to an actor.
const (
	headerSender = "hearth-sender"
	headerOrg    = "hearth-sender-org"
	headerKind   = "hearth-sender-kind"
	headerRole   = "hearth-sender-role"
	headerJob    = "hearth-job"
	headerRound  = "hearth-round"
	headerID     = "hearth-message-id"
	headerSealed = "hearth-sealed"
	headerOneWay = "hearth-one-way"
)

// Origin is where a delivered message came from: the verified sender and
// the header fields an actor may need.
type Origin struct {
	Sender    pki.Identity
	JobID     string
	Round     int64
	MessageID string
	// Sealed: the body came sealed to this participant's key, so no one on
	// the way (the hub, the server) could read it.
	Sealed bool
	// OneWay: the sender asked for no answer (an envelope of kind
	// message); the actor's sender then drops whatever it is answered.
	OneWay bool
}

// OriginOf returns the origin of the message an actor is handling; ok is
// false for messages that did not come through the bridge.
func OriginOf(ctx actor.Context) (o Origin, ok bool) {
	h := ctx.MessageHeader()
	if h == nil || h.Get(headerSender) == "" {
		return Origin{}, false
	}
	round, _ := strconv.ParseInt(h.Get(headerRound), 10, 64)
	return Origin{
		Sender: pki.Identity{Name: h.Get(headerSender), Org: h.Get(headerOrg),
			Kind: pki.Kind(h.Get(headerKind)), Role: pki.Role(h.Get(headerRole))},
		JobID: h.Get(headerJob), Round: round, MessageID: h.Get(headerID), Sealed: h.Get(headerSealed) == "1",
		OneWay: h.Get(headerOneWay) == "1",
	}, true
}

// Delivered is msg as the bridge hands it to an actor: with the headers
// OriginOf reads, and sender for its answer. Tests of an actor that sits
// behind a bridge use it to stand in for the bridge.
func Delivered(o Origin, msg any, sender *actor.PID) *actor.MessageEnvelope {
	h := map[string]string{headerSender: o.Sender.Name, headerOrg: o.Sender.Org, headerKind: string(o.Sender.Kind),
		headerRole: string(o.Sender.Role), headerJob: o.JobID, headerRound: strconv.FormatInt(o.Round, 10), headerID: o.MessageID}
	if o.Sealed {
		h[headerSealed] = "1"
	}
	if o.OneWay {
		h[headerOneWay] = "1"
	}
	return &actor.MessageEnvelope{Header: h, Message: msg, Sender: sender}
}
