package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/plugins"
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
			Logger:   log.With("job", c.JobID),
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
