package checker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/hearthfl/hearth/plugins"
	checkerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/checker/v1"
)

// ClientConfig is what NewClient needs: the pinned binary, the checker's
// configuration and the loader's settings (see plugins.Config).
type ClientConfig struct {
	Pin plugins.Pin
	// Config is the checker's configuration, JSON in its own schema,
	// handed to its Configure after each start; nil means {}. At most
	// MaxConfigBytes.
	Config []byte
	// Timeout is the deadline of each call (Configure and Check);
	// required.
	Timeout time.Duration
	// StageDir is where the loader stages its private copy of the
	// binary; "" means the system's temporary folder.
	StageDir string
	// Logger receives the loader's events and the plugin's output; nil
	// discards them.
	Logger *slog.Logger
}

// Client is the host side of the checker kind: it runs a pinned checker
// binary under the plugin loader's controls (plugins.Load: the hash
// checked on a private copy, AutoMTLS, SkipHostEnv, a deadline on every
// call, restarts with backoff) and checks every answer against the
// contract. It fails closed: every failure of the plugin (it crashed,
// hung past its deadline, is restarting, could not start or refused its
// configuration), every error it answered and every answer outside the
// contract is an error naming the checker and why, never a decision. A
// crashed or killed plugin is started again by the next Check. It is safe
// for concurrent use; concurrent Checks share the one process.
type Client struct {
	proc   *plugins.Process
	pin    plugins.Pin
	config []byte
}

// NewClient verifies and stages the pinned binary; nothing runs until
// Start or the first Check. A binary that does not match its pin is never
// executed: NewClient fails with an error wrapping plugins.ErrChecksum.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := checkConfig(cfg.Config); err != nil {
		return nil, err
	}
	c := &Client{pin: cfg.Pin, config: slices.Clone(cfg.Config)}
	if c.config == nil {
		c.config = []byte("{}")
	}
	proc, err := plugins.Load(plugins.Config{
		Kind:    Kind(),
		Pin:     cfg.Pin,
		Timeout: cfg.Timeout,
		WorkDir: cfg.StageDir,
		Init:    c.configure,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	c.proc = proc
	return c, nil
}

// configure hands a freshly started plugin its configuration (the
// loader's Init), so that a restarted plugin is configured before it
// answers.
func (c *Client) configure(ctx context.Context, client any) error {
	return client.(Checker).Configure(ctx, c.config)
}

// Start starts and configures the plugin now, unless it runs already, to
// bring a failure forward (a site calls it when it opens, to report a
// checker that cannot run).
func (c *Client) Start(ctx context.Context) error { return c.proc.Start(ctx) }

// Pin is the binary the client runs, for the site's audit records.
func (c *Client) Pin() plugins.Pin { return c.pin }

// Check asks the plugin to decide j, within the call deadline. A nil
// error comes with a decision within the contract: allowed, or refused
// with a valid reason (which is the checker's: the site quotes it). A
// non-nil error comes with the zero Decision, a refusal, and says why the
// checker could not decide: j beyond the contract's bounds (ErrJob, no
// plugin asked), an answer outside it (ErrContract), the plugin's own
// error, or the loader's (*plugins.Error: plugins.ErrExited for a crash,
// plugins.ErrDeadline for a hang, the plugin then killed, ...).
func (c *Client) Check(ctx context.Context, j Job) (Decision, error) {
	if err := CheckJob(j); err != nil {
		return Decision{}, c.fail(err)
	}
	var d Decision
	err := c.proc.Call(ctx, func(ctx context.Context, client any) error {
		var err error
		d, err = client.(Checker).Check(ctx, j)
		return err
	})
	if err != nil {
		return Decision{}, c.fail(err)
	}
	return d, nil
}

// fail names the checker in err: the loader's errors name it already.
func (c *Client) fail(err error) error {
	if pe := (*plugins.Error)(nil); errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s plugin %s: %w", PluginName, strconv.Quote(plugins.Clip(c.pin.Path, 256)), err)
}

// Close kills the plugin and removes its staged copy. Checks after it
// fail with plugins.ErrClosed.
func (c *Client) Close() error { return c.proc.Close() }

// grpcClient is a Checker over one connection to a running plugin (the
// value Glue(nil).Dial makes); its Check accepts only answers
// within the contract.
type grpcClient struct {
	rpc checkerv1.CheckerClient
}

var _ Checker = (*grpcClient)(nil)

// Configure sends config to the plugin.
func (c *grpcClient) Configure(ctx context.Context, config []byte) error {
	if err := checkConfig(config); err != nil {
		return err
	}
	if _, err := c.rpc.Configure(ctx, &checkerv1.ConfigureRequest{Config: config}); err != nil {
		return rpcError("configure", err)
	}
	return nil
}

// Check sends j to the plugin and returns its decision, refused when it
// is outside the contract.
func (c *grpcClient) Check(ctx context.Context, j Job) (Decision, error) {
	if err := CheckJob(j); err != nil {
		return Decision{}, err
	}
	resp, err := c.rpc.Check(ctx, jobToProto(j))
	if err != nil {
		return Decision{}, rpcError("check", err)
	}
	return decisionFromProto(resp)
}

// rpcError wraps a gRPC call's error.
func rpcError(op string, err error) error { return plugins.NewRPCError(PluginName, op, err) }
