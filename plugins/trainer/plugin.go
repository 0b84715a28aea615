package trainer

import (
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/hearthfl/hearth/plugins"
	trainerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/trainer/v1"
)

// The trainer kind's go-plugin handshake. The cookie only catches a
// binary that is not a trainer plugin; the pinned hash is the security
// control. The Python side (python/hearth_trainer.py) checks the same
// values.
const (
	// PluginName is the name the trainer is served under, and the kind's
	// name in logs and errors.
	PluginName = "trainer"
	// ProtocolVersion is the version of the wire contract
	// (hearth.plugin.trainer.v1).
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue are the handshake cookie.
	MagicCookieKey   = "HEARTH_TRAINER_PLUGIN"
	MagicCookieValue = "8e2f4b17-trainer-v1"
)

// Handshake is the trainer kind's handshake, the same on both sides.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// Kind is the trainer kind as the plugin loader needs it.
func Kind() plugins.Kind {
	return plugins.Kind{Name: PluginName, Handshake: Handshake(), Plugin: Glue(nil)}
}

// Glue is the trainer kind's go-plugin glue (plugins.GRPC): on the plugin
// side it serves impl over gRPC; on the host side (impl nil) it makes
// the gRPC client of the plugin's Trainer service.
func Glue(impl Trainer) *plugins.GRPC[Trainer] {
	return &plugins.GRPC[Trainer]{Impl: impl,
		Register: func(s *grpc.Server, impl Trainer) { trainerv1.RegisterTrainerServer(s, &grpcServer{impl: impl}) },
		Dial:     func(conn *grpc.ClientConn) any { return trainerv1.NewTrainerClient(conn) },
	}
}
