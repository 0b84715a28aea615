// Package protocol is the table of Hearth's cross-process messages: every
// protobuf type a process will decode, and which kinds of participant may
// send each. Envelopes whose type is not listed for their sender's kind are
// refused before their body is decoded.
package protocol

import (
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Messages are the prototypes of every message type on the bus.
func Messages() []proto.Message {
	return []proto.Message{
		&hearthv1.Failure{},
		&hearthv1.Ping{}, &hearthv1.Pong{}, &hearthv1.Notice{},
	}
}

// Registry decodes exactly the types in Messages.
func Registry() *envelope.Registry { return envelope.NewRegistry(Messages()...) }

// Allow is who may send what.
func Allow() envelope.AllowList {
	everyone := []string{name(&hearthv1.Ping{}), name(&hearthv1.Pong{}), name(&hearthv1.Failure{})}
	return envelope.AllowList{
		pki.KindServer:     append(everyone, name(&hearthv1.Notice{})),
		pki.KindSite:       everyone,
		pki.KindAggregator: everyone,
		pki.KindAdmin:      append(everyone, name(&hearthv1.Notice{})),
	}
}

// Name is a message's fully qualified type name, as carried in envelope
// headers and used in Allow and bridge routes.
func Name(m proto.Message) string { return name(m) }

func name(m proto.Message) string { return string(proto.MessageName(m)) }
