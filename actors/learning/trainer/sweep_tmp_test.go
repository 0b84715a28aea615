package trainer

import (
	"fmt"
	"os"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/dataset"
)

func TestSweepTmp(t *testing.T) {
	if os.Getenv("SWEEP") == "" { t.Skip() }
	for _, ds := range dataset.Names() {
		train, test := load(t, ds)
		for _, kind := range []string{"logreg", "mlp"} {
			spec := Defaults(ds, kind)
			rounds := DefaultRounds(ds, kind)
			line := ""
			for ps := int64(1); ps <= 5; ps++ {
				parts, _ := dataset.DirichletSplit(train, 5, 0.5, ps)
				acc := fedAvg(t, spec, 20, parts, test, nil)
				line += fmt.Sprintf(" [%d: r3 %.2f r5 %.2f r%d %.2f r20 %.2f]", ps, 100*acc[2], 100*acc[4], rounds, 100*acc[rounds-1], 100*acc[19])
			}
			fmt.Printf("%s/%s%s\n", ds, kind, line)
		}
	}
	train, test := load(t, "optdigits")
	spec := Spec{Kind: "logreg", LearningRate: 0.2, Epochs: 1, BatchSize: 8, L2: 1e-4, Seed: 1}
	for _, alpha := range []float64{0.3, 0.5} {
		line := ""
		for ps := int64(1); ps <= 5; ps++ {
			parts, _ := dataset.DirichletSplit(train, 5, alpha, ps)
			acc := fedAvg(t, spec, 20, parts, test, nil)
			line += fmt.Sprintf(" %.2f", 100*acc[19])
		}
		fmt.Printf("reference protocol alpha %v:%s\n", alpha, line)
	}
}
