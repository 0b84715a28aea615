package trainer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins/trainer"
)

// escapeTargets are what testdata/escape.py aims at, all real: a secret
// file outside the allowed folders (the site's kit, say), a second
// dataset beside the job's, listeners on 127.0.0.1 (TCP and UDP) and
// unix sockets by path, each recording what reaches it.
type escapeTargets struct {
	data string         // the site's data folder
	args map[string]any // the script's arguments, naming the targets

	mu      sync.Mutex
	reached []string // the listeners something reached
}

// newEscapeTargets makes the targets, beside a site's data folder, until
// the test ends.
func newEscapeTargets(t *testing.T) *escapeTargets {
	t.Helper()
	e := &escapeTargets{data: siteData(t)}
	kit := t.TempDir()
	secret := filepath.Join(kit, "site.key")
	if err := os.WriteFile(secret, []byte("the site's private key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(e.data, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "train.bin"), []byte("another job's data"), 0o600); err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := os.MkdirTemp("", "hs-") // short: a unix socket's path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	unixStream, err := net.Listen("unix", filepath.Join(sock, "stream"))
	if err != nil {
		t.Fatal(err)
	}
	unixDgram, err := net.ListenPacket("unixgram", filepath.Join(sock, "dgram"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tcp.Close()
		udp.Close()
		unixStream.Close()
		unixDgram.Close()
		os.RemoveAll(sock)
	})
	for name, l := range map[string]net.Listener{"tcp": tcp, "unix_stream": unixStream} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				e.reach(name)
				c.Close()
			}
		}()
	}
	for name, pc := range map[string]net.PacketConn{"udp": udp, "unix_dgram": unixDgram} {
		go func() {
			buf := make([]byte, 512)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				e.reach(name)
			}
		}()
	}
	e.args = map[string]any{
		"dataset":       "optdigits",
		"data_dir":      e.data,
		"secret":        secret,
		"other_dataset": other,
		"tcp_port":      tcp.Addr().(*net.TCPAddr).Port,
		"udp_port":      udp.LocalAddr().(*net.UDPAddr).Port,
		"unix_stream":   filepath.Join(sock, "stream"),
		"unix_dgram":    filepath.Join(sock, "dgram"),
	}
	return e
}

func (e *escapeTargets) reach(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reached = append(e.reached, name)
}

// seen is what reached the listeners so far, sorted.
func (e *escapeTargets) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := slices.Clone(e.reached)
	slices.Sort(out)
	return slices.Compact(out)
}

// escapeAttempts are escape.py's metrics for what must fail in the
// sandbox.
var escapeAttempts = []string{"secret_file", "host_environ", "host_cmdline", "other_dataset", "etc_shadow", "etc_passwd", "tcp", "udp", "unix_dgram", "unix_stream", "signal_host", "capabilities", "mknod"}

// rootOnly are the attempts that only root's would succeed unconfined.
var rootOnly = []string{"etc_shadow", "capabilities", "mknod"}

