// Package trainer is the contract between a site and a trainer plugin: the
// plugin kind that lets a job bring its own training code (a PyTorch
// script, or a pinned binary) beside the built-in pure-Go trainers of
// actors/learning/trainer, which stay in process.
//
// The Go interface a plugin implements (Trainer) and its plain types are
// here. Beside it, split by role as plugins/filter is: the go-plugin glue
// (plugin.go), the host side (client.go: Client, which runs a pinned
// plugin through plugins.Load), the plugin side for Go trainers
// (server.go: Serve, a plugin's whole main), the shared memory the models
// travel in (plugins/internal/shm), the conversions and bounds on what a plugin
// answers (convert.go), and the PyTorch trainer (python.go, with the
// Python side of the protocol in python/).
//
// # The calls
//
// Configure (once after each start: the job's arguments, the site's data
// folder, the trainer's own working folder), Prepare (the initial model:
// its layout, its values written into shared memory), Train (one round
// from the global model: the trained model, the sample count, the loss
// and the trainer's own metrics) and Evaluate (samples, loss, accuracy of
// a model on the site's validation data). As with privacy filters, no
// model value crosses gRPC: the host writes the models into files of a
// private folder (mode 0700, /dev/shm by default), the plugin maps them,
// and writes its model into a second file the host made.
//
// # Failing closed
//
// The host refuses, with an error naming why, every answer outside the
// contract: a layout that does not decode or is beyond the bounds
// (ErrContract), a trained model whose layout is not the global's
// (model.ErrLayout), a value that is not a finite float32 (ErrNonFinite;
// the values are copied out of shared memory first, then checked), a
// sample count below 1 or above MaxSamples, a loss that is negative or not
// finite, an accuracy outside [0, 1], too many or too long metric names,
// metric values that are not finite. A plugin that crashes, hangs past
// its deadline (it is then killed), or cannot start is a *plugins.Error;
// a plugin that reports its memory limit reached is ErrMemoryLimit. A
// site leaves itself out of the round on any of them.
//
// # The PyTorch trainer, and what its pin covers
//
// A job names the trainer "pytorch" and ships a script; its signed
// manifest pins the script's SHA-256. NewPython reads the script
// (bounded), refuses it unless it hashes to that pin (plugins.ErrChecksum,
// nothing runs), and builds a launcher: one executable file, the line
// "#!/usr/bin/python3 -I" followed by a zip archive that Python runs as a
// zipapp, holding the harness (python/hearth_trainer.py and the generated
// protobuf code), the site's limits and the script's verified bytes. The
// launcher's SHA-256 is the Pin handed to plugins.Load, which copies it
// into its private folder, checks the copy's hash and executes only the
// copy: what runs is exactly harness + limits + the pinned script, with
// no window in which the script file could be swapped. The interpreter
// is the site's own (an absolute path, not writable by group or others),
// not hashed. -I keeps PYTHON* variables and the user's site folder out.
//
// # Limits
//
// Memory (RLIMIT_AS), CPU time (RLIMIT_CPU), open files (RLIMIT_NOFILE)
// and the size of each file it writes (RLIMIT_FSIZE, Limits.FileSize: at
// least the model bound), and no core files, are set by the launcher on
// its own process, soft and hard alike, before any of the job's code (or
// torch) is imported: the job cannot raise them. They are per process;
// in the sandbox the job can start none (see below), so they bound the
// job. They are set there because plugins.Load makes the exec.Cmd itself
// and passes no arguments, and Go's SysProcAttr has no rlimits;
// prlimit(2) from the host would leave a window after the start and
// needs the child's pid, which the loader keeps. Being inside the
// pinned launcher, the limits are covered by its hash too. A script that
// hits its memory limit gets an allocation failure; the harness answers
// RESOURCE_EXHAUSTED (ErrMemoryLimit here), refuses any further call and
// ends its process once the answer is sent, so that the next call starts
// a fresh one. At the CPU limit the harness logs SIGXCPU and exits (the
// host sees plugins.ErrExited); at the open files limit the script gets
// EMFILE, and past the file size limit EFBIG (Python ignores SIGXFSZ),
// errors answered as such. Each call has the loader's deadline
// (ClientConfig.Timeout), past which the process group is killed.
//
// What is not bounded: the working folder's total. Linux has no
// per-folder quota a site's user can set, so a script may fill its
// working folder (and the file system it lies on) with many files of up
// to FileSize each, within its CPU time and the call's deadline. A site
// bounds that by where it puts the folder (PythonConfig.WorkRoot: a file
// system of its own, or one with a quota for its user). The shared
// memory folder (tmpfs, RAM outside RLIMIT_AS) is bounded: in the
// sandbox the job creates no file there, and can grow each of the host's
// few files (Prepare's, a model in, a model out) to FileSize at most.
//
// The script sees none of the host's environment (SkipHostEnv: only
// go-plugin's handshake variables, and LC_CTYPE that Python sets itself)
// and runs in its own working folder (Setup.WorkDir, 0700, empty at
// first).
//
// # Folders a crash leaves
//
// NewPython makes the working folder under PythonConfig.WorkRoot (a
// folder the site controls: its state folder, say; the system's
// temporary folder by default) and a private folder under ShmDir
// (/dev/shm by default) for the shared memory; Close removes both. Every
// such folder is named hearth-trainer-<role>-<pid>.<start>-<random>
// (StalePrefix) for the process that made it, so that after a crash (the
// site's process killed: its trainers die with it, Pdeathsig) the site
// removes its leftovers at its next start with ClearStale(ShmDir,
// WorkRoot), which leaves alone the folders of processes that still run.
//
// # The sandbox
//
// On Linux (x86_64, aarch64) the launcher confines its own process before
// it imports the job's script (python/hearth_sandbox.py; sandbox.go holds
// the policy, which is part of the pinned launcher like the limits).
// torch, grpc and the TLS certificate come first, the site's own
// packages, while the process has one thread; then no_new_privs, every
// capability dropped (a site running as root keeps uid 0 but cannot load
// modules, mknod, use raw I/O or override file modes), and a Landlock
// domain that handles every filesystem right of the kernel's ABI (down to
// ABI 1, rights the kernel lacks left out) and allows only: read and
// execute beneath /usr, /lib and /lib64; read of /etc/ld.so.cache (and of
// nothing else under /etc), /dev/urandom, /proc/self (the process's own
// folder) and /sys/devices/system/cpu; read and write of /dev/null; read
// of the launcher file and of the job's dataset folder
// <DataDir>/<args.dataset> (not the data folder: other datasets stay
// out); read, write, create and remove beneath the working folder (no
// executing there, no device, socket or fifo files); read and write of
// the files the host made in the shared memory folder, nothing created,
// removed or truncated there (NewPython makes both folders, so that the
// launcher names them). TCP connect
// is forbidden (ABI 4), signals and abstract unix sockets are scoped to
// the sandbox (ABI 6: the host cannot be signalled). gRPC's server is
// made and its listener bound inside that domain; then a second layer
// forbids TCP bind (ABI 4), and a seccomp filter goes on every thread:
// socket() and socketpair() only for AF_UNIX streams and seqpackets (no
// UDP, raw or netlink sockets, no unix datagrams), no connect(), no
// io_uring_setup, ptrace or process_vm_readv/writev; no new process
// (fork, vfork, clone without CLONE_THREAD: EPERM; clone3: ENOSYS, so
// that glibc falls back to clone, whose flags the filter sees), no
// setsid or setpgid (the process stays in the group the loader kills),
// no execve or execveat, no unshare. Threads are made as before
// (torch's, gRPC's, the script's own). Only then is the script imported,
// and the server's threads started.
//
// So a script that looks for the site's key or environment finds
// nothing: /proc/<host>/environ and cmdline, the kit, other datasets,
// /etc/shadow and /etc/passwd are unreadable (EACCES), the network is
// gone (EPERM: no TCP or UDP, no unix socket by path, which Landlock up
// to ABI 7 does not check and seccomp closes with connect() and unix
// datagrams), and the host cannot be signalled. What stays open: its
// own /proc/self (its environment is go-plugin's handshake variables,
// the host's certificate among them, which is public); the accepted
// connection to the host, which is the protocol; reading the system
// folders (every installed program and library, not /etc); CPU and
// memory within the limits; on a kernel with ABI < 4 TCP is closed by
// seccomp alone, and with ABI < 6 the host can be signalled (the same
// uid). gRPC's core threads are born inside the first Landlock layer,
// not the second: they may bind TCP, but hold no socket that could (the
// seccomp filter is on them too). The script cannot undo any of it, and
// cannot start a process: so none outlives Close or the site (the
// loader kills the one process; Pdeathsig ends it with the site), and
// the limits are not multiplied. What needs processes is refused: a
// torch DataLoader with num_workers > 0, multiprocessing, subprocess,
// os.system (the script gets PermissionError); a job trains in its one
// process, with threads.
//
// Where the sandbox cannot be applied (a kernel without Landlock:
// ENOSYS, EOPNOTSUPP; any failure of a step) the launcher runs nothing of
// the job's: it writes the reason on stderr and, in place of the
// handshake, a line the host reports, and exits; the Client's error wraps
// ErrSandbox and names the reason. A site may set PythonConfig.Sandbox to
// SandboxOff for such a kernel: the script then runs as the site's user,
// able to open whatever that user can and to use the network, and both
// the host (when it builds the trainer) and the launcher (at every
// start) log a warning saying so.
package trainer

