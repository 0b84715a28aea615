package filter_test

import (
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
)

// BenchmarkFilters applies each built-in filter to a model of 2^20
// float32 values (4 MiB) in three tensors; the throughput is of the
// local model's bytes.
func BenchmarkFilters(b *testing.B) {
	const n = 1 << 20
	global, local := ramp(n)
	configs := []filter.Config{
		filter.ExcludeVars{Pattern: `bias$`},
		filter.DefaultPercentile(),
		filter.DefaultSVT(),
		filter.Gaussian{NoiseMultiplier: 1.1, ClipNorm: 1},
		filter.Quantize{Codec: "float16"},
		filter.Quantize{Codec: "int8-block64"},
	}
	for _, c := range configs {
		name := c.Name()
		if q, ok := c.(filter.Quantize); ok {
			name += "/" + q.Codec
		}
		b.Run(name, func(b *testing.B) {
			f := build(b, c)
			b.SetBytes(4 * n)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.Apply(global, local); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
