// Package linkrelay plays a network link of a given rate for `hearth
// bench --link`: an HTTP CONNECT proxy on loopback that the bench's sites
// dial the hub through (their kits' leaf.proxy), pacing each direction of
// each tunnel to the rate with its own token bucket. It copies bytes
// unchanged and never looks into them: TLS stays end to end, the relay
// sees ciphertext only. It tunnels only to the targets it is given (the
// hub's leaf addresses) and refuses any other.
//
// It belongs to the bench, not to the product: no kit, site or server
// imports it.
package linkrelay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// copyBuffer is the most bytes one read passes before the bucket paces
// them: a 1 MiB chunk crosses in 32 paced steps.
const copyBuffer = 32 << 10

// requestTimeout bounds how long a client may take to send its CONNECT
// request, and the dial to the target.
const requestTimeout = 10 * time.Second

// maxRequestBytes bounds the CONNECT request (its line and headers).
const maxRequestBytes = 16 << 10

// Config is what a Relay plays and where it may tunnel.
type Config struct {
	// Rate paces each direction of each tunnel.
	Rate Rate
	// Targets are the host:port addresses a CONNECT may name; any other is
	// refused with 403.
	Targets []string
	// Logger receives refusals and tunnel errors; nil discards them.
	Logger *slog.Logger
}

// Validate checks the rate's range and that there is at least one target,
// each a host:port.
func (c Config) Validate() error {
	var errs []error
	if c.Rate < MinRate || c.Rate > MaxRate {
		errs = append(errs, fmt.Errorf("linkrelay: rate %s is not in %s..%s", c.Rate, MinRate, MaxRate))
	}
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("linkrelay: at least one target is required"))
	}
	for _, t := range c.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			errs = append(errs, fmt.Errorf("linkrelay: target %q: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// Stats are what a relay has carried so far.
type Stats struct {
	Tunnels  int64 // tunnels opened
	Refused  int64 // CONNECT requests refused
	Upstream int64 // bytes from clients to targets
	Down     int64 // bytes from targets to clients
}

// Relay is a running rate-limited CONNECT proxy.
type Relay struct {
	cfg Config
	ln  net.Listener
	log *slog.Logger
	// now and sleep are the clock the buckets and the pacing use.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}

	tunnels, refused, up, down atomic.Int64
}

// Serve runs a relay on ln until Close. ln is the caller's so that its
// address can go into the kits before the relay knows its targets.
func Serve(ln net.Listener, cfg Config) (*Relay, error) {
	return serve(ln, cfg, time.Now, sleepFor)
}

// serve is Serve on the clock now and sleep (tests inject a fake one).
func serve(ln net.Listener, cfg Config, now func() time.Time, sleep func(context.Context, time.Duration) error) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{cfg: cfg, ln: ln, log: log, now: now, sleep: sleep,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// URL is the proxy URL a leaf's proxy setting takes: http://host:port.
func (r *Relay) URL() string { return "http://" + r.ln.Addr().String() }

// Stats reports what the relay has carried.
func (r *Relay) Stats() Stats {
	return Stats{Tunnels: r.tunnels.Load(), Refused: r.refused.Load(), Upstream: r.up.Load(), Down: r.down.Load()}
}

// Close stops accepting, closes every tunnel and waits for them.
func (r *Relay) Close() error {
	r.cancel()
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if r.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.log.Warn("linkrelay: accept", "err", err)
			}
			return
		}
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.tunnel(c)
		}()
	}
}

// track records a connection so that Close can close it; false once the
// relay is closing.
func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) forget(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

// tunnel reads one CONNECT request from client, dials its target if it is
// one of the relay's, answers 200 and then copies both ways, paced.
func (r *Relay) tunnel(client net.Conn) {
	defer r.forget(client)
	client.SetDeadline(time.Now().Add(requestTimeout))
	br := bufio.NewReaderSize(io.LimitReader(client, maxRequestBytes), 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		r.refuse(client, http.StatusBadRequest, fmt.Sprintf("not an HTTP request: %v", err))
		return
	}
	if req.Method != http.MethodConnect {
		r.refuse(client, http.StatusMethodNotAllowed, fmt.Sprintf("method %.16q: only CONNECT is relayed", req.Method))
		return
	}
	target := req.Host
	if !slices.Contains(r.cfg.Targets, target) {
		r.refuse(client, http.StatusForbidden, fmt.Sprintf("target %.64q is not one the relay tunnels to", target))
		return
	}
	d := net.Dialer{Timeout: requestTimeout}
	upstream, err := d.DialContext(r.ctx, "tcp", target)
	if err != nil {
		r.refuse(client, http.StatusBadGateway, fmt.Sprintf("dial %s: %v", target, err))
		return
	}
	if !r.track(upstream) {
		upstream.Close()
		return
	}
	defer r.forget(upstream)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	client.SetDeadline(time.Time{})
	r.tunnels.Add(1)
	// Bytes the client sent after its request (a TLS hello, say) are
	// already in the reader: they go first, paced like the rest.
	early := make([]byte, br.Buffered())
	br.Read(early)

	// Either direction ending (EOF, an error, Close) closes both sides.
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer closeBoth()
		r.pace(upstream, client, nil, &r.down)
	}()
	r.pace(client, upstream, early, &r.up)
	closeBoth()
	<-done
}

// refuse answers an HTTP error with the reason, counts and logs it.
func (r *Relay) refuse(client net.Conn, code int, reason string) {
	r.refused.Add(1)
	r.log.Warn("linkrelay: refused", "peer", client.RemoteAddr().String(), "status", code, "reason", reason)
	fmt.Fprintf(client, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n",
		code, http.StatusText(code), len(reason)+1, reason)
}

// pace copies src to dst (first early, if any) through a bucket of the
// relay's rate, adding each byte written to count.
func (r *Relay) pace(src io.Reader, dst io.Writer, early []byte, count *atomic.Int64) {
	bucket := NewBucket(r.cfg.Rate, r.now)
	send := func(p []byte) bool {
		if err := r.sleep(r.ctx, bucket.Reserve(len(p))); err != nil {
			return false
		}
		n, err := dst.Write(p)
		count.Add(int64(n))
		return err == nil
	}
	for len(early) > 0 {
		n := min(len(early), copyBuffer)
		if !send(early[:n]) {
			return
		}
		early = early[n:]
	}
	buf := make([]byte, copyBuffer)
	for {
		n, err := src.Read(buf)
		if n > 0 && !send(buf[:n]) {
			return
		}
		if err != nil {
			return
		}
	}
}

// sleepFor waits d, or until ctx ends.
func sleepFor(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
