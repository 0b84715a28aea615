//go:build !hostile

package main

import (
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// hostileSite is nil in every build but the integration tests' hostile one
// (hostile.go): sites send what they computed.
var hostileSite func(m *job.Manifest, global *model.Model, answer proto.Message) error
