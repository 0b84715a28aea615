// Package job is what a federated learning job is: the manifest an admin
// writes in a job folder, and its signature. The admin console signs the
// manifest's exact bytes at submission; the server and every site verify
// the signature (and that the signer is an admin of the project) before
// anything of the job runs, so a job changed after signing is refused
// everywhere.
package job

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/trainer"
)

// ManifestFile is the manifest's name inside a job folder.
const ManifestFile = "manifest.yml"

// AllSites in Manifest.Sites deploys a job to every site.
const AllSites = "@all"

// Manifest is a job folder's manifest.yml.
type Manifest struct {
	Name         string        `yaml:"name"`
	Workflow     string        `yaml:"workflow"` // "fedavg"
	Rounds       int           `yaml:"rounds"`
	Sites        []string      `yaml:"sites"` // ["@all"] or site names
	MinSites     int           `yaml:"min_sites"`
	RoundTimeout time.Duration `yaml:"round_timeout"` // e.g. 30s
	Dataset      string        `yaml:"dataset"`       // the local dataset each site trains on
	Trainer      TrainerSpec   `yaml:"trainer"`
	Evaluation   Evaluation    `yaml:"evaluation"`
	// Aggregation is how updates are combined and bounded; the zero value
	// is the safe default (see aggregator.Rule for the YAML).
	Aggregation aggregator.Rule `yaml:"aggregation"`
}

// TrainerSpec is the built-in trainer and its parameters.
type TrainerSpec struct {
	Kind         string  `yaml:"kind"`             // logreg | mlp | noop (learns nothing: for benchmarks)
	Params       int     `yaml:"params,omitempty"` // noop: the model's parameter count
	Hidden       []int   `yaml:"hidden,omitempty"`
	LearningRate float64 `yaml:"learning_rate"`
	Epochs       int     `yaml:"epochs"`
	BatchSize    int     `yaml:"batch_size"`
	L2           float64 `yaml:"l2,omitempty"`
	Seed         int64   `yaml:"seed"`
}

// Evaluation says what the sites evaluate.
type Evaluation struct {
	// Validation: each round, sites score the round's global model on
	// their local validation data.
	Validation bool `yaml:"validation"`
	// Test: after the last round, sites score the final model on their
	// held-out test data.
	Test bool `yaml:"test"`
}

// Spec is the trainer spec the sites run.
func (t TrainerSpec) Spec() trainer.Spec {
	return trainer.Spec{Kind: t.Kind, Hidden: t.Hidden, LearningRate: t.LearningRate, Epochs: t.Epochs,
		BatchSize: t.BatchSize, L2: t.L2, Seed: t.Seed, Params: t.Params}
}

// ParseManifest parses manifest bytes strictly (unknown fields are errors)
// and validates them.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks every field; problems are joined, each naming its field.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("job manifest: %s: "+format, append([]any{field}, a...)...))
	}
	if m.Name == "" || len(m.Name) > 128 {
		bad("name", "required, at most 128 characters")
	}
	if m.Workflow != "fedavg" {
		bad("workflow", "%q is not supported (want fedavg)", m.Workflow)
	}
	if m.Rounds < 1 || m.Rounds > 100000 {
		bad("rounds", "%d is not in 1..100000", m.Rounds)
	}
	if len(m.Sites) == 0 {
		bad("sites", `required: ["@all"] or site names`)
	}
	seen := map[string]bool{}
	for i, s := range m.Sites {
		if s == AllSites && len(m.Sites) > 1 {
			bad(fmt.Sprintf("sites[%d]", i), "@all must stand alone")
		}
		if seen[s] {
			bad(fmt.Sprintf("sites[%d]", i), "%q listed twice", s)
		}
		seen[s] = true
	}
	if m.MinSites < 1 {
		bad("min_sites", "%d: at least 1", m.MinSites)
	} else if len(m.Sites) > 0 && m.Sites[0] != AllSites && m.MinSites > len(m.Sites) {
		bad("min_sites", "%d is more than the %d sites listed", m.MinSites, len(m.Sites))
	}
	if m.RoundTimeout < 100*time.Millisecond || m.RoundTimeout > 24*time.Hour {
		bad("round_timeout", "%v is not in 100ms..24h", m.RoundTimeout)
	}
	known := false
	for _, d := range dataset.Names() {
		known = known || d == m.Dataset
	}
	if !known {
		bad("dataset", "%q is not one of %v", m.Dataset, dataset.Names())
	}
	if err := m.Trainer.Spec().Validate(); err != nil {
		bad("trainer", "%v", err)
	}
	if err := m.Aggregation.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("job manifest: %w", err))
	}
	return errors.Join(errs...)
}
