package kit

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/hearthfl/hearth/bus/pki"
)

// Config is kit.json: who the kit's holder is and how it reaches the hub.
// It is covered by the signed manifest, so a participant cannot change its
// own identity or the hub it dials without the kit failing to load.
type Config struct {
	Project string       `json:"project"`
	Name    string       `json:"name"`
	Org     string       `json:"org"`
	Kind    pki.Kind     `json:"kind"`
	Role    pki.Role     `json:"role,omitempty"`
	Server  ServerConfig `json:"server"`         // the hub every participant dials
	Leaf    *LeafConfig  `json:"leaf,omitempty"` // sites and aggregators only
	// Limits bound what one submitter may hold on the server (server kit
	// only; nil: the defaults).
	Limits *Limits `json:"limits,omitempty"`
}

// Limits are the project's bounds on what one admin may hold on the
// server; zero fields take the server's defaults.
type Limits struct {
	JobsPerSubmitter        int `json:"jobs_per_submitter,omitempty" yaml:"jobs_per_submitter,omitempty"`
	CheckpointsPerSubmitter int `json:"checkpoints_per_submitter,omitempty" yaml:"checkpoints_per_submitter,omitempty"`
	// CheckpointRetentionDays is how long an ended job's final model is
	// kept; -1 keeps it for ever.
	CheckpointRetentionDays int `json:"checkpoint_retention_days,omitempty" yaml:"checkpoint_retention_days,omitempty"`
}

// Validate checks the limits' ranges, naming each field.
func (l Limits) Validate() error {
	var errs []error
	if l.JobsPerSubmitter < 0 || l.JobsPerSubmitter > 10000 {
		errs = append(errs, fmt.Errorf("limits.jobs_per_submitter: %d is not in 0..10000", l.JobsPerSubmitter))
	}
	if l.CheckpointsPerSubmitter < 0 || l.CheckpointsPerSubmitter > 100000 {
		errs = append(errs, fmt.Errorf("limits.checkpoints_per_submitter: %d is not in 0..100000", l.CheckpointsPerSubmitter))
	}
	if l.CheckpointRetentionDays < -1 || l.CheckpointRetentionDays > 36500 {
		errs = append(errs, fmt.Errorf("limits.checkpoint_retention_days: %d is not in -1..36500", l.CheckpointRetentionDays))
	}
	return errors.Join(errs...)
}

// ServerConfig says where the hub listens. Every kit of a project carries
// the same one.
type ServerConfig struct {
	Name          string   `json:"name"`                     // the server participant's name
	Hosts         []string `json:"hosts"`                    // DNS names / IPs in the server cert SANs; Hosts[0] is dialed
	LeafPort      int      `json:"leaf_port"`                // mTLS leafnode listener
	ClientPort    int      `json:"client_port"`              // mTLS client listener for admin consoles
	WebsocketPort int      `json:"websocket_port,omitempty"` // wss leaf listener; 0 = off
}

// LeafConfig is how a site or aggregator runs its leaf node.
type LeafConfig struct {
	LocalPort int    `json:"local_port"`          // the site's loopback listener for site-local processes; 0 = pick a free one at start
	Websocket bool   `json:"websocket,omitempty"` // dial the hub over wss instead of tls
	Proxy     string `json:"proxy,omitempty"`     // HTTP CONNECT proxy URL, e.g. http://127.0.0.1:3128
	// DataDir is where the site's local data lives (a path relative to the
	// kit folder, or absolute): DataDir/<dataset>/{train,val,test}.bin.
	// Nothing but the site's own process ever reads it.
	DataDir string `json:"data_dir,omitempty"`
}

// Identity is the participant identity the kit's certificate must carry.
func (c Config) Identity() pki.Identity {
	return pki.Identity{Name: c.Name, Org: c.Org, Kind: c.Kind, Role: c.Role}
}

