package filter

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/policies/privacy"
)

// SiteConfig is what OpenSite needs.
type SiteConfig struct {
	// Policy is the site's parsed privacy.json; its scopes' plugin
	// entries are the filters the Site runs.
	Policy *privacy.Policy
	// KitDir is the kit's folder, against which a relative plugin path is
	// resolved.
	KitDir string
	// WorkDir is where the plugin loader stages its private copies of the
	// binaries; "" means the system's temporary folder.
	WorkDir string
	// ShmDir is where each filter makes its private shared memory folder
	// (ClientConfig.ShmDir).
	ShmDir string
	// Logger receives the site's and the plugins' logs; nil discards
	// them.
	Logger *slog.Logger
}

// Site is a site's own filters: one plugin process for each plugin entry
// of its privacy policy's scopes (an entry is a scope, a direction and a
// place in that list, so two entries naming one binary run two processes,
// each with its own arguments), started when the site opens and stopped
// when it closes. Jobs in the same scope share the scope's processes. It
// implements privacy.PluginFilters, so privacy.Build makes a chain's
// plugin links into its Clients. It is safe for concurrent use.
type Site struct {
	entries map[entryKey]*entry
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
}

var _ privacy.PluginFilters = (*Site)(nil)

// entryKey is a plugin entry's place in the policy.
type entryKey struct {
	scope     string
	direction string
	index     int
}

// entry is one plugin entry: its spec, and its client or why there is
// none.
type entry struct {
	spec   privacy.PluginFilter
	client *Client
	err    error // the binary refused (its hash, its file): for the site's whole life
}

// OpenSite loads every plugin entry of the policy's scopes (each binary's
// hash checked, see plugins.Load), starts and configures each. It fails
// only on a config it cannot use; a plugin that is refused (its hash
// differs from its pin, its file is missing or not executable) or does
// not start still yields a Site, whose Filter refuses that entry, so that
// every job in its scope is refused with the reason: the site starts and
// says why (Problems), and nothing runs unfiltered. A plugin that was
// loaded but did not start is started again by the next Apply (with
// backoff).
func OpenSite(ctx context.Context, cfg SiteConfig) (*Site, error) {
	if cfg.Policy == nil {
		return nil, errors.New("filter: site: no privacy policy")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Site{entries: map[entryKey]*entry{}, log: log}
	for _, name := range cfg.Policy.ScopeNames() {
		scope, err := cfg.Policy.Scope(name)
		if err != nil {
			s.Close()
			return nil, err
		}
		for _, list := range [][]privacy.FilterSpec{scope.DataFilters(), scope.ResultFilters()} {
			for i, f := range list {
				if f.Plugin == nil {
					continue
				}
				key := entryKey{scope: name, direction: f.Plugin.Direction, index: i}
				s.entries[key] = s.open(ctx, cfg, key, *f.Plugin)
			}
		}
	}
	return s, nil
}

// open loads and starts one entry.
func (s *Site) open(ctx context.Context, cfg SiteConfig, key entryKey, spec privacy.PluginFilter) *entry {
	e := &entry{spec: spec}
	log := s.log.With("scope", key.scope, "direction", key.direction, "index", key.index)
	dir := DirectionOut
	if spec.Direction == privacy.DirectionIn {
		dir = DirectionIn
	}
	path := spec.Path
	if !filepath.IsAbs(path) {
		if cfg.KitDir == "" {
			e.err = fmt.Errorf("filter: plugin path %q is relative and the site has no kit folder", plugins.Clip(path, 256))
			return e
		}
		path = filepath.Join(cfg.KitDir, path)
	}
	pin := plugins.Pin{Path: filepath.Clean(path), SHA256: spec.SHA256}
	c, err := NewClient(ClientConfig{Pin: pin, Args: spec.Args, Direction: dir, Params: spec.Params(), Timeout: spec.Timeout,
		WorkDir: cfg.WorkDir, ShmDir: cfg.ShmDir, Logger: log})
	if err != nil {
		e.err = err
		log.Error("privacy filter plugin refused; every job in its scope will be refused", "err", err)
		return e
	}
	e.client = c
	if err := c.Start(ctx); err != nil {
		log.Error("privacy filter plugin did not start; its next use will retry it", "err", err)
	}
	return e
}

// Filter is the running filter of a chain's plugin link: the Client of
// the policy's entry at the link's place, or why there is none. A link
// that is not one of the policy's plugin entries (another scope, another
// binary or arguments) is refused.
func (s *Site) Filter(l privacy.Link) (learnfilter.Filter, error) {
	if l.Plugin == nil || l.Origin != privacy.OriginSite {
		return nil, errors.New("filter: not a plugin filter of the site's scope")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("filter: the site's plugin filters are closed")
	}
	e, ok := s.entries[entryKey{scope: l.Scope, direction: l.Plugin.Direction, index: l.Index}]
	if !ok || e.spec.SHA256 != l.Plugin.SHA256 || e.spec.Path != l.Plugin.Path || !bytes.Equal(e.spec.Args, l.Plugin.Args) || e.spec.Timeout != l.Plugin.Timeout {
		return nil, fmt.Errorf("filter: %s is not a plugin entry of the site's privacy policy", l)
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.client, nil
}

// Problems are the entries whose plugins were refused when the site
// opened, each naming its place, for the site's audit.
func (s *Site) Problems() []error {
	keys := slices.SortedFunc(maps.Keys(s.entries), func(a, b entryKey) int {
		return cmp.Or(cmp.Compare(a.scope, b.scope), cmp.Compare(a.direction, b.direction), cmp.Compare(a.index, b.index))
	})
	var errs []error
	for _, k := range keys {
		if e := s.entries[k]; e.err != nil {
			errs = append(errs, fmt.Errorf("scope %q %s filter %d: %w", k.scope, k.direction, k.index, e.err))
		}
	}
	return errs
}

// Close stops every plugin and removes its staged copy and shared
// memory; Filter refuses after it.
func (s *Site) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, e := range s.entries {
		if e.client != nil {
			errs = append(errs, e.client.Close())
		}
	}
	return errors.Join(errs...)
}