import (
	"context"
	"fmt"

	"github.com/hearthfl/hearth/actors/learning/model"
	trainerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/trainer/v1"
)

// Setup is what a trainer is configured with, once after each start.
type Setup struct {
	// Args are the job manifest's trainer arguments, a JSON object in the
	// trainer's own schema ({} when the job gives none); at most MaxArgs
	// bytes.
	Args []byte
	// DataDir is the site's data folder, the only data the trainer reads.
	DataDir string
	// WorkDir is the trainer's own working folder (mode 0700), where it
	// may write.
	WorkDir string
}

// Split is which of the site's data an evaluation measures.
type Split int

// The splits.
const (
	Validation Split = iota + 1
	Test
)

func (s Split) String() string {
	switch s {
	case Validation:
		return "validation"
	case Test:
		return "test"
	}
	return fmt.Sprintf("split %d", int(s))
}

func (s Split) wire() (trainerv1.Split, error) {
	switch s {
	case Validation:
		return trainerv1.Split_SPLIT_VALIDATION, nil
	case Test:
		return trainerv1.Split_SPLIT_TEST, nil
	}
	return 0, fmt.Errorf("trainer: no %v", s)
}

func splitOf(w trainerv1.Split) (Split, error) {
	switch w {
	case trainerv1.Split_SPLIT_UNSPECIFIED, trainerv1.Split_SPLIT_VALIDATION:
		return Validation, nil
	case trainerv1.Split_SPLIT_TEST:
		return Test, nil
	}
	return 0, fmt.Errorf("trainer: an unknown split %d", int32(w))
}

