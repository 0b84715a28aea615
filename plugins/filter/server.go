package filter

import (
	"context"
	"errors"
	"fmt"

	"github.com/hearthfl/hearth/plugins/internal/shm"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	filterv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/filter/v1"
)

// Serve runs this process as a filter plugin serving f, for the site that
// started it, and returns when the site ends it. It is all a plugin's
// main does:
//
//	func main() { filter.Serve(myFilter{}) }
//
// Run by hand (without the site's handshake), it says so and exits with
// status 1. f's errors reach the site as refusals, with their text.
func Serve(f Filter) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginName: Glue(f)},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// grpcServer is the plugin side of the wire contract: it maps the shared
// memory, serves impl and writes its output. impl's errors travel as
// codes.Unknown with their text, never as codes.Unavailable, which the
// host reads as a broken connection; a request that does not convert is
// codes.InvalidArgument.
type grpcServer struct {
	filterv1.UnimplementedFilterServer
	impl Filter
}

// Configure hands the arguments to impl.
func (s *grpcServer) Configure(ctx context.Context, m *filterv1.ConfigureRequest) (*filterv1.ConfigureResponse, error) {
	d, ok := directionFromWire(m.GetDirection())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unknown direction %v", m.GetDirection())
	}
	if err := s.impl.Configure(ctx, m.GetArgs(), d); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &filterv1.ConfigureResponse{}, nil
}

// Apply maps the request's regions, asks impl and writes its model into
// the output region. The response's layout is the one impl returned,
// even when it is not the request's (its values are then not written):
// the host judges the answer, in one place.
func (s *grpcServer) Apply(ctx context.Context, m *filterv1.ApplyRequest) (*filterv1.ApplyResponse, error) {
	req, err := openRequest(m)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer req.close()
	out, rep, err := s.impl.Apply(ctx, req.dir, req.global, req.local)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	if out == nil {
		return nil, status.Error(codes.Unknown, "the filter returned no model")
	}
	unchanged := learnfilter.SameMemory(out, req.local)
	if !unchanged && out.NumParams() == req.values {
		f := shm.Floats(req.outData)
		for _, t := range out.Tensors {
			f = f[copy(f, t.Data):]
		}
	}
	layout := make([]*filterv1.TensorShape, len(out.Tensors))
	for i, t := range out.Tensors {
		dims := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			dims[j] = int64(d)
		}
		layout[i] = &filterv1.TensorShape{Name: t.Name, Shape: dims}
	}
	return &filterv1.ApplyResponse{Layout: layout, Report: reportToWire(rep), Unchanged: unchanged}, nil
}

// request is one Apply's models, mapped.
type request struct {
	dir           Direction
	values        int
	global, local *model.Model
	in, output    *shm.Mapping
	outData       []byte // the output region of output's mapping
}

// openRequest checks m and maps its regions: the input read-only, the
// output read and write; global and local are views of the input.
func openRequest(m *filterv1.ApplyRequest) (*request, error) {
	if !littleEndian() {
		return nil, model.ErrBigEndian
	}
	dir, ok := directionFromWire(m.GetDirection())
	if !ok {
		return nil, fmt.Errorf("unknown direction %v", m.GetDirection())
	}
	layout, values, err := layoutFromWire(m.GetLayout())
	if err != nil {
		return nil, err
	}
	size := 4 * int64(values)
	loc, glob, out := m.GetLocal(), m.GetGlobal(), m.GetOutput()
	if loc == nil || out == nil {
		return nil, errors.New("no local or output region")
	}
	regions := []*filterv1.Region{loc, out}
	if glob != nil {
		if glob.GetPath() != loc.GetPath() {
			return nil, errors.New("the global and local models are in different files")
		}
		regions = append(regions, glob)
	}
	inEnd := loc.GetOffset() + size
	for _, r := range regions {
		if r.GetLength() != size || r.GetOffset() < 0 || r.GetOffset()%4 != 0 || r.GetOffset() > 1<<50 {
			return nil, fmt.Errorf("a region at %d of %d bytes, for a model of %d bytes", r.GetOffset(), r.GetLength(), size)
		}
		if r != out {
			inEnd = max(inEnd, r.GetOffset()+size)
		}
	}
	req := &request{dir: dir, values: values}
	if req.in, err = shm.Map(loc.GetPath(), inEnd, false); err != nil {
		return nil, err
	}
	if req.output, err = shm.Map(out.GetPath(), out.GetOffset()+size, true); err != nil {
		req.close()
		return nil, err
	}
	req.outData = req.output.Data[out.GetOffset() : out.GetOffset()+size]
	req.local = view(req.in.Data[loc.GetOffset():], layout)
	if glob != nil {
		req.global = view(req.in.Data[glob.GetOffset():], layout)
	}
	return req, nil
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

// close unmaps the regions.
func (r *request) close() {
	r.in.Unmap()
	r.output.Unmap()
}
