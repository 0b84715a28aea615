package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hearthfl/hearth/plugins/internal/shm"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/policies/privacy"
	filterv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/filter/v1"
)

// NamePlugin is a plugin filter's name in a chain and its reports.
const NamePlugin = privacy.NamePlugin

// DefaultShmDir is where a Client makes its shared memory folder when
// ClientConfig.ShmDir is empty and the folder exists: Linux's tmpfs, so
// that the models stay in memory.
const DefaultShmDir = "/dev/shm"

// ClientConfig is what NewClient needs: the pinned binary, the filter's
// arguments and direction, and the loader's settings (see
// plugins.Config).
type ClientConfig struct {
	Pin plugins.Pin
	// Args is the filter's arguments, a JSON object handed to the
	// plugin's Configure ({} when nil).
	Args      []byte
	Direction Direction
	// Params are the filter's parameters as the site's audit records them
	// (privacy.PluginFilter.Params).
	Params map[string]string
	// Timeout is the deadline of each call (Configure and Apply);
	// required.
	Timeout time.Duration
	// WorkDir is where the loader stages its private copy of the binary;
	// "" means the system's temporary folder.
	WorkDir string
	// ShmDir is where the client makes its private shared memory folder;
	// "" means DefaultShmDir when it exists, else the system's temporary
	// folder.
	ShmDir string
	// Logger receives the loader's events and the plugin's output; nil
	// discards them.
	Logger *slog.Logger
}

// Client is the host side of the filter kind: an
// actors/learning/filter.Filter that runs a pinned plugin binary under
// the plugin loader's controls, the models passed in shared memory. Every
// failure of the plugin, and every answer outside the contract, is an
// error (a refusal), never a model. Applies run one at a time. It is safe
// for concurrent use.
type Client struct {
	proc   *plugins.Process
	cfg    ClientConfig
	shm    string // the private shared memory folder
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex // one Apply at a time; guards in and out
	regs shm.Pair   // the shared memory files of the calls
}

var _ learnfilter.Filter = (*Client)(nil)

