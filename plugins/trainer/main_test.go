package trainer_test

import (
	"path/filepath"
	"testing"

	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// testTrainer is the test trainer's main package.
const testTrainer = "github.com/hearthfl/hearth/plugins/trainer/internal/testtrainer/cmd/hearth-trainer-test"

// bin is the test trainer's binary and binSum its SHA-256, built once by
// TestMain.
var (
	bin    string
	binSum [32]byte
)

func TestMain(m *testing.M) {
	plugintest.MainFunc(m, "hearth-trainer-test-", func(dir string) error {
		bin = filepath.Join(dir, "hearth-trainer-test")
		if err := plugintest.BuildMain(testTrainer, bin, ""); err != nil {
			return err
		}
		var err error
		binSum, err = plugintest.SHA256File(bin)
		return err
	})
}
