package coordinator

import (
	"fmt"
	"math"
	"slices"

	"github.com/hearthfl/hearth/actors/job"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// What a site says of its data crosses a trust boundary: a compromised site
// with a valid key can claim anything. So a site commits to its counts and
// its data's shape when it joins (its signed JobJoined, audited at both
// ends), every later figure is checked against that commitment, and no
// site's claim decides alone what the others get.

// maxLoss bounds a reported loss: far above any model's mean loss that
// still learns, low enough that weighted sums of losses stay finite.
const maxLoss = 1e6

// maxSamples bounds a committed sample count: far above any real site's,
// low enough that sums of weights stay exact in float64.
const maxSamples = 1 << 50

// checkCommitment says what is wrong with a site's JobJoined, or "".
func checkCommitment(m *hearthv1.JobJoined) string {
	switch {
	case m.TrainSamples < 1 || m.TrainSamples > maxSamples:
		return fmt.Sprintf("committed %d training samples: want 1..%d", m.TrainSamples, int64(maxSamples))
	case m.ValSamples < 0 || m.ValSamples > maxSamples || m.TestSamples < 0 || m.TestSamples > maxSamples:
		return fmt.Sprintf("committed %d validation and %d test samples: want 0..%d", m.ValSamples, m.TestSamples, int64(maxSamples))
	case !job.ValidShape(m.Features, m.Classes):
		return fmt.Sprintf("data of %d features and %d classes is not a plausible shape", m.Features, m.Classes)
	}
	return ""
}

// dataShape is a dataset's shape as sites report it.
type dataShape struct{ features, classes int64 }

func (s dataShape) String() string {
	return fmt.Sprintf("%d features, %d classes", s.features, s.classes)
}

// decideShape is the job's data shape: the signed manifest's when it names
// one, else the one more than half of the joined sites report. ok is false
// when the manifest names none and no shape has a majority.
func decideShape(manifest *job.DataShape, reported map[string]dataShape) (shape dataShape, ok bool) {
	if manifest != nil {
		return dataShape{int64(manifest.Features), int64(manifest.Classes)}, true
	}
	votes := map[dataShape]int{}
	for _, s := range reported {
		votes[s]++
	}
	for s, n := range votes {
		if 2*n > len(reported) {
			return s, true
		}
	}
	return dataShape{}, false
}

// checkMetrics says what is wrong with metrics a site reported, or "":
// finite, accuracy in [0,1], loss at least 0, and no more samples than the
// site committed to for that split (limit).
func checkMetrics(what string, m *hearthv1.Metrics, limit int64) string {
	switch {
	case m == nil:
		return ""
	case m.Samples < 0 || m.Samples > limit:
		return fmt.Sprintf("%s metrics over %d samples, more than the %d committed", what, m.Samples, limit)
	case !finite(m.Loss) || m.Loss < 0 || m.Loss > maxLoss:
		return fmt.Sprintf("%s loss %v: want 0..%g", what, m.Loss, maxLoss)
	case !finite(m.Accuracy) || m.Accuracy < 0 || m.Accuracy > 1:
		return fmt.Sprintf("%s accuracy %v: want 0..1", what, m.Accuracy)
	}
	return ""
}

// checkResult says what is wrong with a site's TrainResult against its
// commitment, or "".
func checkResult(m *hearthv1.TrainResult, c *hearthv1.SiteCommitment) string {
	switch {
	case c == nil:
		return "no commitment for this site"
	case m.Samples < 1 || m.Samples > c.TrainSamples:
		return fmt.Sprintf("reported %d training samples, committed %d when it joined", m.Samples, c.TrainSamples)
	case !finite(m.TrainLoss) || m.TrainLoss < 0 || m.TrainLoss > maxLoss:
		return fmt.Sprintf("train loss %v: want 0..%g", m.TrainLoss, maxLoss)
	case m.TrainMicros < 0:
		return fmt.Sprintf("train time %d µs", m.TrainMicros)
	case !validEpsilon(m.Epsilon):
		return fmt.Sprintf("ε %v: want 0..%g", m.Epsilon, maxEpsilon)
	}
	return checkMetrics("validation", m.Validation, c.ValSamples)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// maxEpsilon bounds the ε a site may report: far beyond any meaningful
// guarantee, so that only nonsense is refused.
const maxEpsilon = 1e6

func validEpsilon(e float64) bool { return finite(e) && e >= 0 && e <= maxEpsilon }

// commitmentOf finds a site's commitment in a job's record.
func commitmentOf(info *hearthv1.JobInfo, site string) *hearthv1.SiteCommitment {
	i := slices.IndexFunc(info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == site })
	if i < 0 {
		return nil
	}
	return info.Commitments[i]
}
