package authn

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hearthfl/hearth/plugins"
	authnv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/authn/v1"
)

// ClientConfig is what NewClient needs: the pinned binary and the
// loader's settings (see plugins.Config).
type ClientConfig struct {
	Pin plugins.Pin
	// Timeout is the deadline of each call (Configure and Authenticate);
	// required.
	Timeout time.Duration
	// WorkDir is where the loader stages its private copy of the binary;
	// "" means the system's temporary folder.
	WorkDir string
	// Logger receives the loader's events and the plugin's output; nil
	// discards them.
	Logger *slog.Logger
}

// Client is the host side of the authenticator kind: an Authenticator
// that runs a pinned plugin binary under the plugin loader's controls
// (plugins.Load: the hash checked on a private copy, AutoMTLS,
// SkipHostEnv, a deadline on every call, restarts with backoff). Every
// failure of the plugin is an error (could not decide), never a
// decision. It is safe for concurrent use.
type Client struct {
	proc *plugins.Process

	mu         sync.Mutex
	config     []byte
	configured bool
}

var _ Authenticator = (*Client)(nil)

// NewClient verifies and stages the pinned binary; nothing runs until
// Configure. A binary that does not match its pin is never executed:
// NewClient fails with an error wrapping plugins.ErrChecksum.
func NewClient(cfg ClientConfig) (*Client, error) {
	c := &Client{}
	proc, err := plugins.Load(plugins.Config{
		Kind:    Kind(),
		Pin:     cfg.Pin,
		Timeout: cfg.Timeout,
		WorkDir: cfg.WorkDir,
		Init:    c.replay,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	c.proc = proc
	return c, nil
}

// Configure starts the plugin and hands it config; the plugin is handed
// the same config again after each restart, before it answers. It may be
// called once. Its error is the plugin's refusal of config or a failure
// to start it; later calls then try to start it again (with backoff) and
// fail while it cannot run.
func (c *Client) Configure(ctx context.Context, config []byte) error {
	c.mu.Lock()
	if c.configured {
		c.mu.Unlock()
		return errors.New("authn: plugin configured already")
	}
	c.config, c.configured = slices.Clone(config), true
	c.mu.Unlock()
	return c.proc.Start(ctx)
}

// replay configures a freshly started plugin (the loader's Init).
func (c *Client) replay(ctx context.Context, client any) error {
	c.mu.Lock()
	config, ok := c.config, c.configured
	c.mu.Unlock()
	if !ok {
		return errors.New("authn: plugin started before Configure")
	}
	return client.(Authenticator).Configure(ctx, config)
}

// Authenticate asks the plugin to decide r, within the call deadline. An
// error is "could not decide": the plugin's own (its directory is down,
// say) or the loader's (*plugins.Error: it crashed, hung, is restarting
// or could not be started).
func (c *Client) Authenticate(ctx context.Context, r Request) (Decision, error) {
	c.mu.Lock()
	ok := c.configured
	c.mu.Unlock()
	if !ok {
		return Decision{}, errors.New("authn: Authenticate before Configure")
	}
	var d Decision
	err := c.proc.Call(ctx, func(ctx context.Context, client any) error {
		var err error
		d, err = client.(Authenticator).Authenticate(ctx, r)
		return err
	})
	if err != nil {
		return Decision{}, err
	}
	return d, nil
}

// Close kills the plugin and removes its staged copy.
func (c *Client) Close() error { return c.proc.Close() }

// grpcClient is an Authenticator over one connection to a running plugin
// (the value Glue(nil).Dial makes).
type grpcClient struct {
	rpc authnv1.AuthenticatorClient
}

// Configure sends config to the plugin.
func (c *grpcClient) Configure(ctx context.Context, config []byte) error {
	_, err := c.rpc.Configure(ctx, &authnv1.ConfigureRequest{Config: config})
	if err != nil {
		return rpcError("configure", err)
	}
	return nil
}

// Authenticate sends r to the plugin and returns its decision.
func (c *grpcClient) Authenticate(ctx context.Context, r Request) (Decision, error) {
	m, err := requestToProto(r)
	if err != nil {
		return Decision{}, err
	}
	resp, err := c.rpc.Authenticate(ctx, m)
	if err != nil {
		return Decision{}, rpcError("authenticate", err)
	}
	return decisionFromProto(resp.GetDecision())
}

// rpcError wraps a gRPC call's error.
func rpcError(op string, err error) error { return plugins.NewRPCError(PluginName, op, err) }
