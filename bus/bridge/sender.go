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
	}, true
}
