package linkrelay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// target is a TCP server standing in for the hub: it hands each accepted
// connection to the test.
type target struct {
	ln       net.Listener
	accepted atomic.Int64
	conns    chan net.Conn
}

func startTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, conns: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.accepted.Add(1)
			tg.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// next is the next connection the target accepted.
func (tg *target) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-tg.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the target accepted no connection")
		return nil
	}
}

// startRelay runs a relay for targets at rate on the real clock.
func startRelay(t *testing.T, rate Rate, targets ...string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Serve(ln, Config{Rate: rate, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dialThrough opens a tunnel to addr through the relay, sending early
// after the request in the same write, and returns the connection once
// the relay has answered.
func dialThrough(t *testing.T, r *Relay, addr string, early []byte) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
	if _, err := c.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading the relay's answer: %v", err)
	}
	if br.Buffered() > 0 && resp.StatusCode == http.StatusOK {
		t.Fatalf("the relay sent %d bytes after its 200 before the target sent any", br.Buffered())
	}
	c.SetDeadline(time.Time{})
	return c, resp
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// readAll reads n bytes from c within the deadline.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// TestBytesPassUnchangedBothWays sends random bytes each way at once,
// the first of them in the same write as the CONNECT request, and checks
// each side gets exactly what the other sent, and the relay counted them.
func TestBytesPassUnchangedBothWays(t *testing.T) {
	tg := startTarget(t)
	r := startRelay(t, MaxRate, tg.addr())
	early := randomBytes(t, 5000)
	up := randomBytes(t, 3<<20+17)
	down := randomBytes(t, 2<<20+5)
	c, resp := dialThrough(t, r, tg.addr(), early)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("relay answered %s", resp.Status)
	}
	hub := tg.next(t)
	var wg sync.WaitGroup
	wg.Add(2)
	var gotUp, gotDown []byte
	go func() { defer wg.Done(); gotUp = readN(t, hub, len(early)+len(up)) }()
	go func() { defer wg.Done(); gotDown = readN(t, c, len(down)) }()
	if _, err := c.Write(up); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Write(down); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(gotUp, append(early, up...)) {
		t.Fatal("the target got other bytes than the client sent")
	}
	if !bytes.Equal(gotDown, down) {
		t.Fatal("the client got other bytes than the target sent")
	}
	st := r.Stats()
	if st.Tunnels != 1 || st.Upstream != int64(len(early)+len(up)) || st.Down != int64(len(down)) {
		t.Fatalf("stats %+v, want 1 tunnel, %d up, %d down", st, len(early)+len(up), len(down))
	}
}

// TestClosedSideClosesTheOther closes one end of a tunnel and expects the
// other end to read EOF, for each end.
func TestClosedSideClosesTheOther(t *testing.T) {
	for _, closer := range []string{"client", "target"} {
		t.Run(closer+" closes", func(t *testing.T) {
			tg := startTarget(t)
			r := startRelay(t, MaxRate, tg.addr())
			c, _ := dialThrough(t, r, tg.addr(), nil)
			hub := tg.next(t)
			closing, other := c, hub
			if closer == "target" {
				closing, other = hub, c
			}
			// Bytes in flight still arrive, then the close.
			if _, err := closing.Write([]byte("last words")); err != nil {
				t.Fatal(err)
			}
			closing.Close()
			other.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(other)
			if err != nil {
				t.Fatalf("the other side read %q then %v, want EOF", got, err)
			}
			if string(got) != "last words" {
				t.Fatalf("the other side read %q before EOF, want %q", got, "last words")
			}
		})
	}
}

// TestRelayRefuses sends what the relay must not tunnel: each is answered
// with its status and reason, counted, and nothing reaches the target.
func TestRelayRefuses(t *testing.T) {
	tg := startTarget(t)
	other := startTarget(t) // listening, but not a target of the relay
	r := startRelay(t, MaxRate, tg.addr())
	for i, tt := range []struct {
		name, request string
		status        int
		reason        string
	}{
		{"another address", fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", other.addr()), http.StatusForbidden, "is not one the relay tunnels to"},
		{"a plain GET", fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %[1]s\r\n\r\n", tg.addr()), http.StatusMethodNotAllowed, "only CONNECT is relayed"},
		{"not HTTP", "\x16\x03\x01\x00\xa5 hello\r\n\r\n", http.StatusBadRequest, "not an HTTP request"},
		{"a request without end", "CONNECT " + tg.addr() + " HTTP/1.1\r\nX: " + strings.Repeat("a", maxRequestBytes), http.StatusBadRequest, "not an HTTP request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", r.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go c.Write([]byte(tt.request)) // may block on a request the relay stops reading
			c.SetDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the refusal: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.reason) {
				t.Fatalf("answer %s %q, want %d saying %q", resp.Status, body, tt.status, tt.reason)
			}
			if got := r.Stats().Refused; got != int64(i+1) {
				t.Fatalf("%d refusals counted, want %d", got, i+1)
			}
		})
	}
	if n := tg.accepted.Load() + other.accepted.Load(); n != 0 {
		t.Fatalf("refused requests opened %d connections to targets", n)
	}
	if st := r.Stats(); st.Tunnels != 0 {
		t.Fatalf("stats %+v: no tunnel should have opened", st)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no targets", Config{Rate: 125e6}, "at least one target"},
		{"a target without a port", Config{Rate: 125e6, Targets: []string{"localhost"}}, `target "localhost"`},
		{"too slow", Config{Rate: 1, Targets: []string{"localhost:1"}}, "is not in"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if _, err := Serve(ln, tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// pacingClock is a fake clock shared by a tunnel's two directions: a sleep
// moves it forward at once and is recorded.
type pacingClock struct {
	mu    sync.Mutex
	t     time.Time
	slept time.Duration
}

func (c *pacingClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *pacingClock) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept += d
	return ctx.Err()
}

// TestTunnelIsPaced runs a tunnel on a fake clock: sending 4 MiB one way
// makes the relay wait the bytes' time at the rate, less one burst. (On
// the fake clock the copy itself takes no time, so the waits are the
// whole of the pacing.)
func TestTunnelIsPaced(t *testing.T) {
	tg := startTarget(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clock := &pacingClock{t: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
	const rate = 12.5e6 // 100 Mbit/s
	r, err := serve(ln, Config{Rate: rate, Targets: []string{tg.addr()}}, clock.now, clock.sleep)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, _ := dialThrough(t, r, tg.addr(), nil)
	hub := tg.next(t)
	const n = 4 << 20
	go c.Write(randomBytes(t, n))
	readN(t, hub, n)
	clock.mu.Lock()
	slept := clock.slept
	clock.mu.Unlock()
	burst := NewBucket(rate, clock.now).Burst()
	want := time.Duration(float64(n-burst) / rate * float64(time.Second))
	if d := slept - want; d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("the relay waited %v for %d bytes at %s, want %v", slept, n, Rate(rate), want)
	}
}

// TestCloseEndsTunnels closes the relay with a tunnel open: both ends of
// the tunnel see it end, and Close returns.
func TestCloseEndsTunnels(t *testing.T) {
	tg := startTarget(t)
	r := startRelay(t, MaxRate, tg.addr())
	c, _ := dialThrough(t, r, tg.addr(), nil)
	hub := tg.next(t)
	if err := r.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	for name, conn := range map[string]net.Conn{"client": c, "target": hub} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
			t.Errorf("%s read %v after Close, want EOF", name, err)
		}
	}
}
