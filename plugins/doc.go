// Package plugins is Hearth's one plugin loader: it runs a site's plugin
// binaries (authenticators, privacy filters, ...) as hashicorp/go-plugin
// subprocesses under the same controls for every plugin kind. Each kind is
// a package below this one (plugins/authn, ...), split by role as Nomad
// splits its plugins: the Go interface with plain Go types, the go-plugin
// glue (plugin.go), the host side (client.go), the plugin side (server.go,
// whose Serve makes a plugin's main one line) and the conversions to the
// wire types (convert.go), whose contract is under schemas/hearth/plugin.
//
// # What Load guarantees
//
// A Pin names the binary and the SHA-256 the site's own policy (in its
// kit's local/ folder) pins for it. Before anything runs, Load refuses a
// path that is not a regular file or carries no execute bit, bounds its
// size (Config.MaxSize), and closes the race between checking a binary and
// executing it: the binary is copied into a private folder (mode 0700,
// made by Load under Config.WorkDir), hashed while it is copied, and only
// that copy, made read-only (0500), is ever executed. A binary whose hash
// differs from the pin is never executed: Load fails with ErrChecksum.
// go-plugin's SecureConfig checks the copy's hash once more before each
// start.
//
// Every start uses go-plugin with: gRPC as the only protocol; AutoMTLS
// (a fresh certificate pair per start: only this host can talk to the
// plugin, and the host talks only to the process it started); SkipHostEnv, so no variable of the
// host's environment reaches the plugin (it sees only go-plugin's own
// handshake variables); a handshake per kind (a convenience that catches
// a binary of the wrong kind, not a security control); the plugin's
// stderr and stdio routed to the injected slog logger, each line bounded
// in length and the lines rate limited. On Unix the plugin runs in its
// own process group, which is killed as a whole.
//
// # Supervision, and failing closed
//
// A Process is one supervised plugin. Process.Call runs one call with a
// deadline (Config.Timeout). A plugin that exits (crashes) is restarted by
// the next call; after consecutive failures the restarts back off
// exponentially (Config.Backoff), and calls during a backoff fail at once
// with ErrRestarting. A call past its deadline fails with ErrDeadline and
// the hung plugin is killed, to be restarted by the next call. Config.Init
// runs after each start (an authenticator's Configure), so a restarted
// plugin is configured again before it answers. Every failure of the
// plugin (as opposed to an error it answered) is an *Error wrapping one of
// the Err* sentinels; the kinds answer both as "could not decide", which a
// site denies on, with the error as the reason.
//
// The pin proves which code runs, not what it may do: the plugin runs as
// the host's user (the private copy defends against others who can write
// the pinned path, not against the plugin itself), and go-plugin hands it
// the host's standard input.
// Close kills the plugin and removes the private folder; no goroutine of
// a Process outlives it.
package plugins
