package checker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins/checker"
	"github.com/hearthfl/hearth/plugins/checker/imports"
)

// benchConfig is a deny-list site's imports policy.
const benchConfig = `{"deny": ["socket", "subprocess", "ctypes", "os", "importlib"], "deny_calls": ["__import__", "exec", "eval", "compile", "open"]}`

// script is a clean training script of about size bytes: imports, then
// a training loop's worth of code, strings, comments and f-strings
// repeated.
func script(size int) []byte {
	var b strings.Builder
	b.WriteString("import math\nimport torch\nimport torch.nn as nn\nfrom torch.utils.data import (DataLoader,\n    TensorDataset)\n\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "def step_%d(model, batch, lr=0.01):\n    \"\"\"One step; import nothing here.\"\"\"\n"+
			"    x, y = batch  # inputs and labels\n    loss = nn.functional.cross_entropy(model(x), y)\n"+
			"    loss.backward()\n    print(f\"step {%d}: loss={loss.item():.4f} lr={lr!r}\")\n    return math.sqrt(loss.item())\n\n", i, i)
	}
	return []byte(b.String())
}

// BenchmarkCheck is one Check of the imports checker on a clean script
// of 4 KiB and of 256 KiB (the most a job's code may be), in process
// (Local: the same contract checks, no process) and through the plugin
// binary (gRPC over AutoMTLS to a running plugin).
func BenchmarkCheck(b *testing.B) {
	for _, size := range []int{4 << 10, checker.MaxCodeBytes - 4<<10} {
		j := sampleJob()
		j.Code[0].Data = script(size)
		name := fmt.Sprintf("%dKiB", (size+1023)>>10)
		b.Run("in-process/"+name, func(b *testing.B) {
			l, err := checker.NewLocal(b.Context(), "imports", imports.New(), []byte(benchConfig))
			if err != nil {
				b.Fatal(err)
			}
			run(b, l.Check, j)
		})
		b.Run("plugin/"+name, func(b *testing.B) {
			c := newClient(b, importsBin, importsBinSum, rawJSON(benchConfig), 10*time.Second)
			if err := c.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			run(b, c.Check, j)
		})
	}
}

// rawJSON is JSON text that marshals as itself.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// run times check on j, which must be allowed.
func run(b *testing.B, check func(ctx context.Context, j checker.Job) (checker.Decision, error), j checker.Job) {
	b.SetBytes(int64(len(j.Code[0].Data)))
	for b.Loop() {
		d, err := check(b.Context(), j)
		if err != nil || !d.Allowed {
			b.Fatalf("Check = %+v, %v", d, err)
		}
	}
}
