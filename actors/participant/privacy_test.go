package participant

import (
	"testing"

	"github.com/hearthfl/hearth/actors/learning/model"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestARepeatedRoundIsResentNotRetrained: a round asked for again from the
// same global model (a resumed job) gets the update released before, so
// that it spends no ε twice; from another model, or another round, the
// site trains (and its budget decides).
func TestARepeatedRoundIsResentNotRetrained(t *testing.T) {
	pr := &jobPrivacy{}
	global := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}}
	other := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 3}}}}
	pr.released(3, global, &hearthv1.TrainResult{JobId: "job-0123456789ab", Round: 3, Samples: 7, Epsilon: 2.5})
	if got := pr.resend(3, global); got == nil || got.Samples != 7 || got.Epsilon != 2.5 {
		t.Fatalf("resend(round 3, same model) = %v, want the result released", got)
	}
	if got := pr.resend(3, other); got != nil {
		t.Fatalf("resend(round 3, another model) = %v, want none: the site trains", got)
	}
	if got := pr.resend(4, global); got != nil {
		t.Fatalf("resend(round 4) = %v, want none", got)
	}
	var none *jobPrivacy
	if none.resend(3, global) != nil {
		t.Fatal("a job without privacy resent something")
	}
}
