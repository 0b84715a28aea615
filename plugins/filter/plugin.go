package filter

import (
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
	return plugins.Kind{Name: PluginName, Handshake: Handshake(), Plugin: Glue(nil)}
}

// Glue is the filter kind's go-plugin glue (plugins.GRPC): on the plugin
// side it serves impl over gRPC; on the host side (impl nil) it makes
// the gRPC client of the plugin's Filter service.
func Glue(impl Filter) *plugins.GRPC[Filter] {
	return &plugins.GRPC[Filter]{Impl: impl,
		Register: func(s *grpc.Server, impl Filter) { filterv1.RegisterFilterServer(s, &grpcServer{impl: impl}) },
		Dial:     func(conn *grpc.ClientConn) any { return filterv1.NewFilterClient(conn) },
	}
}