// Validate checks every field. Problems are joined (errors.Join), each
// prefixed with its JSON field path, e.g. "server.leaf_port: ...".
func (c Config) Validate() error {
	var errs []error
	if err := pki.ValidName(c.Project); err != nil {
		errs = append(errs, fmt.Errorf("project: %w", err))
	}
	if err := c.Identity().Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, Prefixed("server.", c.Server.Validate())...)
	if c.Kind == pki.KindServer && c.Name != c.Server.Name {
		errs = append(errs, fmt.Errorf("name: server kit %q but server.name is %q", c.Name, c.Server.Name))
	}
	switch {
	case c.Kind == pki.KindSite || c.Kind == pki.KindAggregator:
		if c.Leaf == nil {
			errs = append(errs, fmt.Errorf("leaf: required for a %s", c.Kind))
		} else {
			errs = append(errs, Prefixed("leaf.", c.Leaf.Validate(c.Server))...)
		}
	case c.Leaf != nil:
		errs = append(errs, fmt.Errorf("leaf: only sites and aggregators run a leaf node, not a %s", c.Kind))
	}
	switch {
	case c.Limits != nil && c.Kind != pki.KindServer:
		errs = append(errs, fmt.Errorf("limits: only the server's kit has them, not a %s's", c.Kind))
	case c.Limits != nil:
		if err := c.Limits.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Validate checks the hub's address: a valid server name, at least one
// host, each a DNS name or IP address and none repeated, and ports in
// 1..65535 (websocket_port 0 = off) that differ from each other. Problems
// are joined, each prefixed with its field name, e.g. "hosts[1]: ...".
func (s ServerConfig) Validate() error {
	var errs []error
	if err := pki.ValidName(s.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if len(s.Hosts) == 0 {
		errs = append(errs, errors.New("hosts: at least one DNS name or IP address is required"))
	}
	seen := map[string]int{}
	for i, h := range s.Hosts {
		if err := validHost(h); err != nil {
			errs = append(errs, fmt.Errorf("hosts[%d]: %w", i, err))
		} else if j, dup := seen[h]; dup {
			errs = append(errs, fmt.Errorf("hosts[%d]: %q repeats hosts[%d]", i, h, j))
		}
		seen[h] = i
	}
	ports := []struct {
		field    string
		port     int
		optional bool
	}{{"leaf_port", s.LeafPort, false}, {"client_port", s.ClientPort, false}, {"websocket_port", s.WebsocketPort, true}}
	used := map[int]string{}
	for _, p := range ports {
		if p.optional && p.port == 0 {
			continue
		}
		if err := validPort(p.port); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.field, err))
			continue
		}
		if other, dup := used[p.port]; dup {
			errs = append(errs, fmt.Errorf("%s: port %d is already %s", p.field, p.port, other))
			continue
		}
		used[p.port] = p.field
	}
	return errors.Join(errs...)
}

// Validate checks a leaf's settings against the server it dials: local_port
// in 0..65535, websocket only where the server has a websocket_port, and a
// proxy, when set, that is an http:// or https:// URL with a host.
func (l LeafConfig) Validate(server ServerConfig) error {
	var errs []error
	if l.LocalPort != 0 {
		if err := validPort(l.LocalPort); err != nil {
			errs = append(errs, fmt.Errorf("local_port: %w", err))
		}
	}
	if l.Websocket && server.WebsocketPort == 0 {
		errs = append(errs, errors.New("websocket: the server has no websocket_port"))
	}
	if l.Proxy != "" {
		u, err := url.Parse(l.Proxy)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("proxy: %w", err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, fmt.Errorf("proxy: %q is not an HTTP CONNECT proxy URL like http://127.0.0.1:3128", l.Proxy))
		}
	}
	if strings.ContainsRune(l.DataDir, 0) {
		errs = append(errs, errors.New("data_dir: contains a NUL byte"))
	}
	return errors.Join(errs...)
}

// LeafURLs are the hub's leafnode URLs, one per server host in order:
// "tls://host:leaf_port", or "wss://host:websocket_port" when the kit's
// leaf dials over websocket.
func (c Config) LeafURLs() []string {
	if c.Leaf != nil && c.Leaf.Websocket {
		return urls("wss", c.Server.Hosts, c.Server.WebsocketPort)
	}
	return urls("tls", c.Server.Hosts, c.Server.LeafPort)
}

// ClientURLs are the hub's client URLs for admin consoles:
// "tls://host:client_port" for each server host.
func (c Config) ClientURLs() []string { return urls("tls", c.Server.Hosts, c.Server.ClientPort) }

func urls(scheme string, hosts []string, port int) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, scheme+"://"+net.JoinHostPort(h, strconv.Itoa(port)))
	}
	return out
}

// Prefixed returns the problems in err (one, or each of an errors.Join)
// with prefix put in front of each message, so that a nested Validate's
// field names become paths: Prefixed("server.", err) turns "leaf_port: ..."
// into "server.leaf_port: ...". Each result wraps its original error.
func Prefixed(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		out = append(out, fmt.Errorf("%s%w", prefix, e))
	}
	return out
}

// hostPattern is a DNS name: dot-separated labels of letters, digits and
// inner hyphens.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func validHost(h string) error {
	if net.ParseIP(h) != nil || (len(h) <= 253 && hostPattern.MatchString(h)) {
		return nil
	}
	return fmt.Errorf("%q is not a DNS name or IP address", h)
}

func validPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%d is not a port (want 1-65535)", p)
	}
	return nil
}
