package checker

import (
	"fmt"

	checkerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/checker/v1"
)

// jobToProto is j on the wire; CheckJob has passed it.
func jobToProto(j Job) *checkerv1.CheckRequest {
	m := &checkerv1.CheckRequest{
		Site:     j.Site,
		JobId:    j.JobID,
		Manifest: j.Manifest,
		Submitter: &checkerv1.Submitter{
			Name: j.Submitter,
			Org:  j.SubmitterOrg,
			Role: j.SubmitterRole,
		},
		Workflow: j.Workflow,
		Trainer:  j.Trainer,
	}
	for _, f := range j.Code {
		m.Code = append(m.Code, &checkerv1.File{Name: f.Name, Data: f.Data})
	}
	return m
}

// jobFromProto is the job the plugin side decides; CheckJob judges it.
func jobFromProto(m *checkerv1.CheckRequest) Job {
	j := Job{
		Site:          m.GetSite(),
		JobID:         m.GetJobId(),
		Submitter:     m.GetSubmitter().GetName(),
		SubmitterOrg:  m.GetSubmitter().GetOrg(),
		SubmitterRole: m.GetSubmitter().GetRole(),
		Workflow:      m.GetWorkflow(),
		Trainer:       m.GetTrainer(),
		Manifest:      m.GetManifest(),
	}
	for _, f := range m.GetCode() {
		j.Code = append(j.Code, File{Name: f.GetName(), Data: f.GetData()})
	}
	return j
}

// decisionToProto is d on the wire.
func decisionToProto(d Decision) *checkerv1.CheckResponse {
	return &checkerv1.CheckResponse{Allowed: d.Allowed, Reason: d.Reason}
}

// decisionFromProto is the decision a plugin answered, refused
// (ErrContract) when it is outside the contract; a missing answer is
// refused too.
func decisionFromProto(m *checkerv1.CheckResponse) (Decision, error) {
	if m == nil {
		return Decision{}, fmt.Errorf("%w: no answer", ErrContract)
	}
	d := Decision{Allowed: m.GetAllowed(), Reason: m.GetReason()}
	if err := CheckDecision(d); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// checkConfig bounds a checker's configuration.
func checkConfig(config []byte) error {
	if n := len(config); n > MaxConfigBytes {
		return fmt.Errorf("checker: a configuration of %d bytes, more than %d", n, MaxConfigBytes)
	}
	return nil
}
