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

// Who may send what. Liveness and failures are everyone's; the rest
// follows the roles: admins command the server, the server coordinates the
// sites, the sites answer.
var (
	everyone = []proto.Message{&hearthv1.Ping{}, &hearthv1.Pong{}, &hearthv1.Failure{}}
	byKind   = map[pki.Kind][]proto.Message{
		pki.KindAdmin: {&hearthv1.Notice{},
			&hearthv1.SubmitJob{}, &hearthv1.ListJobs{}, &hearthv1.GetJob{}, &hearthv1.AbortJob{}, &hearthv1.DownloadJob{}},
		pki.KindServer: {&hearthv1.Notice{},
			&hearthv1.JobAccepted{}, &hearthv1.JobList{}, &hearthv1.JobInfo{}, &hearthv1.JobResult{},
			&hearthv1.JoinJob{}, &hearthv1.TrainTask{}, &hearthv1.EvaluateTask{}, &hearthv1.LeaveJob{}},
		pki.KindSite:       {&hearthv1.JobJoined{}, &hearthv1.TrainResult{}, &hearthv1.EvaluateResult{}},
		pki.KindAggregator: {},
	}
)

// Messages are the prototypes of every message type on the bus.
func Messages() []proto.Message {
	out := append([]proto.Message{}, everyone...)
	for _, kind := range []pki.Kind{pki.KindAdmin, pki.KindServer, pki.KindSite, pki.KindAggregator} {
		for _, m := range byKind[kind] {
			if !contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// Registry decodes exactly the types in Messages.
func Registry() *envelope.Registry { return envelope.NewRegistry(Messages()...) }

// Allow is who may send what.
func Allow() envelope.AllowList {
	allow := envelope.AllowList{}
	for kind, msgs := range byKind {
		for _, m := range append(append([]proto.Message{}, everyone...), msgs...) {
			allow[kind] = append(allow[kind], Name(m))
		}
	}
	return allow
}

// AllowFor is Allow narrowed to the senders that may address a participant
// of kind self (pki.MayAddress): at a site only the server's messages are
// listed, so that an admin's or another site's envelope is refused by type
// as well as by kind (bus/bridge refuses it by kind in any case).
func AllowFor(self pki.Kind) envelope.AllowList {
	allow := Allow()
	for kind := range allow {
		if !pki.MayAddress(kind, self) {
			delete(allow, kind)
		}
	}
	return allow
}

// Table is this package's table as a value, for what is handed the
// protocol instead of importing it: bus/node.Options.Protocol (the bus
// knows no learning).
type Table struct{}

// Registry is the package's Registry.
func (Table) Registry() *envelope.Registry { return Registry() }

// AllowFor is the package's AllowFor.
func (Table) AllowFor(self pki.Kind) envelope.AllowList { return AllowFor(self) }

// Name is a message's fully qualified type name, as carried in envelope
// headers and used in Allow and bridge routes.
func Name(m proto.Message) string { return string(proto.MessageName(m)) }

func contains(ms []proto.Message, m proto.Message) bool {
	for _, x := range ms {
		if Name(x) == Name(m) {
			return true
		}
	}
	return false
}
