// Package jetstoretest starts, for tests, an embedded hub with JetStream
// and opens the server actors' JetStream on it, as the server does: the
// hub of bus.StartHub on loopback with a test CA's certificate, reached in
// process through Hub.Connect.
package jetstoretest

import (
	"log/slog"
	"os"
	"testing"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/jetstore"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// Hub is a started hub and the JetStream of a connection to it; both are
// shut down when the test ends.
type Hub struct {
	*bus.Hub
	JetStream *jetstore.JetStream
}

// Start starts a hub keeping its JetStream state in dir ("": a directory
// of the test's own). A hub started again on the same dir, after the first
// one's Shutdown, finds its state. nats-server logs only when
// HEARTH_TEST_LOG is set.
func Start(t testing.TB, dir string) *Hub {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	p := pkitest.New(t)
	server := p.Issue(t, "server", "hearth", pki.KindServer)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("HEARTH_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := bus.StartHub(bus.HubConfig{Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1,
		Certificate: server.TLS(), Trust: p.Trust, StoreDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Shutdown)
	nc, err := h.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstore.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &Hub{Hub: h, JetStream: js}
}
