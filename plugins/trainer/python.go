package trainer

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/plugins"
)

// The Python side of the contract, embedded: the harness, its launcher
// entry point and the generated protobuf and gRPC code (regenerate with
// python/gen.sh).
//
//go:embed python/hearth_trainer.py python/hearth_sandbox.py python/launcher_main.py python/trainer_pb2.py python/trainer_pb2_grpc.py python/health_pb2.py python/health_pb2_grpc.py
var pythonFiles embed.FS

// DefaultInterpreter is the site's Python when PythonConfig.Interpreter
// is empty: Debian's, which python3-torch and python3-grpcio install
// into.
const DefaultInterpreter = "/usr/bin/python3"

// DefaultPythonStartTimeout bounds a PyTorch trainer's start when
// PythonConfig.StartTimeout is zero: importing torch takes seconds.
const DefaultPythonStartTimeout = time.Minute

// MaxScriptBytes bounds a job's training script.
const MaxScriptBytes = 4 << 20

// Defaults of Limits' zero fields.
const (
	DefaultMemory    = 4 << 30 // bytes of address space
	DefaultCPUTime   = time.Hour
	DefaultOpenFiles = 256
	DefaultThreads   = 1
	DefaultFileSize  = 1 << 30 // bytes of one file, or the model bound when larger
)

// Limits are what a PyTorch trainer's process may use. The launcher sets
// them on its own process (setrlimit, soft and hard alike) before any
// code of the job's runs, so the job cannot raise them; they hold for
// every process it starts too. They are part of the pinned launcher.
type Limits struct {
	// Memory bounds the process's address space (RLIMIT_AS) in bytes;
	// PyTorch and gRPC take about a gigabyte of it before any training.
	Memory int64
	// CPUTime bounds the process's CPU time (RLIMIT_CPU, whole seconds),
	// over its whole life (every call, PyTorch's import included; a
	// restarted trainer starts afresh): at the limit it is told (SIGXCPU:
	// the harness logs it and exits, the host sees plugins.ErrExited), 5
	// seconds later killed. A call's own time is bounded by its deadline
	// (PythonConfig.Timeout).
	CPUTime time.Duration
	// OpenFiles bounds its open descriptors (RLIMIT_NOFILE).
	OpenFiles int
	// FileSize bounds each file the process writes or extends
	// (RLIMIT_FSIZE) in bytes: a write past it fails with EFBIG (Python
	// ignores SIGXFSZ). It must be at least the Client's model bound
	// (MaxModelBytes), so that a script can save its model; zero means
	// DefaultFileSize, or the model bound when that is larger. It bounds
	// files one by one, not the working folder's total (see the package
	// doc, "Limits").
	FileSize int64
	// Threads is PyTorch's number of threads (torch.set_num_threads).
	Threads int
}

// withDefaults is l with its zero fields set to the defaults, for a
// Client whose model bound is maxModel bytes.
func (l Limits) withDefaults(maxModel int64) Limits {
	if l.FileSize == 0 {
		l.FileSize = max(DefaultFileSize, maxModel)
	}
	if l.Memory == 0 {
		l.Memory = DefaultMemory
	}
	if l.CPUTime == 0 {
		l.CPUTime = DefaultCPUTime
	}
	if l.OpenFiles == 0 {
		l.OpenFiles = DefaultOpenFiles
	}
	if l.Threads == 0 {
		l.Threads = DefaultThreads
	}
	return l
}

// validate refuses limits that no trainer could run under, for a Client
// whose model bound is maxModel bytes.
func (l Limits) validate(maxModel int64) error {
	switch {
	case l.FileSize < maxModel:
		return fmt.Errorf("a file size limit of %d bytes, below the model bound of %d", l.FileSize, maxModel)
	case l.Memory < 256<<20:
		return fmt.Errorf("a memory limit of %d bytes (at least 256 MiB)", l.Memory)
	case l.CPUTime < time.Second:
		return fmt.Errorf("a CPU time limit of %v (at least 1s)", l.CPUTime)
	case l.OpenFiles < 32 || l.OpenFiles > 1<<20:
		return fmt.Errorf("an open files limit of %d (32..%d)", l.OpenFiles, 1<<20)
	case l.Threads < 1 || l.Threads > 1024:
		return fmt.Errorf("%d threads (1..1024)", l.Threads)
	}
	return nil
}

