package checker

import (
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/hearthfl/hearth/plugins"
	checkerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/checker/v1"
)

// The checker kind's go-plugin handshake. The cookie only catches a
// binary that is not a checker plugin (run by hand, or pinned in the
// wrong policy); the pinned hash is the security control.
const (
	// PluginName is the name the checker is served under, and the kind's
	// name in logs and errors.
	PluginName = "checker"
	// ProtocolVersion is the version of the wire contract
	// (hearth.plugin.checker.v1); a plugin built against another version
	// is refused when it starts.
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue are the handshake cookie.
	MagicCookieKey   = "HEARTH_CHECKER_PLUGIN"
	MagicCookieValue = "7b2e64d9-component-checker-v1"
)

// Handshake is the checker kind's handshake, the same on both sides.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// Kind is the checker kind as the plugin loader needs it.
func Kind() plugins.Kind {
	return plugins.Kind{Name: PluginName, Handshake: Handshake(), Plugin: Glue(nil)}
}

// Glue is the checker kind's go-plugin glue (plugins.GRPC): on the plugin
// side it serves impl over gRPC; on the host side (impl nil) it makes
// a Checker that calls the plugin over gRPC and checks its answers.
func Glue(impl Checker) *plugins.GRPC[Checker] {
	return &plugins.GRPC[Checker]{Impl: impl,
		Register: func(s *grpc.Server, impl Checker) { checkerv1.RegisterCheckerServer(s, &grpcServer{impl: impl}) },
		Dial:     func(conn *grpc.ClientConn) any { return &grpcClient{rpc: checkerv1.NewCheckerClient(conn)} },
	}
}
