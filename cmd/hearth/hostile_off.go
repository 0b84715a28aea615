//go:build !hostile

package main

import (
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// hostileSite is nil in every build but the integration tests' hostile one
// (hostile.go): sites send what they computed.
var hostileSite func(m *job.Manifest, global *model.Model, answer proto.Message) error

// hostileSwarm is nil too: sites take part in swarm rounds as the job says.
var hostileSwarm func(m *job.Manifest, task *hearthv1.SwarmTask, basis *model.Model, send func(to string, m proto.Message, oneWay bool))

// hostileStreams is the site's streams as they are in this build.
func hostileStreams(m *stream.Manager) participant.Streams { return m }

// hostileSigns does nothing in this build: a site signs only what it
// computed.
func hostileSigns(*envelope.Signer) {}

// hostileServer does nothing in this build: the server relays what it is
// given to relay.
func hostileServer(*node.Node, func(string) string) (stop func(), err error) { return func() {}, nil }

// hostileEvidence is the host's own evidence in this build.
func hostileEvidence(e participant.Evidence) participant.Evidence { return e }