// Result is one round of training.
type Result struct {
	// Samples is the number of local samples trained on, the update's
	// weight in FedAvg; 1..MaxSamples.
	Samples int
	// Loss is the round's mean training loss; finite, not negative.
	Loss float64
	// Metrics are further figures of the trainer's own, for the site's
	// records: at most MaxMetrics, names of 1..MaxMetricName bytes,
	// finite values.
	Metrics map[string]float64
}

// Metrics is the quality of a model on the site's validation data.
type Metrics struct {
	Samples  int     // samples evaluated, 1..MaxSamples
	Loss     float64 // mean loss, finite and not negative
	Accuracy float64 // share classified right, in [0, 1]
}

// Trainer is a job's trainer, as a plugin implements it (see Serve). The
// site calls it one call at a time.
type Trainer interface {
	// Configure hands the trainer its setup, once after each start of
	// the plugin, before any other call. An error means the trainer
	// cannot run at this site.
	Configure(ctx context.Context, s Setup) error
	// Prepare returns the initial model.
	Prepare(ctx context.Context) (*model.Model, error)
	// Train trains one round (from 0) from global on the local data and
	// returns the trained model, in global's layout. global is a
	// read-only view of shared memory, valid only until Train returns.
	Train(ctx context.Context, round int, global *model.Model) (*model.Model, Result, error)
	// Evaluate measures m on the local data of split (validation, or
	// test for the job's final model). m is a read-only view of shared
	// memory, valid only until Evaluate returns.
	Evaluate(ctx context.Context, m *model.Model, split Split) (Metrics, error)
}

// MetricScriptSeconds is the metric the PyTorch trainer adds to every
// round: the seconds the job's train() took, so that a site can tell the
// script's own time from the round's overhead.
const MetricScriptSeconds = "hearth.script_seconds"
