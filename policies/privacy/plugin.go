package privacy

import (
	"bytes"
	"encoding/hex"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/hearthfl/hearth/actors/learning/filter"
)

// NamePlugin is the name a site's own filter, a plugin binary, has in a
// chain (FilterSpec.Name, the audit's "filter"); no built-in filter has it.
const NamePlugin = "plugin"

// The bounds of a plugin filter's call deadline, its default, and the
// size of its arguments.
const (
	DefaultPluginTimeout = 60 * time.Second
	MinPluginTimeout     = 100 * time.Millisecond
	MaxPluginTimeout     = 30 * time.Minute
	MaxPluginArgs        = 64 << 10 // bytes of the args object, as compact JSON
	maxPluginPath        = 4096
)

// The directions a scope's lists apply in, as FLARE names them.
const (
	DirectionIn  = "in"  // task_data_filters: the global model entering the site
	DirectionOut = "out" // task_result_filters: the site's update leaving it
)

// PluginFilter is a site's own filter: a plugin binary that the site's
// privacy.json pins by its SHA-256, run by plugins/filter. Only a site's
// policy names one; a job never can (ParseFilters and Chain refuse it).
type PluginFilter struct {
	// Path is the binary's path as written; a relative path is relative
	// to the site's kit folder (plugins/filter resolves it).
	Path string
	// SHA256 is the binary's pinned hash.
	SHA256 [32]byte
	// Timeout is the deadline of each call to the plugin.
	Timeout time.Duration
	// Args is the entry's "args" object, as compact JSON, handed to the
	// plugin's Configure; {} when the entry has none.
	Args []byte
	// Direction is the direction of the list the entry is in:
	// DirectionIn or DirectionOut.
	Direction string
}

// Params are the plugin filter's parameters as text, for the audit: the
// binary's path and hash, the deadline and the arguments.
func (p *PluginFilter) Params() map[string]string {
	return map[string]string{
		"plugin.path":   p.Path,
		"plugin.sha256": hex.EncodeToString(p.SHA256[:]),
		"timeout":       p.Timeout.String(),
		"args":          string(p.Args),
	}
}

// Clone is a deep copy of p.
func (p *PluginFilter) Clone() *PluginFilter {
	c := *p
	c.Args = slices.Clone(p.Args)
	return &c
}

// parsePlugin reads a site filter entry's "plugin" object, {"path": P,
// "sha256": H}, both required.
func parsePlugin(path string, v any, spec *FilterSpec) error {
	o, ok := v.(*object)
	if !ok {
		return fail(path, `want {"path": "<binary>", "sha256": "<64 hex digits>"}, got %s`, kindOf(v))
	}
	var sawPath, sawSum bool
	for _, m := range o.members {
		mpath := field(path, m.key)
		s, isStr := m.value.(string)
		switch {
		case m.key != "path" && m.key != "sha256":
			return fail(mpath, "unknown key in a plugin (want path and sha256)")
		case !isStr:
			return fail(mpath, "want a string, got %s", kindOf(m.value))
		case m.key == "path":
			if s == "" || len(s) > maxPluginPath || !utf8.ValidString(s) || bytes.ContainsAny([]byte(s), "\x00\n\r") {
				return fail(mpath, "want the binary's path: 1 to %d bytes, no NUL or line break", maxPluginPath)
			}
			spec.Plugin.Path, sawPath = s, true
		default:
			raw, err := hex.DecodeString(s)
			if err != nil || len(raw) != 32 {
				return fail(mpath, "want the binary's SHA-256 as 64 hex digits (sha256sum prints it)")
			}
			copy(spec.Plugin.SHA256[:], raw)
			sawSum = true
		}
	}
	if !sawPath || !sawSum {
		return fail(path, `want both path and sha256: {"path": "<binary>", "sha256": "<64 hex digits>"}`)
	}
	return nil
}

// parseTimeout reads a plugin filter's "timeout", a Go duration.
func parseTimeout(path string, v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fail(path, `want a duration such as "60s", got %s`, kindOf(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinPluginTimeout || d > MaxPluginTimeout {
		return 0, fail(path, "%q is not a duration from %v to %v", bounded(s), MinPluginTimeout, MaxPluginTimeout)
	}
	return d, nil
}

// pluginArgs is a plugin filter's args object as compact JSON.
func pluginArgs(path string, args *object) ([]byte, error) {
	if args == nil {
		return []byte("{}"), nil
	}
	var b bytes.Buffer
	encode(&b, args)
	if b.Len() > MaxPluginArgs {
		return nil, fail(path, "%d bytes of arguments, at most %d", b.Len(), MaxPluginArgs)
	}
	return b.Bytes(), nil
}

// errJobPlugin is why a job's filter list may not name a plugin.
const errJobPlugin = "a job cannot load a plugin binary: only the site's own privacy.json may name one"

// checkPluginOnly refuses a "timeout" given to a built-in filter.
func checkPluginOnly(path string, spec FilterSpec, sawTimeout bool) error {
	if spec.Plugin == nil && sawTimeout {
		return fail(field(path, "timeout"), "only a plugin filter takes a timeout")
	}
	return nil
}

// String of a plugin spec: e.g. `plugin{args={"max_abs":0.5}
// plugin.path=/opt/f plugin.sha256=... timeout=1m0s}`.
func (p *PluginFilter) String() string {
	return NamePlugin + "{" + filter.ParamsString(p.Params()) + "}"
}
