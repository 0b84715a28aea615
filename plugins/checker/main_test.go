package checker_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/checker"
	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// The main packages the tests build.
const (
	testChecker    = "github.com/hearthfl/hearth/plugins/checker/internal/testchecker/cmd/hearth-checker-test"
	importsChecker = "github.com/hearthfl/hearth/cmd/hearth-checker-imports"
)

// The binaries, built once by TestMain: the test checker, the same
// linked to append a line to marker when it starts (its absence proves a
// binary never ran), and the imports checker.
var (
	bin, marked, importsBin          string
	binSum, markedSum, importsBinSum [32]byte
	marker                           string
)

func TestMain(m *testing.M) {
	plugintest.MainFunc(m, "hearth-checker-test-", func(dir string) error {
		bin = filepath.Join(dir, "hearth-checker-test")
		marked = filepath.Join(dir, "hearth-checker-test-marked")
		marker = filepath.Join(dir, "started")
		importsBin = filepath.Join(dir, "hearth-checker-imports")
		builds := []struct {
			pkg, out, ldflags string
			sum               *[32]byte
		}{
			{testChecker, bin, "", &binSum},
			{testChecker, marked, "-X main.startMarker=" + marker, &markedSum},
			{importsChecker, importsBin, "", &importsBinSum},
		}
		for _, b := range builds {
			if err := plugintest.BuildMain(b.pkg, b.out, b.ldflags); err != nil {
				return err
			}
			var err error
			if *b.sum, err = plugintest.SHA256File(b.out); err != nil {
				return err
			}
		}
		return nil
	})
}

// newClient runs the binary at path (pinned to sum) with config (a value
// marshalled to JSON) and the call deadline timeout; it is closed when
// the test ends.
func newClient(t testing.TB, path string, sum [32]byte, config any, timeout time.Duration) *checker.Client {
	t.Helper()
	raw, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	c, err := checker.NewClient(checker.ClientConfig{
		Pin: plugins.Pin{Path: path, SHA256: sum}, Config: raw, Timeout: timeout,
		StageDir: t.TempDir(), Logger: bustest.Logger(),
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// sampleJob is a job with every field set and one code file.
func sampleJob() checker.Job {
	return checker.Job{
		Site: "site-1", JobID: "job-7",
		Submitter: "alice@a.org", SubmitterOrg: "a", SubmitterRole: "lead",
		Workflow: "fedavg", Trainer: "pytorch",
		Manifest: []byte("name: demo\nworkflow: fedavg\ntrainer:\n  kind: pytorch\n  script: train.py\n"),
		Code:     []checker.File{{Name: "train.py", Data: []byte("import torch\nimport socket\n")}},
	}
}
