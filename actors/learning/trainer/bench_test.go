package trainer

import (
	"context"
	"testing"
)

// BenchmarkTrainEpoch times one local epoch (one Train call with Epochs 1)
// over a whole train split, and reports samples/s alongside ns/op.
func BenchmarkTrainEpoch(b *testing.B) {
	cases := []struct {
		name, dataset string
		spec          Spec
	}{
		{"optdigits/logreg", "optdigits", Spec{Kind: "logreg", LearningRate: 0.1, BatchSize: 16}},
		{"optdigits/mlp64", "optdigits", Spec{Kind: "mlp", Hidden: []int{64}, LearningRate: 0.1, BatchSize: 16}},
		{"mnist/mlp128", "mnist", Spec{Kind: "mlp", Hidden: []int{128}, LearningRate: 0.1, BatchSize: 32}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			train, _ := load(b, tc.dataset)
			tc.spec.Epochs, tc.spec.Seed = 1, 1
			m := mustInit(b, tc.spec, train)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := Train(ctx, tc.spec, m, train); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*train.Rows())/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkTrain times one local epoch of plain training next to DP-SGD
// with the same settings (optdigits, mlp[64], batch 64, the federated
// recommendation of actors/learning/README.md), and reports samples/s.
// DP-SGD adds per-sample norms and clipping, Poisson sampling and one
// Gaussian draw per parameter per step.
func BenchmarkTrain(b *testing.B) {
	plain := Spec{Kind: "mlp", Hidden: []int{64}, LearningRate: 0.1, Epochs: 1, BatchSize: 64, L2: 1e-4, Seed: 1}
	cases := []struct {
		name string
		spec Spec
	}{
		{"plain", plain},
		{"dpsgd", withDP(plain, 1.1, 1)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			train, _ := load(b, "optdigits")
			m := mustInit(b, tc.spec, train)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := Train(ctx, tc.spec, m, train); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*train.Rows())/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
