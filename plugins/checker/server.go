package checker

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	checkerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/checker/v1"
)

// Serve runs this process as a checker plugin serving c, for the site
// that started it, and returns when the site ends it. It is all a
// plugin's main does:
//
//	func main() { checker.Serve(imports.New()) }
//
// Run by hand (without the site's handshake), it says so and exits with
// status 1. c's errors reach the site as "could not decide", with their
// text; the site refuses the job on them.
func Serve(c Checker) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: Glue(c)},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// grpcServer is the plugin side of the wire contract: it serves impl.
// impl's errors travel as codes.Unknown with their text, never as
// codes.Unavailable, which the host reads as a broken connection; a
// request beyond the contract's bounds is codes.InvalidArgument, refused
// before impl sees it. impl's decision travels as it is: the host judges
// it, in one place.
type grpcServer struct {
	checkerv1.UnimplementedCheckerServer
	impl Checker
}

// Configure hands the configuration to impl.
func (s *grpcServer) Configure(ctx context.Context, m *checkerv1.ConfigureRequest) (*checkerv1.ConfigureResponse, error) {
	if err := checkConfig(m.GetConfig()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.impl.Configure(ctx, m.GetConfig()); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &checkerv1.ConfigureResponse{}, nil
}

// Check asks impl to decide.
func (s *grpcServer) Check(ctx context.Context, m *checkerv1.CheckRequest) (*checkerv1.CheckResponse, error) {
	j := jobFromProto(m)
	if err := CheckJob(j); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d, err := s.impl.Check(ctx, j)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return decisionToProto(d), nil
}
