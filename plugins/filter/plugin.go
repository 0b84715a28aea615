package filter

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/hearthfl/hearth/plugins"
	filterv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/filter/v1"
)

// The filter kind's go-plugin handshake. The cookie only catches a binary
// that is not a filter plugin (run by hand, or pinned in the wrong
// policy); the pinned hash is the security control.
const (
	// PluginName is the name the filter is served under, and the kind's
	// name in logs and errors.
	PluginName = "filter"
	// ProtocolVersion is the version of the wire contract
	// (hearth.plugin.filter.v1); a plugin built against another version
	// is refused when it starts.
	ProtocolVersion = 1
	// MagicCookieKey and MagicCookieValue are the handshake cookie.
	MagicCookieKey   = "HEARTH_FILTER_PLUGIN"
	MagicCookieValue = "5c1d93a0-privacy-filter-v1"
)

// Handshake is the filter kind's handshake, the same on both sides.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// Kind is the filter kind as the plugin loader needs it.
func Kind() plugins.Kind {
	return plugins.Kind{Name: PluginName, Handshake: Handshake(), Plugin: &GRPCPlugin{}}
}

// GRPCPlugin is the filter kind's go-plugin glue. On the plugin side it
// serves Impl over gRPC; on the host side (Impl nil) it makes the
// connection's client. It speaks gRPC only.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the filter the plugin serves; nil on the host side.
	Impl Filter
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers Impl as the plugin's Filter service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	filterv1.RegisterFilterServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns the gRPC client of the plugin's Filter service.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return filterv1.NewFilterClient(conn), nil
}
