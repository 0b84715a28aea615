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

var _ learnfilter.FilterInto = (*Client)(nil)

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
// actors/learning/filter.Filter says, within the call deadline: it checks
// the inputs, then ApplyInto a new model.
func (c *Client) Apply(global, local *model.Model) (*model.Model, learnfilter.Report, error) {
	if err := learnfilter.CheckInputs(NamePlugin, global, local); err != nil {
		return nil, learnfilter.Report{Filter: NamePlugin}, err
	}
	out := newLike(local)
	rep, err := c.ApplyInto(global, local, out)
	if err != nil {
		return nil, rep, err
	}
	return out, rep, nil
}

// ApplyInto runs the plugin on inputs the caller has checked
// (actors/learning/filter.FilterInto): local (and global, unless it is
// local's own memory) is written into shared memory, the plugin writes
// the filtered model into a second region, and ApplyInto copies it into
// dst and checks it there. A pass-through answer (the plugin returned its
// input) writes nothing: dst gets local's values, from the host's own
// memory.
func (c *Client) ApplyInto(global, local, dst *model.Model) (learnfilter.Report, error) {
	rep := learnfilter.Report{Filter: NamePlugin}
	if err := learnfilter.CheckTarget(local, dst); err != nil {
		return rep, fmt.Errorf("%s: %w", NamePlugin, err)
	}
	layout, err := layoutToWire(local)
	if err != nil {
		return rep, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := int64(local.Bytes())
	inSize := size
	if global != nil {
		inSize *= 2
	}
	if err := c.regs.Ensure(max(inSize, 8), max(size, 4)); err != nil {
		return rep, err
	}
	writeModel(c.regs.In.Data[:size], local)
	clear(c.regs.Out.Data[:size]) // no answer of an earlier call (another job's, maybe) stands for this one
	dir, _ := directionToWire(c.cfg.Direction)
	req := &filterv1.ApplyRequest{
		Direction: dir,
		Layout:    layout,
		Local:     &filterv1.Region{Path: c.regs.In.Path, Offset: 0, Length: size},
		Output:    &filterv1.Region{Path: c.regs.Out.Path, Offset: 0, Length: size},
	}
	if global != nil {
		// A global that is local's own memory (a site sending back the
		// model it got) is read from local's region: written once.
		at := int64(0)
		if !learnfilter.SameMemory(global, local) {
			writeModel(c.regs.In.Data[size:2*size], global)
			at = size
		}
		req.Global = &filterv1.Region{Path: c.regs.In.Path, Offset: at, Length: size}
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
		return rep, fmt.Errorf("plugin filter %s: %w", plugins.Clip(c.cfg.Pin.Path, 256), err)
	}
	return c.accept(resp, global, local, dst, size)
}

// accept checks the plugin's answer and copies its output out of shared
// memory into dst: each block copied first, then checked in dst, so that
// the plugin cannot change what was checked (nor, after the answer, what
// is sent).
func (c *Client) accept(resp *filterv1.ApplyResponse, global, local, dst *model.Model, size int64) (learnfilter.Report, error) {
	fail := func(err error) (learnfilter.Report, error) {
		return learnfilter.Report{Filter: NamePlugin}, fmt.Errorf("plugin filter %s: refused: %w", plugins.Clip(c.cfg.Pin.Path, 256), err)
	}
	if err := sameLayout(local, resp.GetLayout()); err != nil {
		return fail(err)
	}
	r, err := reportFromWire(resp.GetReport(), local)
	if err != nil {
		return fail(err)
	}
	if resp.GetUnchanged() { // the local model passed through: the host's own values, checked before the call
		copyModel(dst, local, r.Mask)
	} else if err := readShared(dst, c.regs.Out.Data[:size], r.Mask); err != nil {
		return fail(err)
	}
	setExcluded(dst, r.Mask, global)
	return r, nil
}

// Close kills the plugin, removes its staged copy and the shared memory.
func (c *Client) Close() error {
	c.cancel()
	err := c.proc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(err, c.regs.Close(), os.RemoveAll(c.shm))
}

// writeModel copies m's values into dst, one tensor after the other.
func writeModel(dst []byte, m *model.Model) {
	f := shm.Floats(dst)
	for _, t := range m.Tensors {
		f = f[copy(f, t.Data):]
	}
}

// readShared copies a plugin's output, the tensors' values one after the
// other in src, into dst (copyChecked; the tensors mask excludes are
// skipped). src is a shared mapping the plugin could have cut short under
// it (ftruncate on its file): reading past the file's end raises SIGBUS,
// which Go would take for a fatal fault of the whole site; with
// SetPanicOnFault it is a panic of this goroutine, recovered as an error:
// the plugin's answer refused.
func readShared(dst *model.Model, src []byte, mask []bool) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("its output could not be read (the shared file changed under it): %v", r)
		}
	}()
	f := shm.Floats(src)
	for i, t := range dst.Tensors {
		n := len(t.Data)
		if !excluded(mask, i) {
			if err := copyChecked(t.Data, f[:n:n], t.Name); err != nil {
				return err
			}
		}
		f = f[n:]
	}
	return nil
}

// rpcError wraps a gRPC call's error.
func rpcError(op string, err error) error { return plugins.NewRPCError(PluginName, op, err) }
