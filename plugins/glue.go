package plugins

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// GRPC is a plugin kind's go-plugin glue, the same for every kind: on the
// plugin side it registers the kind's gRPC service for Impl (Register);
// on the host side (Impl unset) it makes the kind's client over the
// plugin's connection (Dial), the value Process.Call hands to its
// function. It speaks gRPC only. Each kind makes its own (authn.Glue,
// filter.Glue, ...).
type GRPC[I any] struct {
	plugin.NetRPCUnsupportedPlugin
	Impl     I
	Register func(s *grpc.Server, impl I)
	Dial     func(conn *grpc.ClientConn) any
}

var _ plugin.GRPCPlugin = (*GRPC[any])(nil)

// GRPCServer registers Impl's service.
func (p *GRPC[I]) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.Register(s, p.Impl)
	return nil
}

// GRPCClient makes the kind's client over conn.
func (p *GRPC[I]) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return p.Dial(conn), nil
}
