package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	plugin "github.com/hashicorp/go-plugin"
)

// Pin is a plugin binary as a site's policy pins it: where it lies and
// the SHA-256 of its exact bytes. Only a binary with that hash is ever
// executed.
type Pin struct {
	Path   string            // absolute path of the binary
	SHA256 [sha256.Size]byte // the hash the site pinned
}

// ParsePin builds a Pin from a path, which must be absolute, and a hash
// in hex, as policy files write them (see ParseSHA256).
func ParsePin(path, sum string) (Pin, error) {
	if !filepath.IsAbs(path) {
		return Pin{}, fmt.Errorf("plugins: pin: path %q is not absolute", path)
	}
	h, err := ParseSHA256(sum)
	if err != nil {
		return Pin{}, err
	}
	return Pin{Path: filepath.Clean(path), SHA256: h}, nil
}

// ParseSHA256 reads a SHA-256 written in hex: 64 digits, either case.
func ParseSHA256(sum string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha256.Size {
		return h, fmt.Errorf("plugins: sha256 must be %d hex digits", 2*sha256.Size)
	}
	copy(h[:], raw)
	return h, nil
}

// String renders the pin as "path (sha256 hex)".
func (p Pin) String() string {
	return p.Path + " (sha256 " + hex.EncodeToString(p.SHA256[:]) + ")"
}

// Kind is what the loader needs to know of one plugin kind; each kind's
// package provides it (e.g. authn.Kind()).
type Kind struct {
	// Name names the kind in logs and errors, and is the name the plugin
	// is served under (go-plugin's plugin set key), e.g. "authn".
	Name string
	// Handshake is the kind's go-plugin handshake: a protocol version and
	// a magic cookie that catches a binary of another kind. It is not a
	// security control; the pinned hash is.
	Handshake plugin.HandshakeConfig
	// Plugin is the kind's go-plugin glue. It must be a plugin.GRPCPlugin:
	// gRPC is the only protocol the loader speaks. Its GRPCClient's
	// value is what Process.Call hands to its function.
	Plugin plugin.Plugin
}

// Backoff is how long a Process waits before restarting a plugin after
// consecutive failures: no wait after the first (a plugin that crashed
// once is restarted by the next call), then Min, doubling up to Max.
type Backoff struct {
	Min, Max time.Duration
}

// delay is the wait before the next start after n consecutive failures.
func (b Backoff) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := b.Min
	for i := 2; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Defaults for the zero values of Config's fields.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultMaxSize      = 256 << 20 // bytes
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
)

// Config is one plugin's configuration for Load.
type Config struct {
	Kind Kind
	Pin  Pin
	// Timeout is the deadline of each call (Process.Call), Init's
	// included; required.
	Timeout time.Duration
	// StartTimeout bounds one start, up to the plugin's handshake line;
	// zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxSize bounds the binary's size in bytes; zero means
	// DefaultMaxSize.
	MaxSize int64
	// Backoff paces restarts; the zero value means DefaultBackoffMin and
	// DefaultBackoffMax.
	Backoff Backoff
	// WorkDir is where Load makes the private folder that holds the copy
	// it executes; "" means the system's temporary folder. It must allow
	// executing files (a noexec mount does not).
	WorkDir string
	// Init runs after each start, with the deadline of a call, on the
	// value the kind's GRPCClient made; an error fails the start. An
	// authenticator's Configure runs here, so that a restarted plugin is
	// configured before it answers. Nil means nothing to run.
	Init func(ctx context.Context, client any) error
	// Logger receives the loader's events and the plugin's output; nil
	// discards them.
	Logger *slog.Logger
}

// Validate reports what is missing or wrong in c, before defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Kind.Name == "" {
		errs = append(errs, errors.New("kind has no name"))
	}
	if c.Kind.Handshake.MagicCookieKey == "" || c.Kind.Handshake.MagicCookieValue == "" {
		errs = append(errs, errors.New("kind has no handshake cookie"))
	}
	if _, ok := c.Kind.Plugin.(plugin.GRPCPlugin); !ok {
		errs = append(errs, errors.New("kind's plugin is not a go-plugin GRPCPlugin"))
	}
	if !filepath.IsAbs(c.Pin.Path) {
		errs = append(errs, fmt.Errorf("pinned path %q is not absolute", c.Pin.Path))
	}
	if c.Pin.SHA256 == [sha256.Size]byte{} {
		errs = append(errs, errors.New("no pinned sha256"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("no call timeout"))
	}
	if c.StartTimeout < 0 || c.MaxSize < 0 || c.Backoff.Min < 0 || c.Backoff.Max < c.Backoff.Min {
		errs = append(errs, errors.New("negative start timeout, size bound or backoff, or backoff max below min"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("plugins: config: %w", err)
	}
	return nil
}

// withDefaults is c with its zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