// TestPythonSandbox: a script that looks for the site's key, its
// environment, other data and the network finds nothing: every attempt
// of escape.py fails, and none of the listeners it aims at sees
// anything; its own dataset and working folder stay usable.
func TestPythonSandbox(t *testing.T) {
	requireTorch(t)
	e := newEscapeTargets(t)
	c := newPython(t, "escape.py", e.data, e.args, trainer.Limits{}, time.Minute)
	ctx := context.Background()
	global, err := c.Prepare(ctx)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	_, res, err := c.Train(ctx, 0, global)
	if err != nil {
		t.Fatalf("Train: %v", err)
	}
	for _, k := range escapeAttempts {
		if v, ok := res.Metrics[k]; !ok || v != 0 {
			t.Errorf("in the sandbox, %s: %v (reported %v), want it refused", k, v, ok)
		}
	}
	for _, k := range []string{"own_dataset", "work_write"} {
		if res.Metrics[k] != 1 {
			t.Errorf("in the sandbox, %s: %v, want it allowed", k, res.Metrics[k])
		}
	}
	if got := e.seen(); len(got) != 0 {
		t.Errorf("the listeners were reached from the sandbox: %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(c.WorkDir(), "scratch")); err != nil || len(b) == 0 {
		t.Errorf("the script's file in its working folder: %q, %v", b, err)
	}
}

// TestPythonSandboxUnavailable: on a kernel without Landlock (here an
// interpreter whose landlock_create_ruleset answers ENOSYS) the trainer
// fails closed, with an error naming the sandbox; with the sandbox off
// by the site's configuration it runs, unconfined, and both sides log
// that: the same escape attempts that fail in the sandbox then succeed
// and reach the listeners, which shows the attempts are real.
func TestPythonSandboxUnavailable(t *testing.T) {
	requireTorch(t)
	interp := noLandlock(t)
	ctx := context.Background()

	t.Run("on", func(t *testing.T) {
		c := newPythonWith(t, "mlp.py", siteData(t), map[string]any{"dataset": "optdigits"}, func(c *trainer.PythonConfig) { c.Interpreter = interp })
		start := time.Now()
		err := c.Start(ctx)
		if !errors.Is(err, trainer.ErrSandbox) || !strings.Contains(err.Error(), "sandbox: Landlock is not available (ENOSYS)") {
			t.Fatalf("Start without Landlock: %v, want ErrSandbox naming Landlock", err)
		}
		t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if _, err := c.Prepare(ctx); !errors.Is(err, trainer.ErrSandbox) {
			t.Errorf("Prepare without Landlock: %v, want ErrSandbox", err)
		}
	})

	t.Run("off", func(t *testing.T) {
		e := newEscapeTargets(t)
		log := &recorder{}
		c := newPythonWith(t, "escape.py", e.data, e.args, func(c *trainer.PythonConfig) {
			c.Interpreter, c.Sandbox, c.Logger = interp, trainer.SandboxOff, slog.New(log)
		})
		global, err := c.Prepare(ctx)
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		_, res, err := c.Train(ctx, 0, global)
		if err != nil {
			t.Fatalf("Train: %v", err)
		}
		for _, k := range escapeAttempts {
			if slices.Contains(rootOnly, k) && os.Geteuid() != 0 {
				continue
			}
			if res.Metrics[k] != 1 {
				t.Errorf("unconfined, %s: %v, want it to succeed (else the sandbox test proves nothing)", k, res.Metrics[k])
			}
		}
		want := []string{"tcp", "udp", "unix_dgram", "unix_stream"}
		bustest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if got := e.seen(); !slices.Equal(got, want) {
				return fmt.Errorf("the listeners saw %v, want %v", got, want)
			}
			return nil
		})
		for _, w := range []string{"trainer sandbox off by the site's configuration", "hearth-trainer: WARNING: the sandbox is off"} {
			if !log.has(slog.LevelWarn, w) && !log.has(slog.LevelInfo, w) {
				t.Errorf("no log line %q: the unconfined trainer is not labelled", w)
			}
		}
	})
}

