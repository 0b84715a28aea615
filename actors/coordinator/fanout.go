package coordinator

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// askSites asks each site its message (msg(site)) through the bridge, all
// at once and each within timeout, and calls answer in the actor for each
// as it comes: with the site's message, or with why there is none (its
// failure or refusal, a timeout; bounded), then done once every site has
// answered. With no sites, done is called at once.
func (c *Coordinator) askSites(ctx actor.Context, sites []string, msg func(site string) proto.Message, timeout time.Duration,
	answer func(site string, reply proto.Message, why string), done func()) {
	left := len(sites)
	if left == 0 {
		done()
		return
	}
	for _, s := range sites {
		site := s
		future := ctx.RequestFuture(c.cfg.Bridge, &bridge.Ask{To: site, Msg: msg(site), Timeout: timeout}, timeout+time.Second)
		ctx.ReenterAfter(future, func(res any, err error) {
			switch r := res.(type) {
			case *bridge.Reply:
				if f, ok := r.Msg.(*hearthv1.Failure); ok {
					answer(site, nil, envelope.Clip(f.Message, maxReason))
				} else {
					answer(site, r.Msg, "")
				}
			case *bridge.Failed:
				answer(site, nil, envelope.Clip(r.Err.Error(), maxReason))
			default:
				if err == nil {
					err = fmt.Errorf("answered %T", res)
				}
				answer(site, nil, envelope.Clip(err.Error(), maxReason))
			}
			if left--; left == 0 {
				done()
			}
		})
	}
}