// PythonConfig is what NewPython needs: the job's script as its manifest
// pins it, the site's interpreter, the limits, and the rest of a
// ClientConfig.
type PythonConfig struct {
	// Script is the job's training script: its path, and the SHA-256 the
	// signed job manifest pins for it. A script whose bytes differ is
	// never run.
	Script plugins.Pin
	// Interpreter is the site's Python (absolute); "" means
	// DefaultInterpreter. It is the site's own program, not the job's:
	// it is not hashed, but it must not be writable by group or others.
	Interpreter string
	Limits      Limits
	// StartTimeout bounds one start, up to the handshake line: importing
	// PyTorch and the job's script included; zero means
	// DefaultPythonStartTimeout.
	StartTimeout time.Duration
	// Sandbox is whether the trainer's process is confined; the zero
	// value, SandboxOn, confines it and refuses to run the job where it
	// cannot. It is part of the pinned launcher.
	Sandbox SandboxMode
	// WorkRoot is where NewPython makes the working folder when
	// Setup.WorkDir is empty: a folder the site controls (its state
	// folder, say), so that what a crash leaves there is where the site
	// looks (ClearStale); "" means the system's temporary folder.
	WorkRoot string
	// Setup, Timeout, StageDir, ShmDir, MaxModelBytes and Logger are as
	// in ClientConfig.
	Setup         Setup
	Timeout       time.Duration
	StageDir      string
	ShmDir        string
	MaxModelBytes int64
	Logger        *slog.Logger
}

// NewPython is a Client for a job's PyTorch script. It checks the
// script against its pin, then builds the launcher: one executable file,
// a zip archive (Python runs it as a zipapp) behind the line
// "#!<interpreter> -I" (isolated mode: no PYTHON* variables, no user
// site folder), holding the harness (python/), the limits and the
// script's verified bytes. The launcher's own SHA-256 is the Pin that
// plugins.Load verifies on its private copy before it runs anything: the
// hash that runs covers harness, limits and script together, and the
// script inside is exactly what the manifest pinned. The launcher is
// built in a private folder, removed once the loader staged its copy.
func NewPython(cfg PythonConfig) (*Client, error) {
	interp := cfg.Interpreter
	if interp == "" {
		interp = DefaultInterpreter
	}
	if err := checkInterpreter(interp); err != nil {
		return nil, fmt.Errorf("trainer: python: %w", err)
	}
	maxModel := cfg.MaxModelBytes
	if maxModel == 0 {
		maxModel = DefaultMaxModelBytes
	}
	limits := cfg.Limits.withDefaults(maxModel)
	if err := limits.validate(maxModel); err != nil {
		return nil, fmt.Errorf("trainer: python: %w", err)
	}
	script, err := readPinned(cfg.Script, MaxScriptBytes)
	if err != nil {
		return nil, err
	}
	startTimeout := cfg.StartTimeout
	if startTimeout == 0 {
		startTimeout = DefaultPythonStartTimeout
	}
	// The folders the sandbox lets the script write are made now, so
	// that the launcher names them: the working folder, unless the site
	// gave one (under WorkRoot), and a private folder under ShmDir that
	// the Client makes its shared memory folder in. Both are named for
	// this process (ClearStale).
	shmBase, err := makePrivate(shmDirOf(cfg.ShmDir), "py")
	if err != nil {
		return nil, fmt.Errorf("trainer: python: shared memory folder: %w", err)
	}
	setup, ownWork := cfg.Setup, false
	if setup.WorkDir == "" {
		if setup.WorkDir, err = makePrivate(cfg.WorkRoot, "work"); err != nil {
			os.RemoveAll(shmBase)
			return nil, fmt.Errorf("trainer: python: working folder: %w", err)
		}
		ownWork = true
	}
	c, err := newPythonClient(cfg, interp, limits, script, startTimeout, setup, shmBase)
	if err != nil {
		os.RemoveAll(shmBase)
		if ownWork {
			os.RemoveAll(setup.WorkDir)
		}
		return nil, err
	}
	c.ownWork = ownWork
	c.remove = append(c.remove, shmBase)
	if cfg.Sandbox == SandboxOff && cfg.Logger != nil {
		cfg.Logger.Warn("trainer sandbox off by the site's configuration: the job's script runs unconfined", "plugin", PluginName)
	}
	return c, nil
}

