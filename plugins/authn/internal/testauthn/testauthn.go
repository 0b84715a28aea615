// Package testauthn is the authenticator the plugin tests run, in
// process and as a real plugin binary (cmd/hearth-authn-test). What it
// does is chosen by the configuration its Configure is handed (Config):
// answer from a table of users, crash or hang in the first Authenticate
// after a marker file is written (so that the next process, started
// again by the host, answers), hang in every call, report its
// environment, write lines to its stderr, start a child that holds its
// stderr open, or refuse its configuration.
// It is test code: no Hearth binary links it.
package testauthn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hearthfl/hearth/plugins/authn"
)

// User is one row of the table: the password that authenticates the
// user, and what a decision then carries.
type User struct {
	Password string   `json:"password"`
	Subject  string   `json:"subject"`
	Groups   []string `json:"groups"`
	Role     string   `json:"role"`
}

// Config is the test authenticator's configuration (its part of a site
// policy).
type Config struct {
	// Users is the table, by user name.
	Users map[string]User `json:"users"`
	// CrashOnce, when set, is a marker file: the first Authenticate that
	// finds it absent creates it and exits the process (status 3).
	CrashOnce string `json:"crash_once"`
	// HangOnce, when set, is a marker file: the first Authenticate that
	// finds it absent creates it and blocks forever.
	HangOnce string `json:"hang_once"`
	// Hang blocks every Authenticate forever.
	Hang bool `json:"hang"`
	// ReportEnv answers every Authenticate with an authenticated
	// decision whose groups are the process's environment variables
	// (NAME=value, the value cut to 64 bytes).
	ReportEnv bool `json:"report_env"`
	// StderrLines, StderrLineSize: Configure writes that many lines of
	// that many bytes ('x') to stderr.
	StderrLines    int `json:"stderr_lines"`
	StderrLineSize int `json:"stderr_line_size"`
	// Refuse makes Configure fail with this text.
	Refuse string `json:"refuse"`
	// ChildPIDFile, when set, makes Configure start a child process
	// (/bin/sleep) that keeps the plugin's stderr open, and write its pid
	// to this file.
	ChildPIDFile string `json:"child_pid_file"`
}

// Authenticator is the test authenticator. The zero value is
// unconfigured.
type Authenticator struct {
	mu  sync.Mutex
	cfg *Config
}

var _ authn.Authenticator = (*Authenticator)(nil)

// Configure takes a JSON Config.
func (a *Authenticator) Configure(_ context.Context, config []byte) error {
	var c Config
	if err := json.Unmarshal(config, &c); err != nil {
		return fmt.Errorf("testauthn: config: %w", err)
	}
	if c.Refuse != "" {
		return errors.New(c.Refuse)
	}
	if c.ChildPIDFile != "" {
		child := exec.Command("/bin/sleep", "300")
		child.Stderr = os.NewFile(2, "stderr") // the process's own, not go-plugin's stdio pipe
		if err := child.Start(); err != nil {
			return fmt.Errorf("testauthn: child: %w", err)
		}
		if err := os.WriteFile(c.ChildPIDFile, []byte(strconv.Itoa(child.Process.Pid)), 0o600); err != nil {
			return fmt.Errorf("testauthn: child: %w", err)
		}
	}
	line := strings.Repeat("x", max(c.StderrLineSize, 1))
	for i := range c.StderrLines {
		fmt.Fprintf(os.Stderr, "%d %s\n", i, line)
	}
	a.mu.Lock()
	a.cfg = &c
	a.mu.Unlock()
	return nil
}

// Authenticate decides r as the configuration says.
func (a *Authenticator) Authenticate(_ context.Context, r authn.Request) (authn.Decision, error) {
	a.mu.Lock()
	c := a.cfg
	a.mu.Unlock()
	if c == nil {
		return authn.Decision{}, errors.New("testauthn: not configured")
	}
	if first(c.CrashOnce) {
		os.Exit(3)
	}
	if c.Hang || first(c.HangOnce) {
		select {}
	}
	if c.ReportEnv {
		var env []string
		for _, kv := range os.Environ() {
			if len(kv) > 64 {
				kv = kv[:64]
			}
			env = append(env, kv)
		}
		slices.Sort(env)
		return authn.Decision{Authenticated: true, Subject: "env", Groups: env, Role: "env", Reason: "the environment"}, nil
	}
	if r.Credential == nil || r.Credential.Kind != authn.CredentialPassword {
		return authn.Decision{Reason: "no password"}, nil
	}
	u, ok := c.Users[r.Credential.User]
	if !ok || u.Password != r.Credential.Secret {
		return authn.Decision{Reason: "wrong user name or password"}, nil
	}
	return authn.Decision{Authenticated: true, Subject: u.Subject, Groups: u.Groups, Role: u.Role, Reason: "password"}, nil
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

// Main serves the test authenticator as a plugin. When startMarker is
// set (the tests set it at link time), it first appends a line to that
// file: the proof that the binary was executed.
func Main(startMarker string) {
	if startMarker != "" {
		f, err := os.OpenFile(startMarker, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			fmt.Fprintf(f, "started %d\n", os.Getpid())
			f.Close()
		}
	}
	authn.Serve(&Authenticator{})
}
