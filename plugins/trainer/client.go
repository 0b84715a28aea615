package trainer

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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins"
	trainerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/trainer/v1"
)

// DefaultShmDir is where a Client makes its shared memory folder when
// ClientConfig.ShmDir is empty and the folder exists: Linux's tmpfs, so
// that the models stay in memory.
const DefaultShmDir = "/dev/shm"

// DefaultMaxModelBytes bounds an initial model when
// ClientConfig.MaxModelBytes is zero.
const DefaultMaxModelBytes = 1 << 30

// ClientConfig is what NewClient needs: the pinned plugin, the trainer's
// setup, and the loader's settings (see plugins.Config).
type ClientConfig struct {
	Pin plugins.Pin
	// Setup is handed to the plugin's Configure after each start. Its
	// Args default to {}; its WorkDir, when empty, is a fresh folder
	// (mode 0700) that Close removes.
	Setup Setup
	// Timeout is the deadline of each call (Configure, Prepare, Train,
	// Evaluate): a trainer that has not answered by then is killed, and
	// the next call starts it again. Required.
	Timeout time.Duration
	// StartTimeout bounds one start of the plugin, up to its handshake
	// line; zero means plugins.DefaultStartTimeout.
	StartTimeout time.Duration
	// StageDir is where the loader stages its private copy of the
	// binary; "" means the system's temporary folder.
	StageDir string
	// ShmDir is where the client makes its private shared memory folder;
	// "" means DefaultShmDir when it exists, else the system's temporary
	// folder.
	ShmDir string
	// MaxModelBytes bounds the initial model Prepare may answer, and so
	// every model of the job; zero means DefaultMaxModelBytes.
	MaxModelBytes int64
	// Logger receives the loader's events and the plugin's output; nil
	// discards them.
	Logger *slog.Logger
}

// Client is the host side of the trainer kind: it runs a pinned plugin
// under the plugin loader's controls, the models passed in shared
// memory. Every failure of the plugin, and every answer outside the
// contract, is an error, never a model. Calls run one at a time; it is
// safe for concurrent use.
type Client struct {
	proc    *plugins.Process
	cfg     ClientConfig
	shm     string   // the private shared memory folder
	ownWork bool     // the work folder is the client's own, removed by Close
	remove  []string // further folders Close removes (NewPython's)

	mu     sync.Mutex // one call at a time; guards the fields below
	layout []model.TensorShape
	regs   shm.Pair // the shared memory files of the calls
}

