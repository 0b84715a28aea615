// Package protocol is the table of Hearth's cross-process messages: every
// protobuf type a process will decode, and which kinds of participant may
// send each. Envelopes whose type is not listed for their sender's kind are
// refused before their body is decoded.
package protocol

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Who may send what. Liveness and failures are everyone's; the rest
// follows the roles: admins command the server, the server coordinates the
// sites, the sites answer; in swarm learning sites send each other updates
// and models, and in a job under homomorphic encryption their threshold
// shares of the key (siteToSite), and only those; in an attested job a site
// asks an aggregation host for its evidence and sends it updates
// (siteToHost), and the host answers and sends the new model (hostToSite).
var (
	everyone = []proto.Message{&hearthv1.Ping{}, &hearthv1.Pong{}, &hearthv1.Failure{}}
	byKind   = map[pki.Kind][]proto.Message{
		pki.KindAdmin: {&hearthv1.Notice{},
			&hearthv1.SubmitJob{}, &hearthv1.ListJobs{}, &hearthv1.GetJob{}, &hearthv1.AbortJob{}, &hearthv1.DownloadJob{},
			&hearthv1.GetCredentialKeys{}, &hearthv1.SignedSiteCommand{}, &hearthv1.GetConnections{}},
		pki.KindServer: {&hearthv1.Notice{},
			&hearthv1.JobAccepted{}, &hearthv1.JobList{}, &hearthv1.JobInfo{}, &hearthv1.JobResult{},
			&hearthv1.JoinJob{}, &hearthv1.GetLayout{}, &hearthv1.TrainTask{}, &hearthv1.EvaluateTask{}, &hearthv1.LeaveJob{},
			&hearthv1.SwarmTask{}, &hearthv1.SwarmEvaluate{}, &hearthv1.AttestHosts{},
			&hearthv1.HESetup{}, &hearthv1.HEKeyExchange{}, &hearthv1.HEKeys{}, &hearthv1.HEReveal{}, &hearthv1.HEDecrypt{},
			&hearthv1.CredentialKeys{}, &hearthv1.GetCredentialKey{}, &hearthv1.Preflight{}, &hearthv1.PreflightReport{},
			&hearthv1.SignedSiteCommand{}, &hearthv1.SealedSiteAnswer{}, &hearthv1.Connections{}},
		pki.KindSite: {&hearthv1.JobJoined{}, &hearthv1.ModelLayout{}, &hearthv1.TrainResult{}, &hearthv1.EvaluateResult{}, &hearthv1.SwarmTrained{},
			&hearthv1.HECommitted{}, &hearthv1.HEShared{}, &hearthv1.HEReady{}, &hearthv1.HERevealed{}, &hearthv1.HEDecryptionShare{},
			&hearthv1.SealingKey{}, &hearthv1.SignedPreflightAnswer{}, &hearthv1.SealedSiteAnswer{}, &hearthv1.HostsAttested{}},
		pki.KindAggregator: {&hearthv1.JobJoined{}, &hearthv1.SwarmTrained{}},
	}
	// What a site may send another site: nothing of the server's business.
	siteToSite = []proto.Message{&hearthv1.SwarmUpdate{}, &hearthv1.SwarmModel{}, &hearthv1.SwarmReceived{}, &hearthv1.SwarmLocal{},
		&hearthv1.HEThresholdShare{}, &hearthv1.HEShareTaken{}}
	// What a site may send an aggregation host, and the host a site.
	siteToHost = []proto.Message{&hearthv1.AttestationRequest{}, &hearthv1.SwarmUpdate{}, &hearthv1.SwarmReceived{}}
	hostToSite = []proto.Message{&hearthv1.AttestationEvidence{}, &hearthv1.SwarmModel{}, &hearthv1.SwarmReceived{}}
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
	for _, m := range append(append(slices.Clone(siteToSite), siteToHost...), hostToSite...) {
		if !contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Registry decodes exactly the types in Messages.
func Registry() *envelope.Registry { return envelope.NewRegistry(Messages()...) }

// Allow is who may send what, to anyone.
func Allow() envelope.AllowList {
	allow := envelope.AllowList{}
	for kind, msgs := range byKind {
		for _, m := range append(append([]proto.Message{}, everyone...), msgs...) {
			allow[kind] = append(allow[kind], Name(m))
		}
	}
	for _, m := range siteToSite {
		allow[pki.KindSite] = append(allow[pki.KindSite], Name(m))
	}
	for kind, msgs := range map[pki.Kind][]proto.Message{pki.KindSite: siteToHost, pki.KindAggregator: hostToSite} {
		for _, m := range msgs {
			if !slices.Contains(allow[kind], Name(m)) {
				allow[kind] = append(allow[kind], Name(m))
			}
		}
	}
	return allow
}

// AllowFor is who may send what to a participant of kind self: only the
// kinds that may address it (pki.MayAddress), and of a site's messages the
// ones meant for self's kind: the server hears a site's answers and never
// its swarm updates or models, a site hears another site's swarm updates
// and models and nothing else (bus/bridge then admits those only within a
// job both sites are in), and a site and an aggregation host hear from
// each other only what attested aggregation needs. An admin's envelope at a site is refused by type
// as well as by kind.
func AllowFor(self pki.Kind) envelope.AllowList {
	allow := envelope.AllowList{}
	for kind, msgs := range byKind {
		if !pki.MayAddress(kind, self) {
			continue
		}
		switch {
		case kind == pki.KindSite && self == pki.KindSite:
			msgs = siteToSite
		case kind == pki.KindSite && self == pki.KindAggregator:
			msgs = siteToHost
		case kind == pki.KindAggregator && self == pki.KindSite:
			msgs = hostToSite
		}
		for _, m := range append(append([]proto.Message{}, everyone...), msgs...) {
			allow[kind] = append(allow[kind], Name(m))
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
