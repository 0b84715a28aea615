package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/checker"
	"github.com/hearthfl/hearth/plugins/trainer"
	"github.com/hearthfl/hearth/policies/components"
)

// codeRunner is how the site runs a job's own trainer: a PyTorch script
// under the limits of its components.json (job_code), staged in the
// site's state folder. A kit whose allow-list lets no job trainer in runs
// none.
func codeRunner(allowed *components.AllowList, state string, log *slog.Logger) participant.StartCode {
	if allowed == nil {
		return nil // a kit from before components.json: no job code
	}
	l := allowed.JobCode
	limits := trainer.Limits{}
	if l != nil {
		limits = trainer.Limits{Memory: l.MemoryMiB << 20, CPUTime: time.Duration(l.CPUSeconds) * time.Second, OpenFiles: l.OpenFiles, Threads: l.Threads}
	}
	sandbox := trainer.SandboxOn
	if !l.Sandboxed() { // the site's explicit choice, labelled in its log and in policy lint
		sandbox = trainer.SandboxOff
	}
	timeout := l.Timeout()
	stage := filepath.Join(state, "job-code")
	// What a site killed mid-job left: no job code runs here yet. Its
	// trainers' working folders are made under stage; their shared
	// memory folders, named for this process, are cleared by ClearStale.
	if err := os.RemoveAll(stage); err != nil {
		log.Warn("job code folder not cleared", "dir", stage, "err", err)
	}
	if err := trainer.ClearStale("", stage); err != nil {
		log.Warn("stale trainer folders not cleared", "err", err)
	}
	return func(ctx context.Context, c participant.JobCode) (participant.CodeTrainer, error) {
		if c.Kind != job.KindPyTorch {
			return nil, fmt.Errorf("no runner for trainer kind %q", c.Kind)
		}
		if err := os.MkdirAll(stage, 0o700); err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(stage, c.JobID+"-") // 0700: the script, then the launcher's staged copy
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, c.Name)
		if err := os.WriteFile(path, c.Script, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		client, err := trainer.NewPython(trainer.PythonConfig{
			Script:   plugins.Pin{Path: path, SHA256: c.SHA256},
			Limits:   limits,
			Sandbox:  sandbox,
			Setup:    trainer.Setup{Args: c.Args, DataDir: c.DataDir},
			Timeout:  timeout,
			StageDir: dir,
			WorkRoot: dir,
			// A job's own trainer's models travel inline: no larger one is
			// ever read back (nor shared memory made for it).
			MaxModelBytes: job.InlineLimit,
			Logger:        log.With("job", c.JobID),
		})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := client.Start(ctx); err != nil {
			client.Close()
			os.RemoveAll(dir)
			return nil, err
		}
		return &stagedTrainer{Client: client, dir: dir}, nil
	}
}

// stagedTrainer is a job's trainer with the folder it was staged in,
// removed when it closes.
type stagedTrainer struct {
	*trainer.Client
	dir string
}

func (s *stagedTrainer) Close() error {
	err := s.Client.Close()
	if rerr := os.RemoveAll(s.dir); err == nil {
		err = rerr
	}
	return err
}

// checkTimeout bounds each call of a site's checker plugin.
const checkTimeout = 10 * time.Second

// siteCheckers starts the checker plugins the site's components.json
// pins, in its state folder. A checker that does not start (its hash
// differs from its pin, say) does not stop the site: it is audited, and
// every job is refused with why, since a check that cannot run passes
// nothing. The returned function stops them.
func siteCheckers(ctx context.Context, allowed *components.AllowList, self, state string, audit func(reason string), log *slog.Logger) ([]participant.JobChecker, func()) {
	if allowed == nil || len(allowed.Checkers) == 0 {
		return nil, func() {}
	}
	var out []participant.JobChecker
	var clients []*checker.Client
	for _, c := range allowed.Checkers {
		sum, err := hex.DecodeString(c.SHA256) // checked when components.json was parsed
		var client *checker.Client
		if err == nil {
			client, err = checker.NewClient(checker.ClientConfig{Pin: plugins.Pin{Path: c.Path, SHA256: [32]byte(sum)}, Config: c.Config,
				Timeout: checkTimeout, StageDir: state, Logger: log.With("checker", c.Name)})
		}
		if err == nil {
			if err = client.Start(ctx); err != nil {
				client.Close()
			}
		}
		if err != nil {
			reason := fmt.Sprintf("checker %s did not start: %v", c.Name, err)
			audit(reason)
			log.Error("checker refused", "checker", c.Name, "err", err)
			out = append(out, participant.JobChecker{Name: c.Name, Check: func(context.Context, participant.CheckedJob) (bool, string, error) {
				return false, "", errors.New("it did not start at this site: " + err.Error())
			}})
			continue
		}
		clients = append(clients, client)
		out = append(out, participant.JobChecker{Name: c.Name, Check: func(ctx context.Context, j participant.CheckedJob) (bool, string, error) {
			job := checker.Job{Site: self, JobID: j.JobID, Submitter: j.Submitter, SubmitterOrg: j.SubmitterOrg, SubmitterRole: j.SubmitterRole,
				Workflow: j.Workflow, Trainer: j.Trainer, Manifest: j.Manifest}
			for _, f := range j.Code {
				job.Code = append(job.Code, checker.File{Name: f.GetName(), Data: f.GetData()})
			}
			d, err := client.Check(ctx, job)
			return d.Allowed, d.Reason, err
		}})
	}
	return out, func() {
		for _, c := range clients {
			c.Close()
		}
	}
}
