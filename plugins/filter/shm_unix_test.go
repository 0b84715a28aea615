//go:build unix

package filter

import (
	"os"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/plugins/internal/shm"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// TestOutputCutShortIsRefused: a plugin that truncates its output file
// under the host's mapping (it runs as the site's user and knows the path)
// makes reading the mapping fault; the host refuses that answer with an
// error instead of dying of SIGBUS with every job of the site.
func TestOutputCutShortIsRefused(t *testing.T) {
	const values = 4096
	r, err := shm.Create(t.TempDir(), "out-0", 4*values)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dst := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{values}, Data: make([]float32, values)}}}
	if err := readShared(dst, r.Data, nil); err != nil {
		t.Fatalf("the whole file: %v", err)
	}
	if err := os.Truncate(r.Path, 0); err != nil {
		t.Fatal(err)
	}
	if err := readShared(dst, r.Data, nil); err == nil || !strings.Contains(err.Error(), "could not be read") {
		t.Fatalf("readShared of a truncated mapping = %v", err)
	}
}
