package trainer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins/trainer"
)

// BenchmarkPythonRound is a PyTorch round's overhead beyond the script's
// own training time: the host's Train call (the model into shared
// memory, gRPC, the harness loading it into the module, writing the
// trained one back, the host's copy out and checks) less the time the
// script's train() took (trainer.MetricScriptSeconds). The MLP script
// runs one epoch over one site's share of optdigits (656 samples) with a
// hidden layer of 64 units (4.8k parameters) and 4096 (307k), and no
// epoch (the overhead alone) with 65536 (4.9M, 19 MB) and 262144 (19.7M,
// 79 MB).
//
//	go test -run '^$' -bench PythonRound ./plugins/trainer
func BenchmarkPythonRound(b *testing.B) {
	requireTorch(b)
	data := siteData(b)
	for _, tc := range []struct{ hidden, epochs int }{{64, 1}, {4096, 1}, {65536, 0}, {262144, 0}} {
		b.Run(fmt.Sprintf("hidden=%d/epochs=%d", tc.hidden, tc.epochs), func(b *testing.B) {
			ctx := context.Background()
			c := newPython(b, "mlp.py", data, map[string]any{"dataset": "optdigits", "epochs": tc.epochs, "hidden": tc.hidden, "lr": 0.01}, trainer.Limits{}, 5*time.Minute)
			global, err := c.Prepare(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.Train(ctx, 0, global); err != nil { // warm: first-call costs
				b.Fatal(err)
			}
			var script, total time.Duration
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				_, res, err := c.Train(ctx, i+1, global)
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				script += time.Duration(res.Metrics[trainer.MetricScriptSeconds] * float64(time.Second))
			}
			b.ReportMetric(float64(global.NumParams()), "params")
			b.ReportMetric(float64((total-script).Microseconds())/float64(b.N)/1000, "overhead-ms/round")
			b.ReportMetric(float64(script.Microseconds())/float64(b.N)/1000, "script-ms/round")
		})
	}
}

// BenchmarkPythonStart is a PyTorch trainer's start, with the sandbox
// and without: the launcher's process started, torch imported, the
// sandbox applied (or not), the job's script imported, the handshake
// and Configure (which reads the site's train split), as Client.Start
// runs it. NewPython and Close are outside the timer.
//
//	go test -run '^$' -bench PythonStart -benchtime 5x ./plugins/trainer
func BenchmarkPythonStart(b *testing.B) {
	requireTorch(b)
	data := siteData(b)
	for _, mode := range []trainer.SandboxMode{trainer.SandboxOn, trainer.SandboxOff} {
		b.Run("sandbox="+mode.String(), func(b *testing.B) {
			ctx := context.Background()
			for range b.N {
				b.StopTimer()
				c, err := trainer.NewPython(pythonConfig(b, "mlp.py", data, map[string]any{"dataset": "optdigits"}, func(c *trainer.PythonConfig) { c.Sandbox = mode }))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				err = c.Start(ctx)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