// NewClient verifies and stages the pinned binary and makes the shared
// memory folder; nothing runs until Start or the first Apply. A binary
// that does not match its pin is never executed: NewClient fails with an
// error wrapping plugins.ErrChecksum.
func NewClient(cfg ClientConfig) (*Client, error) {
	if _, ok := directionToWire(cfg.Direction); !ok {
		return nil, fmt.Errorf("filter: client: no direction")
	}
	if !littleEndian() {
		return nil, fmt.Errorf("filter: %w", model.ErrBigEndian)
	}
	if cfg.Args == nil {
		cfg.Args = []byte("{}")
	}
	c := &Client{cfg: cfg}
	proc, err := plugins.Load(plugins.Config{
		Kind:    Kind(),
		Pin:     cfg.Pin,
		Timeout: cfg.Timeout,
		WorkDir: cfg.WorkDir,
		Init:    c.configure,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	dir := cfg.ShmDir
	if dir == "" {
		if st, err := os.Stat(DefaultShmDir); err == nil && st.IsDir() {
			dir = DefaultShmDir
		}
	}
	if c.shm, err = os.MkdirTemp(dir, "hearth-filter-"); err != nil { // mode 0700
		proc.Close()
		return nil, fmt.Errorf("filter: shared memory folder: %w", err)
	}
	c.regs.Dir = c.shm
	c.proc = proc
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// configure hands a freshly started plugin its arguments (the loader's
// Init).
func (c *Client) configure(ctx context.Context, client any) error {
	dir, _ := directionToWire(c.cfg.Direction)
	_, err := client.(filterv1.FilterClient).Configure(ctx, &filterv1.ConfigureRequest{Args: c.cfg.Args, Direction: dir})
	if err != nil {
		return rpcError("configure", err)
	}
	return nil
}

// Start starts and configures the plugin now, unless it runs already, to
// bring a failure forward (a site calls it when it opens).
func (c *Client) Start(ctx context.Context) error { return c.proc.Start(ctx) }

// Name is NamePlugin.
func (c *Client) Name() string { return NamePlugin }

// Params are the filter's parameters for the audit (ClientConfig.Params).
func (c *Client) Params() map[string]string {
	out := make(map[string]string, len(c.cfg.Params))
	for k, v := range c.cfg.Params {
		out[k] = v
	}
	return out
}

// Apply runs the plugin on local against global (nil: zeros), as
// actors/learning/filter.Filter says, within the call deadline: the
// models are written into shared memory, the plugin writes the filtered
// model into a second region, and Apply copies it out and checks it.
func (c *Client) Apply(global, local *model.Model) (*model.Model, learnfilter.Report, error) {
	rep := learnfilter.Report{Filter: NamePlugin}
	if err := checkInputs(global, local); err != nil {
		return nil, rep, err
	}
	layout, err := layoutToWire(local)
	if err != nil {
		return nil, rep, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := int64(local.Bytes())
	inSize := size
	if global != nil {
		inSize *= 2
	}
	if err := c.regs.Ensure(max(inSize, 8), max(size, 4)); err != nil {
		return nil, rep, err
	}
	writeModel(c.regs.In.Data[:size], local)
	clear(c.regs.Out.Data[:size]) // no answer of an earlier call stands for this one
	dir, _ := directionToWire(c.cfg.Direction)
	req := &filterv1.ApplyRequest{
		Direction: dir,
		Layout:    layout,
		Local:     &filterv1.Region{Path: c.regs.In.Path, Offset: 0, Length: size},
		Output:    &filterv1.Region{Path: c.regs.Out.Path, Offset: 0, Length: size},
	}
	if global != nil {
		writeModel(c.regs.In.Data[size:2*size], global)
		req.Global = &filterv1.Region{Path: c.regs.In.Path, Offset: size, Length: size}
	}
	var resp *filterv1.ApplyResponse
	err = c.proc.Call(c.ctx, func(ctx context.Context, client any) error {
		var err error
		resp, err = client.(filterv1.FilterClient).Apply(ctx, req)
		if err != nil {
			return rpcError("apply", err)
		}
		return nil
	})
	if err != nil {
		return nil, rep, fmt.Errorf("plugin filter %s: %w", plugins.Clip(c.cfg.Pin.Path, 256), err)
	}
	return c.accept(resp, global, local, size)
}

// accept checks the plugin's answer and copies its output out of shared
// memory: the copy first, then the checks on the copy, so that the plugin
// cannot change what was checked.
func (c *Client) accept(resp *filterv1.ApplyResponse, global, local *model.Model, size int64) (*model.Model, learnfilter.Report, error) {
	rep := learnfilter.Report{Filter: NamePlugin}
	fail := func(err error) (*model.Model, learnfilter.Report, error) {
		return nil, rep, fmt.Errorf("plugin filter %s: refused: %w", plugins.Clip(c.cfg.Pin.Path, 256), err)
	}
	if err := sameLayout(local, resp.GetLayout()); err != nil {
		return fail(err)
	}
	r, err := reportFromWire(resp.GetReport(), local)
	if err != nil {
		return fail(err)
	}
	var out *model.Model
	if resp.GetUnchanged() { // the local model passed through: the host's own copy of it
		out = local.Clone()
	} else if out, err = readShared(c.regs.Out.Data[:size], local); err != nil {
		return fail(err)
	}
	if err := finish(out, r, global); err != nil {
		return fail(err)
	}
	return out, r, nil
}

// Close kills the plugin, removes its staged copy and the shared memory.
func (c *Client) Close() error {
	c.cancel()
	err := c.proc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(err, c.regs.Close(), os.RemoveAll(c.shm))
}

// checkInputs refuses what no filter applies to, as the built-in filters
// do: a malformed local or global model and layouts that differ.
func checkInputs(global, local *model.Model) error {
	if err := local.Validate(); err != nil {
		return fmt.Errorf("%s: the local model: %w", NamePlugin, err)
	}
	if global == nil {
		return nil
	}
	if err := global.Validate(); err != nil {
		return fmt.Errorf("%s: the global model: %w", NamePlugin, err)
	}
	if err := local.SameLayout(global); err != nil {
		return fmt.Errorf("%s: the local and global models: %w", NamePlugin, err)
	}
	return nil
}

// writeModel copies m's values into dst, one tensor after the other.
func writeModel(dst []byte, m *model.Model) {
	f := shm.Floats(dst)
	for _, t := range m.Tensors {
		f = f[copy(f, t.Data):]
	}
}

// readShared is readModel of a shared mapping the plugin could have cut
// short under it (ftruncate on its file): reading past the file's end
// raises SIGBUS, which Go would take for a fatal fault of the whole site;
// with SetPanicOnFault it is a panic of this goroutine, recovered as an
// error: the plugin's answer refused.
func readShared(src []byte, like *model.Model) (out *model.Model, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("its output could not be read (the shared file changed under it): %v", r)
		}
	}()
	return readModel(src, like), nil
}

// readModel is a new model with like's layout holding src's values.
func readModel(src []byte, like *model.Model) *model.Model {
	f := shm.Floats(src)
	out := &model.Model{Tensors: make([]model.Tensor, len(like.Tensors))}
	for i, t := range like.Tensors {
		data := make([]float32, len(t.Data))
		f = f[copy(data, f):]
		out.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: data}
	}
	return out
}

// rpcError wraps a gRPC call's error.
func rpcError(op string, err error) error { return plugins.NewRPCError(PluginName, op, err) }