// noLandlock is testdata/nolandlock.py made an interpreter (executable,
// not writable by others) in a temporary folder.
func noLandlock(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "nolandlock.py"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(path, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// recorder is a slog handler that keeps every record's level and
// message.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// has reports whether a record of level has a message containing text.
func (r *recorder) has(level slog.Level, text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.recs, func(rec slog.Record) bool { return rec.Level == level && strings.Contains(rec.Message, text) })
}

// filterProbe applies the sandbox's seccomp filter alone (no Landlock)
// in a fresh python3, then makes each call and prints what it answered.
const filterProbe = `
import ctypes, errno, json, os, socket, subprocess, sys, threading
sys.path.insert(0, sys.argv[1])
import hearth_sandbox
hearth_sandbox._seccomp()
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def probe(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
def raw(nr, *args):
    if libc.syscall(nr, *args) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
nrs = hearth_sandbox._ARCH[os.uname().machine]
probe("unix stream", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
probe("unix seqpacket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).close())
probe("unix socketpair", lambda: [s.close() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)])
probe("unix dgram", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
probe("unix dgram socketpair", lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
probe("unix raw", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_RAW))
probe("tcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
probe("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
probe("tcp6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
probe("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
probe("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
probe("connect", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("/nonexistent"))
probe("io_uring_setup", lambda: raw(nrs["io_uring_setup"], 8, ctypes.create_string_buffer(120)))
probe("ptrace", lambda: raw(nrs["ptrace"], 3, os.getppid(), 0, 0))
probe("process_vm_readv", lambda: raw(nrs["process_vm_readv"], os.getppid(), 0, 0, 0, 0, 0))
probe("x32 socket", lambda: raw(nrs["socket"] | 0x40000000, 2, 1, 0) if nrs["x32"] else (_ for _ in ()).throw(OSError(errno.EPERM, "")))
probe("open", lambda: open("/dev/null").close())
def fork():
    if os.fork() == 0:
        os._exit(0)
    os.wait()
def clone_process():
    # clone(SIGCHLD, no stack): a fork; the child leaves at once
    r = libc.syscall(nrs["clone"], 17, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.waitpid(r, 0)
def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
probe("fork", fork)
probe("clone process", clone_process)
probe("clone3", lambda: raw(nrs["clone3"], ctypes.create_string_buffer(88), 88))
probe("thread", thread)
probe("subprocess", lambda: subprocess.run(["/bin/true"], check=True))
probe("posix_spawn", lambda: os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0))
probe("setsid", os.setsid)
probe("setpgid", lambda: os.setpgid(0, 0))
probe("unshare", lambda: raw(nrs["unshare"], 0x10000000))
probe("execve", lambda: os.execv("/bin/true", ["true"]))
print(json.dumps(out))
`

// TestSandboxFilter: the seccomp filter refuses (EPERM) every socket but
// AF_UNIX streams and seqpackets, connect, io_uring, ptrace and
// process_vm_*, x32's calls, a new process however asked for (fork,
// clone without CLONE_THREAD, subprocess, posix_spawn), setsid, setpgid,
// unshare and execve; clone3 answers ENOSYS; threads and the rest go
// through.
func TestSandboxFilter(t *testing.T) {
	requireTorch(t) // python3 itself
	dir, _ := filepath.Abs("python")
	out, err := exec.Command(trainer.DefaultInterpreter, "-I", "-B", "-c", filterProbe, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("the probe: %v\n%s", err, out)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("the probe said %s", out)
	}
	allowed := []string{"unix stream", "unix seqpacket", "unix socketpair", "open", "thread"}
	for name, answer := range got {
		want := "EPERM"
		switch {
		case slices.Contains(allowed, name):
			want = "ok"
		case name == "clone3":
			want = "ENOSYS"
		}
		if answer != want {
			t.Errorf("%s under the filter: %s, want %s", name, answer, want)
		}
	}
	if len(got) != 27 {
		t.Errorf("%d probes answered, want 27: %v", len(got), got)
	}
}

// TestPythonCloseRemovesFolders: the folders NewPython makes for the
// sandbox to name (the working folder, the shared memory folder's base)
// are gone after Close.
func TestPythonCloseRemovesFolders(t *testing.T) {
	shm := t.TempDir()
	c, err := trainer.NewPython(pythonConfig(t, "mlp.py", t.TempDir(), map[string]any{"dataset": "optdigits"}, func(c *trainer.PythonConfig) { c.ShmDir = shm }))
	if err != nil {
		t.Fatal(err)
	}
	work := c.WorkDir()
	if st, err := os.Stat(work); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("the working folder %s: %v, %v", work, st, err)
	}
	if entries, _ := os.ReadDir(shm); len(entries) != 1 {
		t.Fatalf("the shared memory folder holds %v, want one private folder", entries)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the working folder after Close: %v", err)
	}
	if entries, _ := os.ReadDir(shm); len(entries) != 0 {
		t.Errorf("the shared memory folder holds %v after Close", entries)
	}
}

