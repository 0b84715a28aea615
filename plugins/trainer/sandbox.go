package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hearthfl/hearth/plugins"
)

// SandboxMode says whether a PyTorch trainer's process is confined (see
// the package doc, "The sandbox").
type SandboxMode int

const (
	// SandboxOn, the default: the launcher confines its process before
	// it imports the job's script, and where it cannot (a kernel without
	// Landlock, say) it runs no script: the start fails with ErrSandbox.
	SandboxOn SandboxMode = iota
	// SandboxOff is a site's explicit choice to run job code unconfined
	// (the site's user's files, the network), for a kernel without
	// Landlock. The host logs a warning when it builds the trainer, the
	// launcher at every start.
	SandboxOff
)

func (m SandboxMode) String() string {
	switch m {
	case SandboxOn:
		return "on"
	case SandboxOff:
		return "off"
	}
	return fmt.Sprintf("sandbox mode %d", int(m))
}

// ErrSandbox is a PyTorch trainer that could not confine its process
// and so ran nothing of the job's; the error goes on with the launcher's
// reason.
var ErrSandbox = errors.New("trainer sandbox could not be applied")

// sandboxRefusal begins the one line a launcher that cannot confine
// itself writes in place of the handshake (python/hearth_trainer.py):
// only the harness writes to the handshake stream, the job's script is
// not imported yet.
const sandboxRefusal = "hearth-trainer: sandbox: "

// sandboxRule is one path the sandbox allows, as the launcher's
// hearth_sandbox.py reads it. Access is rx (read and execute beneath),
// r (read beneath, or the file), rw (read and write the file: a device),
// rwe (read and write the files that exist beneath, list the folders:
// nothing made, removed or truncated) or rwc (read, write, create and
// remove beneath; no executing, no device, socket or fifo files).
type sandboxRule struct {
	Path     string `json:"path"`
	Access   string `json:"access"`
	Optional bool   `json:"optional,omitempty"` // may be missing: then nothing is allowed
}

// sandboxPolicy is the sandbox part of a launcher's configuration.
type sandboxPolicy struct {
	On    bool          `json:"on"`
	Rules []sandboxRule `json:"rules,omitempty"`
}

// systemRules are what Python, torch and grpc read once imported (their
// libraries and modules load lazily): the system folders, the loader's
// cache, and the few device, proc and sys files they open. Nothing else
// under /etc, /proc or /sys.
var systemRules = []sandboxRule{
	{Path: "/usr", Access: "rx"},
	{Path: "/lib", Access: "rx", Optional: true},
	{Path: "/lib64", Access: "rx", Optional: true},
	{Path: "/etc/ld.so.cache", Access: "r", Optional: true},
	{Path: "/dev/null", Access: "rw"},
	{Path: "/dev/urandom", Access: "r"},
	{Path: "/proc/self", Access: "r"}, // the process's own: /proc/<pid>, its threads' folders beneath
	{Path: "/sys/devices/system/cpu", Access: "r", Optional: true},
}

// datasetName is a dataset's name as the harness accepts it in
// args.dataset (python/hearth_trainer.py).
var datasetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// pythonSandbox is the sandbox of a PyTorch trainer: the system rules,
// the interpreter's own prefix when it is not under /usr, the job's
// dataset folder <DataDir>/<args.dataset> (read; only that one, not the
// data folder), the working folder (read, write, create) and the shared
// memory folder (read and write the files the host made there, nothing
// created: the harness only maps them). The launcher adds its own file. Arguments that name no valid dataset allow
// no data: the harness refuses them at Configure.
func pythonSandbox(mode SandboxMode, interp string, s Setup, work, shm string) (sandboxPolicy, error) {
	switch mode {
	case SandboxOff:
		return sandboxPolicy{On: false}, nil
	case SandboxOn:
	default:
		return sandboxPolicy{}, fmt.Errorf("a sandbox mode of %d", int(mode))
	}
	for _, d := range []string{work, shm} {
		if !filepath.IsAbs(d) {
			return sandboxPolicy{}, fmt.Errorf("sandbox: folder %q is not absolute", d)
		}
	}
	rules := append([]sandboxRule(nil), systemRules...)
	if prefix := interpreterPrefix(interp); prefix != "/usr" && !strings.HasPrefix(prefix, "/usr/") {
		rules = append(rules, sandboxRule{Path: prefix, Access: "rx"})
	}
	var args struct {
		Dataset string `json:"dataset"`
	}
	if json.Unmarshal(s.Args, &args) == nil && datasetName.MatchString(args.Dataset) && filepath.IsAbs(s.DataDir) {
		rules = append(rules, sandboxRule{Path: filepath.Join(s.DataDir, args.Dataset), Access: "r", Optional: true})
	}
	rules = append(rules, sandboxRule{Path: work, Access: "rwc"}, sandboxRule{Path: shm, Access: "rwe"})
	return sandboxPolicy{On: true, Rules: rules}, nil
}

// interpreterPrefix is where an interpreter's installation lies: the
// folder above its bin folder (/usr for /usr/bin/python3), else its own
// folder.
func interpreterPrefix(interp string) string {
	dir := filepath.Dir(filepath.Clean(interp))
	if filepath.Base(dir) == "bin" {
		return filepath.Dir(dir)
	}
	return dir
}

// sandboxError is err, from starting a PyTorch trainer, marked
// ErrSandbox when the launcher refused to run unconfined.
func sandboxError(err error) error {
	if err != nil && (errors.Is(err, plugins.ErrStart) || errors.Is(err, plugins.ErrRestarting)) && strings.Contains(err.Error(), sandboxRefusal) {
		return fmt.Errorf("%w: %w", ErrSandbox, err)
	}
	return err
}
