package dashboard

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
)

// TestStopWithAnIdleConnection: a connection that never sends a request
// (browsers open such connections ahead of need; net/http counts one as
// busy for its first 5 s) does not make stopping fail: after the grace
// Serve closes it and returns nil, so `hearth dashboard` exits 0. Found by
// the browser test, where Chromium's connection made the dashboard exit 1
// about one run in ten.
func TestStopWithAnIdleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := newHarnessWith(t, nil, func(c *Config) { c.Listen = addr })
	h.srv.shutdownGrace = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx) }()
	var conn net.Conn
	bustest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var err error
		conn, err = net.Dial("tcp", addr)
		return err
	})
	defer conn.Close()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve, stopped with a connection that sent no request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5 s of being stopped")
	}
}
