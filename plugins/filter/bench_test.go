package filter_test

import (
	"fmt"
	"testing"
	"time"

	learnfilter "github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins/filter"
	"github.com/hearthfl/hearth/plugins/filter/internal/testfilter"
)

// BenchmarkNoop is the cost of the plugin boundary: the same no-op filter
// (the test filter's "noop") run in process (filter.Local) and as a
// plugin binary (filter.Client, the models in shared memory), on an
// update of 16 MiB and of 256 MiB against a global model of the same
// size. Both check their inputs and the answer and copy the output, as a
// chain's filter must; MB/s counts the update's bytes. The plugin's first
// call, which makes its shared memory files, is reported apart
// (first-call-ms); the files are kept for the calls after it. The
// plugin-chain-into case is the plugin as a site's chain runs it on a
// streamed update (RunChainInto): the inputs checked once by the chain,
// the answer copied into a buffer kept from call to call.
//
//	go test -run '^$' -bench Noop ./plugins/filter
func BenchmarkNoop(b *testing.B) {
	for _, mib := range []int{16, 256} {
		global, local := benchModels(mib)
		b.Run(fmt.Sprintf("%dMiB/in-process", mib), func(b *testing.B) {
			f, err := filter.NewLocal(b.Context(), &testfilter.Filter{}, filter.DirectionOut, []byte(`{"mode":"noop"}`), nil)
			if err != nil {
				b.Fatal(err)
			}
			run(b, f, global, local)
		})
		b.Run(fmt.Sprintf("%dMiB/plugin", mib), func(b *testing.B) {
			c := newClient(b, map[string]any{"mode": "noop"}, time.Minute)
			if err := c.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			start := time.Now() // the first call makes the shared memory: fresh pages
			if _, _, err := c.Apply(global, local); err != nil {
				b.Fatal(err)
			}
			first := time.Since(start)
			run(b, c, global, local)
			b.ReportMetric(float64(first.Milliseconds()), "first-call-ms") // after the loop, which clears metrics
		})
		b.Run(fmt.Sprintf("%dMiB/plugin-chain-into", mib), func(b *testing.B) {
			// As a site streams an update: a chain of the plugin alone,
			// the inputs checked once, the answer copied into a kept buffer.
			c := newClient(b, map[string]any{"mode": "noop"}, time.Minute)
			dst := zeroLike(local)
			chain := []learnfilter.Filter{c}
			if _, err := learnfilter.RunChainInto(chain, global, local, dst); err != nil { // the shared files made
				b.Fatal(err)
			}
			b.SetBytes(int64(local.Bytes()))
			for b.Loop() {
				if _, err := learnfilter.RunChainInto(chain, global, local, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// run applies f b.N times.
func run(b *testing.B, f learnfilter.Filter, global, local *model.Model) {
	b.SetBytes(int64(local.Bytes()))
	for b.Loop() {
		out, _, err := f.Apply(global, local)
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Tensors) != len(local.Tensors) {
			b.Fatal("wrong output")
		}
	}
}

// benchModels are a global model and an update of mib MiB each, in four
// tensors.
func benchModels(mib int) (global, local *model.Model) {
	n := mib << 20 / 4 / 4
	global, local = &model.Model{}, &model.Model{}
	for i := range 4 {
		g, l := make([]float32, n), make([]float32, n)
		for j := range n {
			g[j] = float32(j%1000) / 1000
			l[j] = g[j] + float32(j%7-3)/100
		}
		name := fmt.Sprintf("layer%d.weight", i)
		global.Tensors = append(global.Tensors, model.Tensor{Name: name, Shape: []int{n / 1024, 1024}, Data: g})
		local.Tensors = append(local.Tensors, model.Tensor{Name: name, Shape: []int{n / 1024, 1024}, Data: l})
	}
	return global, local
}
