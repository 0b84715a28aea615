package checker

import (
	"context"

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
	return plugins.Kind{Name: PluginName, Handshake: Handshake(), Plugin: &GRPCPlugin{}}
}

// GRPCPlugin is the checker kind's go-plugin glue. On the plugin side it
// serves Impl over gRPC; on the host side (Impl nil) it makes a Checker
// that calls the plugin over gRPC and checks its answers. It speaks gRPC
// only.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the checker the plugin serves; nil on the host side.
	Impl Checker
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers Impl as the plugin's Checker service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	checkerv1.RegisterCheckerServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Checker that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &grpcClient{rpc: checkerv1.NewCheckerClient(conn)}, nil
}