// NewClient verifies and stages the pinned binary and makes the shared
// memory and working folders; nothing runs until Start or the first
// call. A binary that does not match its pin is never executed:
// NewClient fails with an error wrapping plugins.ErrChecksum.
func NewClient(cfg ClientConfig) (*Client, error) {
	if !littleEndian() {
		return nil, fmt.Errorf("trainer: %w", model.ErrBigEndian)
	}
	if cfg.Setup.Args == nil {
		cfg.Setup.Args = []byte("{}")
	}
	if len(cfg.Setup.Args) > MaxArgs {
		return nil, fmt.Errorf("trainer: arguments of %d bytes, at most %d", len(cfg.Setup.Args), MaxArgs)
	}
	if cfg.MaxModelBytes == 0 {
		cfg.MaxModelBytes = DefaultMaxModelBytes
	}
	if cfg.MaxModelBytes < 4 {
		return nil, fmt.Errorf("trainer: a model bound of %d bytes", cfg.MaxModelBytes)
	}
	c := &Client{cfg: cfg}
	proc, err := plugins.Load(plugins.Config{
		Kind:         Kind(),
		Pin:          cfg.Pin,
		Timeout:      cfg.Timeout,
		StartTimeout: cfg.StartTimeout,
		WorkDir:      cfg.StageDir,
		Init:         c.configure,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	if c.shm, err = makePrivate(shmDirOf(cfg.ShmDir), "shm"); err != nil {
		proc.Close()
		return nil, fmt.Errorf("trainer: shared memory folder: %w", err)
	}
	c.regs.Dir = c.shm
	if c.cfg.Setup.WorkDir == "" {
		if c.cfg.Setup.WorkDir, err = makePrivate("", "work"); err != nil {
			proc.Close()
			os.RemoveAll(c.shm)
			return nil, fmt.Errorf("trainer: working folder: %w", err)
		}
		c.ownWork = true
	}
	c.proc = proc
	return c, nil
}

// shmDirOf is where a shared memory folder is made for ShmDir dir: dir,
// or when it is empty DefaultShmDir when it exists, else "" (the
// system's temporary folder).
func shmDirOf(dir string) string {
	if dir == "" {
		if st, err := os.Stat(DefaultShmDir); err == nil && st.IsDir() {
			return DefaultShmDir
		}
	}
	return dir
}

// configure hands a freshly started plugin its setup (the loader's Init).
func (c *Client) configure(ctx context.Context, client any) error {
	s := c.cfg.Setup
	_, err := client.(trainerv1.TrainerClient).Configure(ctx, &trainerv1.ConfigureRequest{Args: s.Args, DataDir: s.DataDir, WorkDir: s.WorkDir})
	if err != nil {
		return rpcError("configure", err)
	}
	return nil
}

// Start starts and configures the plugin now, unless it runs already, to
// bring a failure forward. A PyTorch trainer that cannot confine itself
// fails with ErrSandbox.
func (c *Client) Start(ctx context.Context) error { return sandboxError(c.proc.Start(ctx)) }

// WorkDir is the trainer's working folder.
func (c *Client) WorkDir() string { return c.cfg.Setup.WorkDir }

// Prepare asks the trainer for the initial model, at most
// ClientConfig.MaxModelBytes, and checks it. Its layout is the job's:
// Train and Evaluate take only models of that layout from then on.
func (c *Client) Prepare(ctx context.Context) (*model.Model, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A sparse file: memory is spent only on what the trainer writes.
	out, err := shm.Create(c.shm, "prepare", c.cfg.MaxModelBytes)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	var resp *trainerv1.PrepareResponse
	err = c.call(ctx, "prepare", func(ctx context.Context, tc trainerv1.TrainerClient) (err error) {
		resp, err = tc.Prepare(ctx, &trainerv1.PrepareRequest{Output: &trainerv1.Region{Path: out.Path, Length: c.cfg.MaxModelBytes}})
		return err
	})
	if err != nil {
		return nil, err
	}
	layout, values, err := layoutFromWire(resp.GetLayout())
	if err != nil {
		return nil, c.refused(err)
	}
	if size := 4 * int64(values); size > c.cfg.MaxModelBytes {
		return nil, c.refused(fmt.Errorf("%w: an initial model of %d bytes, at most %d", ErrContract, size, c.cfg.MaxModelBytes))
	}
	m, err := c.readOut(out.Data, layout)
	if err != nil {
		return nil, err
	}
	c.layout = layout
	return m, nil
}

// Train runs one round (from 0) from global and returns the trained
// model, checked: global's layout, finite values; and the round's
// figures, within their bounds. global must have the layout Prepare
// answered, when Prepare ran.
func (c *Client) Train(ctx context.Context, round int, global *model.Model) (*model.Model, Result, error) {
	if round < 0 {
		return nil, Result{}, fmt.Errorf("trainer: round %d", round)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	layout, wire, size, err := c.input(global)
	if err != nil {
		return nil, Result{}, err
	}
	clear(c.regs.Out.Data[:size]) // no answer of an earlier call stands for this one
	req := &trainerv1.TrainRequest{
		Round:  int64(round),
		Layout: wire,
		Global: &trainerv1.Region{Path: c.regs.In.Path, Length: size},
		Output: &trainerv1.Region{Path: c.regs.Out.Path, Length: size},
	}
	var resp *trainerv1.TrainResponse
	err = c.call(ctx, "train", func(ctx context.Context, tc trainerv1.TrainerClient) (err error) {
		resp, err = tc.Train(ctx, req)
		return err
	})
	if err != nil {
		return nil, Result{}, err
	}
	if err := sameLayout(layout, resp.GetLayout()); err != nil {
		return nil, Result{}, c.refused(err)
	}
	res, err := resultFromWire(resp)
	if err != nil {
		return nil, Result{}, c.refused(err)
	}
	m, err := c.readOut(c.regs.Out.Data[:size], layout)
	if err != nil {
		return nil, Result{}, err
	}
	return m, res, nil
}

// Evaluate measures m on the site's validation data; the figures are
// checked against their bounds.
func (c *Client) Evaluate(ctx context.Context, m *model.Model, split Split) (Metrics, error) {
	ws, err := split.wire()
	if err != nil {
		return Metrics{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, wire, size, err := c.input(m)
	if err != nil {
		return Metrics{}, err
	}
	var resp *trainerv1.EvaluateResponse
	err = c.call(ctx, "evaluate", func(ctx context.Context, tc trainerv1.TrainerClient) (err error) {
		resp, err = tc.Evaluate(ctx, &trainerv1.EvaluateRequest{Layout: wire, Model: &trainerv1.Region{Path: c.regs.In.Path, Length: size}, Split: ws})
		return err
	})
	if err != nil {
		return Metrics{}, err
	}
	met, err := metricsFromWire(resp)
	if err != nil {
		return Metrics{}, c.refused(err)
	}
	return met, nil
}

// input checks a model handed to the trainer and writes it into the
// input region; c.mu is held.
func (c *Client) input(m *model.Model) ([]model.TensorShape, []*trainerv1.TensorShape, int64, error) {
	if err := m.Validate(); err != nil {
		return nil, nil, 0, fmt.Errorf("trainer: the model: %w", err)
	}
	layout := model.LayoutOf(m)
	if c.layout != nil {
		if err := (&model.Model{Tensors: shapes(c.layout)}).SameLayout(m); err != nil {
			return nil, nil, 0, fmt.Errorf("trainer: the model is not of the layout the trainer prepared: %w", err)
		}
	}
	wire, err := layoutToWire(layout)
	if err != nil {
		return nil, nil, 0, err
	}
	size := int64(m.Bytes())
	if err := c.regs.Ensure(max(size, 4), max(size, 4)); err != nil {
		return nil, nil, 0, err
	}
	writeModel(c.regs.In.Data[:size], m)
	return layout, wire, size, nil
}

// call runs one call of the plugin through the loader (its deadline, its
// restarts), its error wrapped: a memory limit the plugin reported is
// ErrMemoryLimit.
func (c *Client) call(ctx context.Context, op string, fn func(context.Context, trainerv1.TrainerClient) error) error {
	err := c.proc.Call(ctx, func(ctx context.Context, client any) error {
		if err := fn(ctx, client.(trainerv1.TrainerClient)); err != nil {
			return rpcError(op, err)
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case status.Code(err) == codes.ResourceExhausted:
		return fmt.Errorf("trainer %s: %w: %w", plugins.Clip(c.cfg.Pin.Path, 256), ErrMemoryLimit, err)
	}
	return fmt.Errorf("trainer %s: %w", plugins.Clip(c.cfg.Pin.Path, 256), sandboxError(err))
}

// refused is an answer outside the contract.
func (c *Client) refused(err error) error {
	return fmt.Errorf("trainer %s: refused: %w", plugins.Clip(c.cfg.Pin.Path, 256), err)
}

// readOut copies a model of layout out of the shared src and checks its
// values: the copy first, so that the plugin cannot change what was
// checked.
func (c *Client) readOut(src []byte, layout []model.TensorShape) (*model.Model, error) {
	m, err := readShared(src, layout)
	if err != nil {
		return nil, c.refused(err)
	}
	if err := checkFinite(m); err != nil {
		return nil, c.refused(err)
	}
	return m, nil
}

// Close kills the plugin, removes its staged copy, the shared memory and
// the working folder when it is the client's own (NewPython's too).
func (c *Client) Close() error {
	err := c.proc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := []error{err, c.regs.Close(), os.RemoveAll(c.shm)}
	if c.ownWork {
		errs = append(errs, os.RemoveAll(c.cfg.Setup.WorkDir))
	}
	for _, d := range c.remove {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// readShared copies a model of layout out of a shared mapping the plugin
// could have cut short under it (ftruncate on its file): reading past the
// file's end raises SIGBUS, which with SetPanicOnFault is a panic of this
// goroutine, recovered as an error.
func readShared(src []byte, layout []model.TensorShape) (out *model.Model, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("its model could not be read (the shared file changed under it): %v", r)
		}
	}()
	if int64(len(src)) < 4*int64(layoutValues(layout)) {
		return nil, fmt.Errorf("%w: a model larger than its region", ErrContract)
	}
	f := shm.Floats(src)
	out = &model.Model{Tensors: make([]model.Tensor, len(layout))}
	for i, t := range layout {
		n, _ := model.ShapeSize(t.Shape)
		data := make([]float32, n)
		f = f[copy(data, f):]
		out.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: data}
	}
	return out, nil
}

// shapes is a model of layout without values (for SameLayout).
func shapes(layout []model.TensorShape) []model.Tensor {
	out := make([]model.Tensor, len(layout))
	for i, t := range layout {
		out[i] = model.Tensor{Name: t.Name, Shape: t.Shape}
	}
	return out
}

func rpcError(op string, err error) error { return plugins.NewRPCError(PluginName, op, err) }
