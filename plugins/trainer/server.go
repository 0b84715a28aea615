package trainer

import (
	"context"
	"errors"
	"fmt"

	"github.com/hearthfl/hearth/plugins/internal/shm"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hearthfl/hearth/actors/learning/model"
	trainerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/trainer/v1"
)

// Serve runs this process as a trainer plugin serving t, for the site that
// started it, and returns when the site ends it. It is all a Go trainer's
// main does:
//
//	func main() { trainer.Serve(myTrainer{}) }
//
// Run by hand (without the site's handshake), it says so and exits with
// status 1. t's errors reach the site with their text.
func Serve(t Trainer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: Glue(t)},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// grpcServer is the plugin side of the wire contract for Go trainers: it
// maps the shared memory, serves impl and writes its models. impl's
// errors travel as codes.Unknown with their text, never as
// codes.Unavailable, which the host reads as a broken connection; a
// request that does not convert is codes.InvalidArgument.
type grpcServer struct {
	trainerv1.UnimplementedTrainerServer
	impl Trainer
}

// Configure hands the setup to impl.
func (s *grpcServer) Configure(ctx context.Context, m *trainerv1.ConfigureRequest) (*trainerv1.ConfigureResponse, error) {
	if len(m.GetArgs()) > MaxArgs {
		return nil, status.Errorf(codes.InvalidArgument, "arguments of %d bytes (at most %d)", len(m.GetArgs()), MaxArgs)
	}
	if err := s.impl.Configure(ctx, Setup{Args: m.GetArgs(), DataDir: m.GetDataDir(), WorkDir: m.GetWorkDir()}); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &trainerv1.ConfigureResponse{}, nil
}

// Prepare asks impl for the initial model and writes it into the output
// region; a model larger than the region is an error.
func (s *grpcServer) Prepare(ctx context.Context, m *trainerv1.PrepareRequest) (*trainerv1.PrepareResponse, error) {
	out := m.GetOutput()
	if err := checkRegion(out, -1); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	init, err := s.impl.Prepare(ctx)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	if err := init.Validate(); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	layout, err := layoutToWire(model.LayoutOf(init))
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	if int64(init.Bytes()) > out.GetLength() {
		return nil, status.Errorf(codes.Unknown, "the initial model takes %d bytes, the site allows %d", init.Bytes(), out.GetLength())
	}
	mp, err := shm.Map(out.GetPath(), out.GetOffset()+int64(init.Bytes()), true)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer mp.Unmap()
	writeModel(mp.Data[out.GetOffset():], init)
	return &trainerv1.PrepareResponse{Layout: layout}, nil
}

// Train maps the global model, asks impl and writes its model into the
// output region. The response's layout is the one impl returned, even
// when it is not the request's (its values are then not written): the
// host judges the answer, in one place.
func (s *grpcServer) Train(ctx context.Context, m *trainerv1.TrainRequest) (*trainerv1.TrainResponse, error) {
	layout, values, err := layoutFromWire(m.GetLayout())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	size := 4 * int64(values)
	if err := errors.Join(checkRegion(m.GetGlobal(), size), checkRegion(m.GetOutput(), size)); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	in, err := shm.Map(m.GetGlobal().GetPath(), m.GetGlobal().GetOffset()+size, false)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer in.Unmap()
	outMap, err := shm.Map(m.GetOutput().GetPath(), m.GetOutput().GetOffset()+size, true)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer outMap.Unmap()
	global := view(in.Data[m.GetGlobal().GetOffset():], layout)
	trained, res, err := s.impl.Train(ctx, int(m.GetRound()), global)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	if trained == nil {
		return nil, status.Error(codes.Unknown, "the trainer returned no model")
	}
	if trained.NumParams() == values {
		writeModel(outMap.Data[m.GetOutput().GetOffset():], trained)
	}
	wl, err := layoutToWire(model.LayoutOf(trained))
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return resultToWire(res, wl), nil
}

// Evaluate maps the model and asks impl.
func (s *grpcServer) Evaluate(ctx context.Context, m *trainerv1.EvaluateRequest) (*trainerv1.EvaluateResponse, error) {
	layout, values, err := layoutFromWire(m.GetLayout())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	size := 4 * int64(values)
	if err := checkRegion(m.GetModel(), size); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	in, err := shm.Map(m.GetModel().GetPath(), m.GetModel().GetOffset()+size, false)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer in.Unmap()
	split, err := splitOf(m.GetSplit())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	met, err := s.impl.Evaluate(ctx, view(in.Data[m.GetModel().GetOffset():], layout), split)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &trainerv1.EvaluateResponse{Samples: int64(met.Samples), Loss: met.Loss, Accuracy: met.Accuracy}, nil
}

// checkRegion refuses a missing region, one at an offset that is
// negative, not a multiple of 4 or absurd, and (size >= 0) one whose
// length is not size.
func checkRegion(r *trainerv1.Region, size int64) error {
	switch {
	case r == nil:
		return errors.New("a region is missing")
	case r.GetOffset() < 0 || r.GetOffset()%4 != 0 || r.GetOffset() > 1<<50 || r.GetLength() < 0 || r.GetLength() > 1<<50:
		return fmt.Errorf("a region at %d of %d bytes", r.GetOffset(), r.GetLength())
	case size >= 0 && r.GetLength() != size:
		return fmt.Errorf("a region of %d bytes, for a model of %d bytes", r.GetLength(), size)
	}
	return nil
}

// view is a model of layout whose values are b's, no copy.
func view(b []byte, layout []model.TensorShape) *model.Model {
	f := shm.Floats(b)
	m := &model.Model{Tensors: make([]model.Tensor, len(layout))}
	for i, t := range layout {
		n, _ := model.ShapeSize(t.Shape) // checked by layoutFromWire
		m.Tensors[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: f[:n:n]}
		f = f[n:]
	}
	return m
}

// writeModel copies m's values into dst, one tensor after the other.
func writeModel(dst []byte, m *model.Model) {
	f := shm.Floats(dst)
	for _, t := range m.Tensors {
		f = f[copy(f, t.Data):]
	}
}
