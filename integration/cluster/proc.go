// Package cluster runs a Hearth project's processes on this machine:
// provision a local project, start the server and sites as child processes
// of the hearth binary, follow their structured (JSON) logs, wait for
// readiness, and stop them. `hearth poc` and the integration tests both use
// it, so the newcomer's demo and the tests run the same way.
package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Record is one JSON log line of a process.
type Record map[string]any

// Msg is the record's message.
func (r Record) Msg() string { s, _ := r["msg"].(string); return s }

// Str is a string attribute ("" if absent).
func (r Record) Str(key string) string { s, _ := r[key].(string); return s }

// Proc is a running hearth process.
type Proc struct {
	Name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	killed  bool // by Kill: its exit status is expected
	records []Record
	tail    []string // last lines, for errors
	changed chan struct{}
	exited  chan struct{}
	waitErr error
}

// Start runs binary with args as process name, with JSON logs on stderr
// (the caller passes --log-format json); every line is also appended to
// logPath.
func Start(binary, logPath, name string, args ...string) (*Proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = logFile
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, binary, err)
	}
	p := &Proc{Name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	go p.follow(stderr, logFile)
	return p, nil
}

func (p *Proc) follow(r io.Reader, logFile *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(logFile, line)
		var rec Record
		_ = json.Unmarshal([]byte(line), &rec)
		p.mu.Lock()
		if rec != nil {
			p.records = append(p.records, rec)
		}
		p.tail = append(p.tail, line)
		if len(p.tail) > 20 {
			p.tail = p.tail[1:]
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	logFile.Close()
	p.mu.Lock()
	p.waitErr = err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.exited)
}

// Await waits for a log record that match accepts. It fails if the process
// exits first, with the process's last lines in the error.
func (p *Proc) Await(ctx context.Context, what string, match func(Record) bool) (Record, error) {
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.records); seen++ {
			if match(p.records[seen]) {
				r := p.records[seen]
				p.mu.Unlock()
				return r, nil
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for %s: %w\n%s", p.Name, what, ctx.Err(), p.Tail())
		case <-p.exited:
			p.mu.Lock()
			n := len(p.records)
			p.mu.Unlock()
			if seen < n {
				continue
			}
			return nil, fmt.Errorf("%s exited (%v) before %s:\n%s", p.Name, p.ExitErr(), what, p.Tail())
		case <-changed:
		}
	}
}

// AwaitReady waits for the process's "ready" record.
func (p *Proc) AwaitReady(ctx context.Context) (Record, error) {
	return p.Await(ctx, "ready", func(r Record) bool { return r.Msg() == "ready" })
}

// Records returns the records match accepts, so far.
func (p *Proc) Records(match func(Record) bool) []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Record
	for _, r := range p.records {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// Tail is the process's last output lines.
func (p *Proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "  " + strings.Join(p.tail, "\n  ")
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitErr is the process's exit status once it has exited.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Stop asks the process to stop (SIGTERM) and kills it if it has not exited
// within grace. It returns the exit error, nil for a clean stop or for a
// process that Kill already ended.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		p.mu.Lock()
		killed := p.killed
		p.mu.Unlock()
		if killed {
			return nil
		}
		return p.ExitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.ExitErr()
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %v and was killed", p.Name, grace)
	}
}

// Kill kills the process and its children at once, as a crash would.
func (p *Proc) Kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// Pause stops the process (SIGSTOP) without closing its connections, as a
// hung process would look to its peers; Resume lets it go on.
func (p *Proc) Pause() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP) }

// Resume continues a paused process.
func (p *Proc) Resume() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT) }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// PeakRSS is the process's peak resident set size so far (VmHWM), in bytes.
func (p *Proc) PeakRSS() (int64, error) { return PeakRSS(p.cmd.Process.Pid) }

// PeakRSS reads a process's peak resident set size (VmHWM) from /proc.
func PeakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
