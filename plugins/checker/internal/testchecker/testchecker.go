// Package testchecker is the checker the checker plugin tests run, in
// process and as a real plugin binary (cmd/hearth-checker-test). What it
// does is chosen by the configuration its Configure is handed (Config):
// answer a fixed decision (one the host must refuse included: a refusal
// without a reason, a reason too long or holding control characters),
// echo what it was asked, answer an error, crash, hang, crash once (so
// that the next process, started again by the host, answers), or refuse
// its configuration.
// It is test code: no Hearth binary links it.
package testchecker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hearthfl/hearth/plugins/checker"
)

// Config is the test checker's configuration.
type Config struct {
	// Allowed and Reason are the decision every Check answers; Reason is
	// repeated Repeat times (when Repeat > 1).
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	Repeat  int    `json:"repeat"`
	// Echo answers an allowed decision whose reason describes the job it
	// was asked about (Describe).
	Echo bool `json:"echo"`
	// Error makes Check answer this error.
	Error string `json:"error"`
	// Crash exits the process (status 3) in every Check; Hang blocks
	// every Check forever.
	Crash bool `json:"crash"`
	Hang  bool `json:"hang"`
	// CrashOnce, when set, is a marker file: the first Check that finds
	// it absent creates it and exits the process (status 3).
	CrashOnce string `json:"crash_once"`
	// Refuse makes Configure fail with this text.
	Refuse string `json:"refuse"`
}

// Checker is the test checker; the zero value is unconfigured.
type Checker struct {
	mu  sync.Mutex
	cfg *Config
}

var _ checker.Checker = (*Checker)(nil)

// Configure takes a JSON Config.
func (c *Checker) Configure(_ context.Context, config []byte) error {
	var cfg Config
	if err := json.Unmarshal(config, &cfg); err != nil {
		return fmt.Errorf("testchecker: config: %w", err)
	}
	if cfg.Refuse != "" {
		return errors.New(cfg.Refuse)
	}
	c.mu.Lock()
	c.cfg = &cfg
	c.mu.Unlock()
	return nil
}

// Check answers as the configuration says.
func (c *Checker) Check(ctx context.Context, j checker.Job) (checker.Decision, error) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	switch {
	case cfg == nil:
		return checker.Decision{}, errors.New("testchecker: not configured")
	case cfg.Crash || first(cfg.CrashOnce):
		os.Exit(3)
	case cfg.Hang:
		select {}
	case cfg.Error != "":
		return checker.Decision{}, errors.New(cfg.Error)
	case cfg.Echo:
		return checker.Decision{Allowed: true, Reason: Describe(j)}, nil
	}
	reason := cfg.Reason
	if cfg.Repeat > 1 {
		reason = strings.Repeat(reason, cfg.Repeat)
	}
	return checker.Decision{Allowed: cfg.Allowed, Reason: reason}, nil
}

// Describe is a line naming every field of j, the bytes by a short hash:
// what the echo answers, so that a test sees the job cross the wire.
func Describe(j checker.Job) string {
	short := func(b []byte) string {
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:6])
	}
	var code []string
	for _, f := range j.Code {
		code = append(code, f.Name+"="+short(f.Data))
	}
	return fmt.Sprintf("site=%s job=%s submitter=%s/%s/%s workflow=%s trainer=%s manifest=%s code=[%s]",
		j.Site, j.JobID, j.Submitter, j.SubmitterOrg, j.SubmitterRole, j.Workflow, j.Trainer, short(j.Manifest), strings.Join(code, " "))
}

// first reports whether marker is set and absent, creating it: true once
// per marker file.
func first(marker string) bool {
	if marker == "" {
		return false
	}
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Main serves the test checker as a plugin. When startMarker is set (the
// tests set it at link time), it first appends a line to that file: the
// proof that the binary was executed.
func Main(startMarker string) {
	if startMarker != "" {
		f, err := os.OpenFile(startMarker, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			fmt.Fprintf(f, "started %d\n", os.Getpid())
			f.Close()
		}
	}
	checker.Serve(&Checker{})
}