// TestPythonSandboxProcesses: a script that forks a child to outlive
// its trainer (setsid, then a marker file 2 seconds on), leaves its
// process group, runs a program, writes a file past its size limit and
// plants a file in its shared memory folder is refused each time, and no
// process of its outlives Client.Close; threads still work. Unconfined
// (the site's choice), the same attempts succeed and the child outlives
// Close, which shows they are real; the file size limit holds either way.
func TestPythonSandboxProcesses(t *testing.T) {
	requireTorch(t)
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox is Linux's")
	}
	const fileSize = 32 << 20
	ctx := context.Background()
	run := func(t *testing.T, mode trainer.SandboxMode) (work, shm string, res trainer.Result, c *trainer.Client) {
		t.Helper()
		work, shm = t.TempDir(), t.TempDir() // the site's own working folder: Close leaves it, so the marker would stay
		c = newPythonWith(t, "breakout.py", siteData(t), map[string]any{"dataset": "optdigits", "file_size": fileSize}, func(c *trainer.PythonConfig) {
			c.Sandbox, c.Setup.WorkDir, c.ShmDir = mode, work, shm
			c.Limits.FileSize, c.MaxModelBytes = fileSize, fileSize/2
		})
		global, err := c.Prepare(ctx)
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		if _, res, err = c.Train(ctx, 0, global); err != nil {
			t.Fatalf("Train: %v", err)
		}
		if got := res.Metrics["big_file_bytes"]; got != fileSize {
			t.Errorf("the big file holds %v bytes, want the limit, %d", got, fileSize)
		}
		if res.Metrics["thread"] != 1 || res.Metrics["big_file"] != 0 {
			t.Errorf("thread %v, big_file %v: want a thread started, the big file stopped at the limit", res.Metrics["thread"], res.Metrics["big_file"])
		}
		return work, shm, res, c
	}
	outlived := func(work string) error {
		if pids := processesIn(t, work); len(pids) != 0 {
			return fmt.Errorf("processes %v still run in the working folder", pids)
		}
		if _, err := os.Stat(filepath.Join(work, "outlived")); err == nil {
			return errors.New("a child wrote its marker after Close")
		}
		return nil
	}

	t.Run("on", func(t *testing.T) {
		work, shm, res, c := run(t, trainer.SandboxOn)
		for _, k := range []string{"fork", "setpgid", "setsid", "subprocess", "shm_create", "shm_base_create"} {
			if v, ok := res.Metrics[k]; !ok || v != 0 {
				t.Errorf("in the sandbox, %s: %v (reported %v), want it refused", k, v, ok)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		// Nothing may appear in the 3 seconds after Close (the child's
		// marker would at 2).
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err := outlived(work); err != nil {
				t.Fatalf("after Close: %v", err)
			}
		}
		if planted := findNamed(t, shm, "planted"); len(planted) != 0 {
			t.Errorf("files planted in the shared memory folder: %v", planted)
		}
	})

	t.Run("off", func(t *testing.T) {
		work, _, res, c := run(t, trainer.SandboxOff)
		for _, k := range []string{"fork", "setpgid", "subprocess", "shm_create", "shm_base_create"} {
			if res.Metrics[k] != 1 {
				t.Errorf("unconfined, %s: %v, want it to succeed (else the sandbox test proves nothing)", k, res.Metrics[k])
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if pids := processesIn(t, work); len(pids) == 0 {
			t.Error("unconfined, no child outlived Close")
		}
		bustest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if outlived(work) == nil {
				return errors.New("the child has not written its marker and ended yet")
			}
			_, err := os.Stat(filepath.Join(work, "outlived"))
			if pids := processesIn(t, work); err != nil || len(pids) != 0 {
				return fmt.Errorf("the marker: %v; processes %v", err, pids)
			}
			return nil
		})
	})
}

// processesIn is the ids of the processes whose working folder is dir
// (a trainer's children inherit it).
func processesIn(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// findNamed is the paths beneath root whose name is name.
func findNamed(t *testing.T, root, name string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == name {
			out = append(out, path)
		}
		return nil
	})
	return out
}
