package filter_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/plugins"
	"github.com/hearthfl/hearth/plugins/filter"
	"github.com/hearthfl/hearth/plugins/internal/plugintest"
)

// testFilter is the test filter's main package.
const testFilter = "github.com/hearthfl/hearth/plugins/filter/internal/testfilter/cmd/hearth-filter-test"

// bin is the test filter's binary and binSum its SHA-256, built once by
// TestMain.
var (
	bin    string
	binSum [32]byte
)

func TestMain(m *testing.M) {
	plugintest.MainFunc(m, "hearth-filter-test-", func(dir string) error {
		bin = filepath.Join(dir, "hearth-filter-test")
		if err := plugintest.BuildMain(testFilter, bin, ""); err != nil {
			return err
		}
		var err error
		binSum, err = plugintest.SHA256File(bin)
		return err
	})
}

// newClient runs the test filter with args (testfilter.Args as a map)
// on updates leaving the site, with the call deadline timeout; it is
// closed when the test ends.
func newClient(t testing.TB, args map[string]any, timeout time.Duration) *filter.Client {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c, err := filter.NewClient(filter.ClientConfig{
		Pin: plugins.Pin{Path: bin, SHA256: binSum}, Args: raw, Direction: filter.DirectionOut,
		Params: map[string]string{"args": string(raw)}, Timeout: timeout,
		WorkDir: t.TempDir(), ShmDir: t.TempDir(), Logger: bustest.Logger(),
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

// models are a global model and a local update of two tensors.
func models() (global, local *model.Model) {
	global = &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Shape: []int{3}, Data: []float32{0, 0, 0}},
	}}
	local = &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{2, 3}, Data: []float32{1.5, 1, 3.25, 4, 7, 5.9}},
		{Name: "b", Shape: []int{3}, Data: []float32{0.05, -1, 0.2}},
	}}
	return global, local
}