// newPythonClient builds the launcher (in a private folder, removed once
// the loader staged its copy) and the Client that runs it.
func newPythonClient(cfg PythonConfig, interp string, limits Limits, script []byte, startTimeout time.Duration, setup Setup, shmBase string) (*Client, error) {
	if setup.Args == nil {
		setup.Args = []byte("{}")
	}
	policy, err := pythonSandbox(cfg.Sandbox, interp, setup, setup.WorkDir, shmBase)
	if err != nil {
		return nil, fmt.Errorf("trainer: python: %w", err)
	}
	launcher, err := buildLauncher(interp, limits, policy, script)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.StageDir, "hearth-trainer-launcher-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("trainer: python: launcher folder: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "hearth-trainer-pytorch")
	if err := os.WriteFile(path, launcher, 0o700); err != nil {
		return nil, fmt.Errorf("trainer: python: launcher: %w", err)
	}
	return NewClient(ClientConfig{
		Pin:           plugins.Pin{Path: path, SHA256: sha256.Sum256(launcher)},
		Setup:         setup,
		Timeout:       cfg.Timeout,
		StartTimeout:  startTimeout,
		StageDir:      cfg.StageDir,
		ShmDir:        shmBase,
		MaxModelBytes: cfg.MaxModelBytes,
		Logger:        cfg.Logger,
	})
}

// ScriptSHA256 is the SHA-256 of a script's bytes, as a job manifest pins
// it.
func ScriptSHA256(script []byte) [sha256.Size]byte { return sha256.Sum256(script) }

// checkInterpreter refuses an interpreter that is not an absolute path
// to an executable regular file, or that group or others may write.
func checkInterpreter(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("interpreter %q is not absolute", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("interpreter: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("interpreter %s is not an executable file (mode %v)", path, fi.Mode())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("interpreter %s is writable by group or others (mode %v)", path, fi.Mode())
	}
	return nil
}

// readPinned reads at most max bytes of the pinned file and returns them
// only when they hash to the pin; a mismatch wraps plugins.ErrChecksum.
func readPinned(pin plugins.Pin, limit int64) ([]byte, error) {
	fail := func(reason, cause error, detail string) error {
		return &plugins.Error{Kind: PluginName, Path: pin.Path, Reason: reason, Cause: cause, Detail: detail}
	}
	f, err := os.Open(pin.Path)
	if err != nil {
		return nil, fail(plugins.ErrUnreadable, err, "the job's script")
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fail(plugins.ErrNotRegular, err, "the job's script")
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fail(plugins.ErrUnreadable, err, "the job's script")
	}
	if int64(len(b)) > limit {
		return nil, fail(plugins.ErrTooLarge, nil, fmt.Sprintf("the job's script is more than %d bytes", limit))
	}
	if sum := sha256.Sum256(b); subtle.ConstantTimeCompare(sum[:], pin.SHA256[:]) != 1 {
		return nil, fail(plugins.ErrChecksum, nil, "the job's script hashes to "+hex.EncodeToString(sum[:]))
	}
	return b, nil
}

// launchEpoch is the time every entry of a launcher carries, so that
// equal inputs build equal launchers (and equal hashes).
var launchEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// buildLauncher is the launcher's bytes (see NewPython).
func buildLauncher(interp string, l Limits, sandbox sandboxPolicy, script []byte) ([]byte, error) {
	limits, err := json.Marshal(map[string]int64{
		"memory":      l.Memory,
		"cpu_seconds": int64(l.CPUTime / time.Second),
		"open_files":  int64(l.OpenFiles),
		"threads":     int64(l.Threads),
		"file_size":   l.FileSize,
	})
	if err != nil {
		return nil, err
	}
	policy, err := json.Marshal(sandbox)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		body []byte
	}{
		{"hearth_launch.py", []byte("# The site's limits and sandbox for this trainer (plugins/trainer, python.go, sandbox.go).\n" +
			"LIMITS = " + string(limits) + "\nSANDBOX = " + pyJSON(policy) + "\n")},
		{"job.py", script},
	}
	for _, f := range []struct{ name, src string }{
		{"__main__.py", "launcher_main.py"},
		{"hearth_trainer.py", "hearth_trainer.py"},
		{"hearth_sandbox.py", "hearth_sandbox.py"},
		{"trainer_pb2.py", "trainer_pb2.py"},
		{"trainer_pb2_grpc.py", "trainer_pb2_grpc.py"},
		{"health_pb2.py", "health_pb2.py"},
		{"health_pb2_grpc.py", "health_pb2_grpc.py"},
	} {
		b, err := pythonFiles.ReadFile("python/" + f.src)
		if err != nil {
			return nil, err
		}
		files = append(files, struct {
			name string
			body []byte
		}{f.name, b})
	}
	var buf bytes.Buffer
	buf.WriteString("#!" + interp + " -I\n")
	zw := zip.NewWriter(&buf)
	zw.SetOffset(int64(buf.Len()))
	for _, f := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: launchEpoch})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pyJSON is JSON text as a Python expression: json.loads of the text
// quoted as a bytes literal, since JSON's true, false and null are not
// Python's. Go's %q quoting is valid Python for the ASCII it writes.
func pyJSON(b []byte) string { return fmt.Sprintf("__import__(\"json\").loads(%+q)", b) }
