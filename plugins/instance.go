package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// instance is one run of a plugin's process.
type instance struct {
	proc   *plugin.Client
	cmd    *exec.Cmd
	client any // what the kind's GRPCClient made
	out    []*lineWriter

	once sync.Once
}

// launch starts the staged copy once, retrying briefly when the system
// says the copy is still open for writing (ETXTBSY: another goroutine's
// fork may hold the copy's descriptor for a moment after it was written).
func (p *Process) launch(n int) (*instance, *Error) {
	for try := 0; ; try++ {
		inst, err := p.launchOnce(n)
		if err == nil || try == 4 || !errors.Is(err.Cause, syscall.ETXTBSY) {
			return inst, err
		}
		time.Sleep(time.Duration(10<<try) * time.Millisecond)
	}
}

// launchOnce starts the staged copy with the loader's fixed go-plugin
// configuration (see the package documentation), connects to it, takes
// the kind's client and runs Init.
func (p *Process) launchOnce(n int) (*instance, *Error) {
	log := p.cfg.Logger.With("plugin", p.cfg.Kind.Name, "start", n)
	cmd := exec.Command(p.bin.bin)
	cmd.Dir = p.bin.dir
	ownGroup(cmd)
	inst := &instance{cmd: cmd}
	stderr := p.sink.writer(log, "stderr")
	stdioOut := p.sink.writer(log, "stdout")
	stdioErr := p.sink.writer(log, "stdio-stderr")
	inst.out = []*lineWriter{stderr, stdioOut, stdioErr}
	inst.proc = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  p.cfg.Kind.Handshake,
		Plugins:          plugin.PluginSet{p.cfg.Kind.Name: p.cfg.Kind.Plugin},
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: p.cfg.Pin.SHA256[:], Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     p.cfg.StartTimeout,
		// go-plugin's own logger is silenced: the loader logs the
		// process's life itself, and the plugin's raw stderr (its
		// go-plugin log lines, a panic's trace) goes to Stderr.
		Logger:              hclog.NewNullLogger(),
		Stderr:              stderr,
		SyncStdout:          stdioOut,
		SyncStderr:          stdioErr,
		PluginLogBufferSize: maxLogLine,
	})
	rpc, err := inst.proc.Client()
	if err != nil {
		inst.kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, p.errorf(ErrChecksum, nil, "the staged copy changed")
		}
		return nil, p.errorf(ErrStart, err, "")
	}
	pid := 0
	if cmd.Process != nil {
		pid = cmd.Process.Pid
	}
	raw, err := rpc.Dispense(p.cfg.Kind.Name)
	if err != nil {
		inst.kill()
		return nil, p.errorf(ErrStart, err, "dispense")
	}
	inst.client = raw
	if p.cfg.Init != nil {
		ctx, cancel := context.WithTimeout(p.stop, p.cfg.Timeout)
		err := p.cfg.Init(ctx, raw)
		cancel()
		if err != nil {
			inst.kill()
			return nil, p.errorf(ErrStart, err, "init")
		}
	}
	log.Info("plugin started", "pid", pid)
	return inst, nil
}

// exited reports whether the process has exited.
func (i *instance) exited() bool { return i.proc.Exited() }

// broken reports whether err, from a call, says the plugin's process or
// its connection is gone (rather than an answer from the plugin).
func (i *instance) broken(err error) bool {
	return status.Code(err) == codes.Unavailable || i.exited()
}

// kill ends the process and its group at once (a hung plugin would not
// shut down when asked), then lets go-plugin clean up; it returns when
// go-plugin's goroutines for this process have ended.
//
// The group is signalled only while go-plugin has not reaped the
// process: until then its pid, the group's id, cannot be reused by an
// unrelated process. go-plugin reaps only after the plugin's output pipes
// close, so a child that keeps them open keeps the id reserved until it
// is killed here.
func (i *instance) kill() {
	i.once.Do(func() {
		if !i.exited() {
			killGroup(i.cmd.Process)
		}
		i.proc.Kill()
		for _, w := range i.out {
			w.flush()
		}
	})
}
