package authn

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authnv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/authn/v1"
)

// Serve runs this process as an authenticator plugin serving a, for the
// site that started it, and returns when the site ends it. It is all a
// plugin's main does:
//
//	func main() { authn.Serve(ldap.New()) }
//
// Run by hand (without the site's handshake), it says so and exits with
// status 1. a's errors reach the site as "could not decide", with their
// text.
func Serve(a Authenticator) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: Glue(a)},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// grpcServer is the plugin side of the wire contract: it serves impl.
// impl's errors travel as codes.Unknown with their text, never as
// codes.Unavailable, which the host reads as a broken connection; a
// request that does not convert is codes.InvalidArgument.
type grpcServer struct {
	authnv1.UnimplementedAuthenticatorServer
	impl Authenticator
}

// Configure hands the configuration to impl.
func (s *grpcServer) Configure(ctx context.Context, m *authnv1.ConfigureRequest) (*authnv1.ConfigureResponse, error) {
	if err := s.impl.Configure(ctx, m.GetConfig()); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &authnv1.ConfigureResponse{}, nil
}

// Authenticate asks impl to decide.
func (s *grpcServer) Authenticate(ctx context.Context, m *authnv1.AuthenticateRequest) (*authnv1.AuthenticateResponse, error) {
	r, err := requestFromProto(m)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d, err := s.impl.Authenticate(ctx, r)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &authnv1.AuthenticateResponse{Decision: decisionToProto(d)}, nil
}
