package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// embedded is what the hub and a leaf share: an embedded nats-server, the
// in-process identity of the process's own actors, and how refusals are
// reported.
type embedded struct {
	role     string // "hub" or "leaf": prefixes errors and names the logs
	srv      *server.Server
	opts     *server.Options
	internal *internalUser
}

// withDefaults fills a nil logger and clock.
func withDefaults(log *slog.Logger, now func() time.Time) (*slog.Logger, func() time.Time) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return log, now
}

// reporter logs every refusal with its reason and passes it on.
func reporter(log *slog.Logger, on func(Refusal)) func(Refusal) {
	return func(r Refusal) {
		log.Warn("connection refused", "listener", r.Listener, "peer", r.Peer, "reason", r.Reason(), "err", r.Err)
		if on != nil {
			on(r)
		}
	}
}

// newEmbedded makes the in-process identity; start runs the server.
func newEmbedded(role string) (*embedded, error) {
	internal, err := newInternalUser()
	if err != nil {
		return nil, err
	}
	return &embedded{role: role, internal: internal}, nil
}

// start runs nats-server with opts, its logs routed into log, and waits
// until it accepts connections.
func (e *embedded) start(opts *server.Options, log *slog.Logger, report func(Refusal)) error {
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("%s: %w", e.role, err)
	}
	srv.SetLoggerV2(natsLogger{log: log.With("component", "nats-"+e.role), report: report}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New(e.role + ": nats-server did not become ready within 10s")
	}
	e.srv, e.opts = srv, opts
	return nil
}

// connect opens an in-process connection for the process's own actors.
func (e *embedded) connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.InProcessServer(e.srv),
		e.internal.option(),
		nats.Name(name),
		nats.MaxReconnects(-1),
	}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: in-process connection: %w", e.role, err)
	}
	return nc, nil
}

// shutdown stops the server and waits for it.
func (e *embedded) shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
