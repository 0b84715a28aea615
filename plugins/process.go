package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Process is one supervised plugin: a pinned binary, verified and staged
// by Load, run as a subprocess when a call needs it. Its methods are safe
// for concurrent use; calls share the one running process.
//
// Its life: Load stages the binary (nothing runs); the first Start or
// Call starts the plugin and runs Config.Init; a call that finds the
// plugin exited, or that had to kill it (deadline), fails, and the next
// call starts it again, after the backoff when failures follow each
// other; Close kills it and removes the staged copy.
type Process struct {
	cfg  Config
	bin  *staged
	sink *logSink

	// stop ends Init's context when the Process closes.
	stop   context.Context
	cancel context.CancelFunc
	starts sync.WaitGroup // start goroutines in flight

	mu       sync.Mutex
	cur      *instance     // the running plugin, nil when none
	starting *startAttempt // the start in flight, nil when none
	launches int           // starts tried, for the logs
	failures int           // consecutive failures, reset by a successful call
	retryAt  time.Time     // no start before then
	lastErr  *Error        // the last failure, for ErrRestarting's detail
	closed   bool
}

// startAttempt is one start in flight; err is set before done closes.
type startAttempt struct {
	done chan struct{}
	err  error
}

// Load checks cfg, then verifies and stages the pinned binary (see the
// package documentation): a binary that does not match its pin is never
// executed. Nothing is started yet. Once cfg is valid, every error is an
// *Error naming the reason.
func Load(cfg Config) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	bin, err := stage(cfg.Kind.Name, cfg.Pin, cfg.MaxSize, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	stop, cancel := context.WithCancel(context.Background())
	cfg.Logger.Info("plugin staged", "plugin", cfg.Kind.Name, "pin", cfg.Pin.String(), "copy", bin.bin)
	return &Process{cfg: cfg, bin: bin, sink: newLogSink(), stop: stop, cancel: cancel}, nil
}

// Start starts the plugin now, unless it runs already, and runs
// Config.Init; it waits for that until ctx ends. Calls start the plugin
// themselves when needed, so Start only brings a failure forward (a site
// calls it when it opens, to report a plugin that cannot run).
func (p *Process) Start(ctx context.Context) error {
	_, err := p.acquire(ctx)
	return err
}

// Call runs fn with the running plugin's client (the value the kind's
// GRPCClient made), starting the plugin first if need be, under a
// context that ends at Config.Timeout (or earlier, with ctx). fn must
// return when its context ends; gRPC calls do.
//
// Call returns fn's error as it is when the plugin answered it (its own
// "could not decide"). It returns an *Error when the plugin could not
// answer: ErrDeadline when fn ran out of time (the plugin is then killed,
// and the next call restarts it) or when ctx ended first, ErrExited when
// the plugin's process exited or its connection broke (the next call
// restarts it), and the reasons acquire has (ErrStart, ErrRestarting,
// ErrClosed).
func (p *Process) Call(ctx context.Context, fn func(ctx context.Context, client any) error) error {
	inst, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	err = fn(callCtx, inst.client)
	hung := errors.Is(callCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	switch {
	case err == nil:
		p.mu.Lock()
		if p.cur == inst {
			p.failures = 0
		}
		p.mu.Unlock()
		return nil
	case hung:
		e := p.errorf(ErrDeadline, nil, fmt.Sprintf("no answer within %v; plugin killed", p.cfg.Timeout))
		p.failed(inst, e)
		return e
	case ctx.Err() != nil:
		return p.errorf(ErrDeadline, ctx.Err(), "the caller gave up")
	case inst.broken(err):
		e := p.errorf(ErrExited, err, "")
		p.failed(inst, e)
		return e
	}
	return err
}

// Close kills the plugin, waits for a start in flight to end and removes
// the staged copy. Calls after Close fail with ErrClosed. Close is
// idempotent.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	inst := p.cur
	p.cur = nil
	p.mu.Unlock()
	p.cancel()
	if inst != nil {
		inst.kill()
	}
	p.starts.Wait()
	p.cfg.Logger.Info("plugin closed", "plugin", p.cfg.Kind.Name)
	return p.bin.remove()
}

// acquire returns the running plugin, starting it if there is none and
// the backoff allows, or joining the start in flight.
func (p *Process) acquire(ctx context.Context) (*instance, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, p.errorf(ErrClosed, nil, "")
		}
		if inst := p.cur; inst != nil {
			if !inst.exited() {
				p.mu.Unlock()
				return inst, nil
			}
			p.cur = nil
			p.noteFailure(p.errorf(ErrExited, nil, "while idle"))
			p.mu.Unlock()
			inst.kill()
			continue
		}
		if a := p.starting; a != nil {
			p.mu.Unlock()
			select {
			case <-a.done:
				if a.err != nil {
					return nil, a.err
				}
				continue
			case <-ctx.Done():
				return nil, p.errorf(ErrStart, ctx.Err(), "gave up waiting for the plugin to start")
			}
		}
		if wait := time.Until(p.retryAt); wait > 0 {
			err := p.errorf(ErrRestarting, nil, fmt.Sprintf("next start in %v; last failure: %s", wait.Round(time.Millisecond), p.lastErr.tail()))
			p.mu.Unlock()
			return nil, err
		}
		a := &startAttempt{done: make(chan struct{})}
		p.starting = a
		p.launches++
		n := p.launches
		p.starts.Add(1)
		p.mu.Unlock()
		go p.start(a, n)
	}
}

// start runs one start attempt and publishes its outcome. It ends within
// Config.StartTimeout plus Config.Timeout (Init), or sooner on Close.
func (p *Process) start(a *startAttempt, n int) {
	defer p.starts.Done()
	inst, err := p.launch(n)
	p.mu.Lock()
	p.starting = nil
	switch {
	case err != nil:
		p.noteFailure(err)
		a.err = err
	case p.closed:
		a.err = p.errorf(ErrClosed, nil, "")
	default:
		p.cur = inst
		inst = nil
	}
	close(a.done)
	p.mu.Unlock()
	if inst != nil { // started, but closed meanwhile
		inst.kill()
	}
}

// failed retires inst after the failure err, unless another call did
// already, and kills it.
func (p *Process) failed(inst *instance, err *Error) {
	p.mu.Lock()
	if p.cur == inst {
		p.cur = nil
		p.noteFailure(err)
	}
	p.mu.Unlock()
	inst.kill()
}

// noteFailure counts a failure and sets when the next start may be; p.mu
// is held.
func (p *Process) noteFailure(err *Error) {
	p.failures++
	p.lastErr = err
	wait := p.cfg.Backoff.delay(p.failures)
	p.retryAt = time.Now().Add(wait)
	p.cfg.Logger.Warn("plugin failed", "plugin", p.cfg.Kind.Name, "failures", p.failures, "restart_after", wait, "err", err)
}

// errorf is a failure of this plugin.
func (p *Process) errorf(reason, cause error, detail string) *Error {
	return &Error{Kind: p.cfg.Kind.Name, Path: p.cfg.Pin.Path, Reason: reason, Cause: cause, Detail: detail}
}
