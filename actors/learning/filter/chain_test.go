package filter_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
)

func TestRunChain(t *testing.T) {
	global := mdl(tensor("emb", []int{2}, 1, 1), tensor("w", []int{4}, 0, 0, 0, 0))
	local := mdl(tensor("emb", []int{2}, 9, -9), tensor("w", []int{4}, 0.5, 0.01, -0.3, 0.001))
	t.Run("excluded tensors reach no later filter", func(t *testing.T) {
		// Without the exclusion the percentile would see emb's diffs of
		// 8: with percentile 50 over w alone, index 1.5 of .001 .01 .3 .5
		// gives cutoff .3 - .29*.5 = .155, zeroing .01 and .001.
		chain := []filter.Filter{
			build(t, filter.ExcludeVars{Pattern: `^emb$`}),
			build(t, filter.Percentile{Percentile: 50, Gamma: 0.4, Steps: 1}),
		}
		g0, l0 := global.Clone(), local.Clone()
		out, rep, err := filter.RunChain(chain, global, local)
		if err != nil {
			t.Fatal(err)
		}
		if !equalBits(global, g0) || !equalBits(local, l0) {
			t.Fatal("RunChain changed its inputs")
		}
		wantData(t, out, map[string][]float32{"emb": {1, 1}, "w": {0.4, 0, -0.3, 0}})
		if !slices.Equal(rep.Mask, []bool{true, false}) || !slices.Equal(rep.Excluded, []string{"emb"}) || len(rep.Reports) != 2 {
			t.Fatalf("report %+v", rep)
		}
		if p := rep.Reports[1]; p.Filter != filter.NamePercentilePrivacy || p.Values != 4 || math.Abs(p.Cutoff-0.155) > 1e-6 {
			t.Errorf("percentile report %+v", p)
		}
	})
	t.Run("order is the chain's", func(t *testing.T) {
		// Clip first, then quantize to bfloat16: the bfloat16 of .4; the
		// other order would clip the bfloat16 of .5 to .4 exactly.
		clipFirst := []filter.Filter{
			build(t, filter.Percentile{Percentile: 0, Gamma: 0.4, Steps: 1}),
			build(t, filter.Quantize{Codec: "bfloat16"}),
		}
		out, rep, err := filter.RunChain(clipFirst, global, local)
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Tensors[1].Data[0]; got != 0.400390625 { // bfloat16 0x3ECD
			t.Errorf("w[0] = %v, want bfloat16(0.4) = 0.400390625", got)
		}
		if rep.Reports[0].Filter != filter.NamePercentilePrivacy || rep.Reports[1].Filter != filter.NameQuantize {
			t.Errorf("reports out of order: %q, %q", rep.Reports[0].Filter, rep.Reports[1].Filter)
		}
		out, _, _ = filter.RunChain([]filter.Filter{clipFirst[1], clipFirst[0]}, global, local)
		if got := out.Tensors[1].Data[0]; got != 0.4 {
			t.Errorf("reversed: w[0] = %v, want 0.4", got)
		}
	})
	t.Run("no filters copies", func(t *testing.T) {
		out, _, err := filter.RunChain(nil, global, local)
		if err != nil || !equalBits(out, local) || &out.Tensors[0].Data[0] == &local.Tensors[0].Data[0] {
			t.Fatalf("got %v, %v", out, err)
		}
	})
	t.Run("a refusal stops the chain", func(t *testing.T) {
		chain := []filter.Filter{build(t, filter.Quantize{Codec: "float16"}), build(t, filter.DefaultPercentile())}
		big := mdl(tensor("emb", []int{2}, 1, 1), tensor("w", []int{4}, 1e6, 0, 0, 0))
		out, rep, err := filter.RunChain(chain, global, big)
		if !errors.Is(err, filter.ErrNonFinite) || out != nil || len(rep.Reports) != 1 {
			t.Fatalf("err %v, %d reports", err, len(rep.Reports))
		}
	})
	t.Run("inputs are checked", func(t *testing.T) {
		_, _, err := filter.RunChain(nil, mdl(tensor("emb", []int{2}, 1, 1)), local)
		if !errors.Is(err, model.ErrLayout) {
			t.Fatalf("err %v, want ErrLayout", err)
		}
	})
}
