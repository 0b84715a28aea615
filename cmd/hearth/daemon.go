package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/cmd/hearth/gclimit"
)

// logFlags are the logging and diagnostics flags every long-running
// command takes.
type logFlags struct {
	level, format, cpuProfile string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&l.cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) to this file until the process stops")
}

// profile starts the CPU profile if one was asked for; the returned
// function stops it.
func (l *logFlags) profile() (stop func(), err error) {
	if l.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(l.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

// rootFingerprintEnv names the environment variable read for the expected
// project root fingerprint when --root-fingerprint is not given.
const rootFingerprintEnv = "HEARTH_ROOT_FINGERPRINT"

// daemonFlags are the flags of the long-running commands (server, site):
// the startup kit, the root it must carry, logging and diagnostics.
type daemonFlags struct {
	kitDir string
	root   string
	logFlags
	tee io.Writer // if set, the log is written there too
}

func (d *daemonFlags) register(fs *flag.FlagSet, whose string) {
	fs.StringVar(&d.kitDir, "k", "", "the "+whose+"'s startup kit folder (required)")
	fs.StringVar(&d.root, "root-fingerprint", "", "the project root's fingerprint (sha256:..., printed by hearth provision and cert approve): refuse a kit with another root "+
		"(default: $"+rootFingerprintEnv+", else the root recorded in the kit's state/ at first start)")
	d.logFlags.register(fs)
}

// options are the node options the flags and the environment set: the
// logger and the expected root.
func (d *daemonFlags) options(c *cli, log *slog.Logger) (node.Options, error) {
	o := node.Options{Logger: log, Protocol: protocol.Table{}}
	text, from := d.root, "--root-fingerprint"
	if text == "" {
		text, from = c.getenv(rootFingerprintEnv), rootFingerprintEnv
	}
	if text == "" {
		return o, nil
	}
	f, err := kit.ParseFingerprint(text)
	if err != nil {
		return o, fmt.Errorf("%w: %s: %w", errUsage, from, err)
	}
	o.RootFingerprint = f
	return o, nil
}

// open parses args, then makes the logger, starts the CPU profile if asked
// and loads (verifies) the kit. stop ends the profile.
func (d *daemonFlags) open(c *cli, fs *flag.FlagSet, args []string) (k *kit.Kit, log *slog.Logger, stop func(), err error) {
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, err
	}
	if d.kitDir == "" {
		fs.Usage()
		return nil, nil, nil, errUsageMsg("-k KIT is required")
	}
	w := c.stderr
	if d.tee != nil {
		w = io.MultiWriter(w, d.tee)
	}
	if log, err = d.logger(w); err != nil {
		return nil, nil, nil, err
	}
	tuneRuntime(c.getenv)
	if stop, err = d.profile(); err != nil {
		return nil, nil, nil, err
	}
	if k, err = kit.Load(d.kitDir); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return k, log, stop, nil
}

// auditRefusals appends the node's refusal records (first refusals at once,
// then a summary per sender and reason per interval) to the audit log. The
// returned function hands over what is pending and detaches the log: defer
// it after audit.Close, so that it runs first.
func auditRefusals(n *node.Node, audit *auditor.Log) func() {
	detach := n.AuditRefusals(func(r node.RefusalRecord) error {
		kind := "summary"
		if r.First {
			kind = "first"
		}
		_, err := audit.Append(auditor.Event{Action: r.Action, Peer: r.Peer, Detail: map[string]string{
			"reason": r.Reason, "count": strconv.Itoa(r.Count), "record": kind,
			"since": r.Since.UTC().Format(time.RFC3339), "example": r.Detail,
		}})
		return err
	})
	return func() {
		if err := detach(); err != nil {
			n.Log().Error("refusals not audited", "err", err)
		}
	}
}

// tuneRuntime sets the garbage collector for a process whose model streams
// allocate a 1 MiB buffer per chunk: a small live heap and a high
// allocation rate would otherwise make the GC run every few chunks. GOGC
// 400 lets garbage grow longer between collections, and a soft memory limit
// kept 512 MiB above the live heap (gclimit) bounds that garbage however
// large the live data is. Measured with hearth bench: 1 GiB model, 8 sites,
// round 42.3 s -> 35.4 s with GOGC 400 and a fixed 512 MiB limit (GOGC 400
// alone: 36.6 s, 2.63 GiB server peak). A fixed limit fell below a swarm
// site's live heap (its models live on the heap), and gclimit's doc says
// what that cost. GOGC and GOMEMLIMIT in the environment take precedence.
func tuneRuntime(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		gclimit.Follow(512<<20, 100*time.Millisecond)
	}
}
