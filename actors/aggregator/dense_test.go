package aggregator

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFedAvgDenseIsTheMeanOfTheClippedUpdates: the dense FedAvg loop gives,
// for one to six updates with unequal weights and clipping scales, the
// float64 weighted mean of the clipped points (point) rounded to float32,
// within one float32 rounding; also when it writes over the global model's
// own memory (a sum in place); and it refuses a non-finite aggregate.
func TestFedAvgDenseIsTheMeanOfTheClippedUpdates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 1000
	for members := 1; members <= 6; members++ {
		g := make([]float32, n)
		for j := range g {
			g[j] = float32(rng.NormFloat64())
		}
		k := &kept{}
		for range members {
			x := make([]float32, n)
			for j := range x {
				x[j] = g[j] + float32(rng.NormFloat64()*10)
			}
			k.xs = append(k.xs, x)
			k.scales = append(k.scales, 0.25+0.75*rng.Float64())
			k.weights = append(k.weights, 1+100*rng.Float64())
			k.excl = append(k.excl, nil)
		}
		p := normalised(k.weights)
		want := make([]float32, n)
		for j := range want {
			v := 0.0
			for i := range k.xs {
				v += p[i] * k.point(i, j, g)
			}
			want[j] = float32(v)
		}
		check := func(name string, got []float32) {
			t.Helper()
			for j := range got {
				if d := math.Abs(float64(got[j] - want[j])); d > 1e-6*math.Max(1, math.Abs(float64(want[j]))) {
					t.Fatalf("%d updates, %s: value %d is %v, want %v", members, name, j, got[j], want[j])
				}
			}
		}
		out := make([]float32, n)
		if err := fedAvgDense(g, k, p, out); err != nil {
			t.Fatal(err)
		}
		check("into a buffer", out)
		inPlace := slices.Clone(g)
		if err := fedAvgDense(inPlace, k, p, inPlace); err != nil {
			t.Fatal(err)
		}
		check("in place", inPlace)
	}
	huge := &kept{xs: [][]float32{{math.MaxFloat32}, {math.MaxFloat32}}, scales: []float64{1, 1}, weights: []float64{1, 1}, excl: make([][]bool, 2)}
	// g = -MaxFloat32 puts the mean's float64 value beyond float32.
	if err := fedAvgDense([]float32{-math.MaxFloat32}, huge, []float64{1.5, 1.5}, make([]float32, 1)); err == nil {
		t.Fatal("a non-finite aggregate accepted")
	}
}

// TestDistanceIsTheFloat64Distance: distance, which squares and sums in
// float32 blocks, gives the float64 L2 distance within 1e-6 relative, over
// lengths around its block (empty, shorter, one, several, a remainder), and
// the exact float64 figure where a block's float32 squares overflow
// (differences of 1e30, a hostile update's) instead of infinity.
func TestDistanceIsTheFloat64Distance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	want := func(x, g []float32) float64 {
		s := 0.0
		for j := range x {
			d := float64(x[j]) - float64(g[j])
			s += d * d
		}
		return math.Sqrt(s)
	}
	for _, n := range []int{0, 1, 17, distanceBlock - 1, distanceBlock, distanceBlock + 1, 5*distanceBlock + 333} {
		x, g := make([]float32, n), make([]float32, n)
		for j := range x {
			g[j] = float32(rng.NormFloat64())
			x[j] = g[j] + float32(rng.NormFloat64()*0.01)
		}
		got, w := distance(x, g), want(x, g)
		if math.Abs(got-w) > 1e-6*w {
			t.Fatalf("%d values: distance %.12g, the float64 sum gives %.12g", n, got, w)
		}
	}
	x, g := make([]float32, 3*distanceBlock), make([]float32, 3*distanceBlock)
	for j := range x {
		x[j] = 1e30
	}
	if got, w := distance(x, g), want(x, g); math.IsInf(got, 0) || math.Abs(got-w) > 1e-6*w {
		t.Fatalf("differences of 1e30: distance %g, want %g", got, w)
	}
}
