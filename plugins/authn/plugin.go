package authn

import (
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/hearthfl/hearth/plugins"
	authnv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/authn/v1"
)

// The authenticator kind's go-plugin handshake. The cookie only catches a
// binary that is not an authenticator plugin (run by hand, or pinned in
// the wrong policy); the pinned hash is the security control.
const (
	// PluginName is the name the authenticator is served under, and the
	// kind's name in logs and errors.
	PluginName = "authn"
	// ProtocolVersion is the version of the wire contract
	// (hearth.plugin.authn.v1); a plugin built against another version is
	// refused when it starts.
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue are the handshake cookie.
	MagicCookieKey   = "HEARTH_AUTHN_PLUGIN"
	MagicCookieValue = "e8a4b1f2-authenticator-v1"
)

// Handshake is the authenticator kind's handshake, the same on both
// sides.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// Kind is the authenticator kind as the plugin loader needs it.
func Kind() plugins.Kind {
	return plugins.Kind{Name: PluginName, Handshake: Handshake(), Plugin: Glue(nil)}
}

// Glue is the authenticator kind's go-plugin glue (plugins.GRPC): on the plugin
// side it serves impl over gRPC; on the host side (impl nil) it makes
// an Authenticator that calls the plugin over gRPC.
func Glue(impl Authenticator) *plugins.GRPC[Authenticator] {
	return &plugins.GRPC[Authenticator]{Impl: impl,
		Register: func(s *grpc.Server, impl Authenticator) {
			authnv1.RegisterAuthenticatorServer(s, &grpcServer{impl: impl})
		},
		Dial: func(conn *grpc.ClientConn) any { return &grpcClient{rpc: authnv1.NewAuthenticatorClient(conn)} },
	}
}
