// Package job is what a federated learning job is: the manifest an admin
// writes in a job folder, and its signature. The admin console signs the
// manifest's exact bytes at submission; the server and every site verify
// the signature (and that the signer is an admin of the project) before
// anything of the job runs, so a job changed after signing is refused
// everywhere.
package job

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/actors/learning/quantize"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies/privacy"
	"github.com/hearthfl/hearth/policies/resources"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// ManifestFile is the manifest's name inside a job folder.
const ManifestFile = "manifest.yml"

// AllSites in Manifest.Sites deploys a job to every site.
const AllSites = "@all"

// The workflows a manifest names.
const (
	// WorkflowFedAvg: the server sends the global model to the sites each
	// round and aggregates their updates.
	WorkflowFedAvg = "fedavg"
	// WorkflowSwarm: a different site aggregates each round, updates and
	// models travel site to site sealed, and the server only coordinates.
	WorkflowSwarm = "swarm"
)

// Manifest is a job folder's manifest.yml.
type Manifest struct {
	Name     string   `yaml:"name"`
	Workflow string   `yaml:"workflow"` // WorkflowFedAvg or WorkflowSwarm
	Rounds   int      `yaml:"rounds"`
	Sites    []string `yaml:"sites"` // ["@all"] or site names
	// Aggregators are the sites eligible to aggregate a swarm round; empty:
	// all of the job's sites.
	Aggregators  []string      `yaml:"aggregators,omitempty"`
	MinSites     int           `yaml:"min_sites"`
	RoundTimeout time.Duration `yaml:"round_timeout"` // e.g. 30s
	Dataset      string        `yaml:"dataset"`       // the local dataset each site trains on
	Trainer      TrainerSpec   `yaml:"trainer"`
	Evaluation   Evaluation    `yaml:"evaluation"`
	// Aggregation is how updates are combined and bounded; the zero value
	// is the safe default (see aggregator.Rule for the YAML).
	Aggregation aggregator.Rule `yaml:"aggregation"`
	// Data is the shape of every site's local data, when the submitter
	// knows it: a site whose data differs is left out. Without it the
	// majority of the joined sites decides the shape.
	Data *DataShape `yaml:"data,omitempty"`
	// PrivacyScope names the privacy scope (a site's local/privacy.json)
	// the job runs in; empty, each site's default scope. A site without
	// the scope refuses the job.
	PrivacyScope string `yaml:"privacy_scope,omitempty"`
	// Filters are the job's own filters on what leaves each site, in
	// FLARE's format ({path, args}); a site runs its scope's filters
	// first and these after, and a job can neither remove nor reorder the
	// site's.
	Filters *JobFilters `yaml:"filters,omitempty"`
	// ResultFilters are Filters.Result parsed (policies/privacy).
	ResultFilters []privacy.FilterSpec `yaml:"-"`
	// HE, when present, runs the job under threshold homomorphic
	// encryption (actors/hejob): the sites encrypt their updates under a
	// key whose secret no one holds, the server adds the ciphertexts, and
	// only threshold of the sites together decrypt, and only the sum.
	HE *HESpec `yaml:"he,omitempty" json:"HE,omitempty"` // omitted from hearth poc's JSON when absent
	// Quantize is the codec streamed models cross the wire in, both ways
	// (actors/learning/quantize): float32 (the default), float16, bfloat16
	// or int8-block64. The aggregator sums the decoded values in full
	// precision; models sent inline (up to InlineLimit) stay float32.
	// float16 turns magnitudes from 65520 into infinities, which the
	// aggregator refuses in an update and which fail a site's training in
	// a global model: it is for models whose values stay within +-65504.
	Quantize string `yaml:"quantize,omitempty" json:"Quantize,omitempty"`
	// Placement, when present, puts a swarm job's aggregator on attested
	// aggregation hosts instead of its sites: every site verifies a host's
	// TEE evidence itself and seals its updates only to the key the
	// evidence binds.
	Placement *Placement `yaml:"placement,omitempty" json:"Placement,omitempty"`
	// Resources is what the job needs at each site (FLARE's resource
	// spec: num_of_gpus, mem_per_gpu_in_GiB); a site that cannot give it
	// now refuses the job (policies/resources).
	Resources *resources.Request `yaml:"resources,omitempty" json:"Resources,omitempty"`
}

// Placement is a job's placement section:
//
//	placement: {aggregator: attested, tee: [sev-snp, nvidia-gpu], hosts: [agg-1]}
type Placement struct {
	// Aggregator is where the aggregator runs: PlacementAttested.
	Aggregator string `yaml:"aggregator"`
	// TEE are the kinds of evidence every host must present (TEESEVSNP,
	// TEENvidiaGPU); each site may require more by its own policy.
	TEE []string `yaml:"tee"`
	// Hosts are the aggregation hosts (participants of kind aggregator)
	// that may aggregate the job's rounds, in turn, once the sites accept
	// their evidence.
	Hosts []string `yaml:"hosts"`
}

// The placements and TEE kinds a job may ask for.
const (
	PlacementAttested = "attested"
	TEESEVSNP         = "sev-snp"
	TEENvidiaGPU      = "nvidia-gpu"
)

// MaxHosts bounds a job's aggregation hosts.
const MaxHosts = 16

// Attested says the job's aggregator runs on attested aggregation hosts.
func (m *Manifest) Attested() bool { return m.Placement != nil }

// Codec is the codec streamed models travel in: nil for float32 (their
// plain bytes).
func (m *Manifest) Codec() quantize.Codec {
	if m.Quantize == "" || m.Quantize == quantize.NameFloat32 {
		return nil
	}
	c, err := quantize.ByName(m.Quantize)
	if err != nil { // Validate refused it
		return nil
	}
	return c
}

// HESpec is a job's he section: `he: {threshold: 3}`, or `he: {}` for a
// majority of the joined sites.
type HESpec struct {
	// Threshold is how many sites' decryption shares a round's sum needs
	// (at least 2); 0: a majority of the sites that joined.
	Threshold int `yaml:"threshold,omitempty"`
}

// JobFilters are a job's own privacy filters.
type JobFilters struct {
	// Result filters run on each site's update before it leaves.
	Result []any `yaml:"task_result_filters"`
}

// MaxJobFilters bounds the filters a job may add to the sites' own.
const MaxJobFilters = 8

// maxScopeName bounds a job's privacy scope name.
const maxScopeName = 128

// DataShape is the shape of a dataset's samples.
type DataShape struct {
	Features int `yaml:"features"`
	Classes  int `yaml:"classes"`
}

// TrainerSpec is the trainer and its parameters: a built-in one, or the
// job's own code (KindPyTorch: Script, pinned by ScriptSHA256).
type TrainerSpec struct {
	Kind         string  `yaml:"kind"`             // logreg | mlp | noop (learns nothing: for benchmarks) | pytorch
	Params       int     `yaml:"params,omitempty"` // noop: the model's parameter count
	Hidden       []int   `yaml:"hidden,omitempty"`
	LearningRate float64 `yaml:"learning_rate"`
	Epochs       int     `yaml:"epochs"`
	BatchSize    int     `yaml:"batch_size"`
	L2           float64 `yaml:"l2,omitempty"`
	Seed         int64   `yaml:"seed"`
	// DP, when present, makes the sites train with DP-SGD (trainer.DPSpec);
	// absent, they train without privacy. Present but empty is refused.
	DP *TrainerDP `yaml:"dp,omitempty" json:"DP,omitempty"` // omitted from hearth poc's JSON when absent
	// Script is the job's own training code, a file in the job's folder
	// that travels with the signed job (SignedJob.code), and ScriptSHA256
	// its SHA-256 in hex: the signed manifest pins it, so a site runs
	// exactly what was signed. Only with a kind that runs a job's code.
	Script       string `yaml:"script,omitempty" json:"Script,omitempty"`
	ScriptSHA256 string `yaml:"script_sha256,omitempty" json:"ScriptSHA256,omitempty"`
	// Args are further arguments for the job's own script, in its own
	// schema (Arguments adds the manifest's dataset and training fields).
	Args map[string]any `yaml:"args,omitempty" json:"Args,omitempty"`
}

// scriptArgNames are the arguments Arguments sets from the manifest's own
// fields; trainer.args may not set them again.
var scriptArgNames = []string{"dataset", "learning_rate", "epochs", "batch_size", "seed", "hidden", "l2"}

// Arguments are the JSON object a job's own script is configured with:
// trainer.args, plus the job's dataset and the trainer's learning_rate,
// epochs, batch_size, seed, l2 and hidden (where set) under those names.
func (m *Manifest) Arguments() ([]byte, error) {
	t := m.Trainer
	out := map[string]any{"dataset": m.Dataset, "epochs": t.Epochs, "batch_size": t.BatchSize, "seed": t.Seed}
	if t.LearningRate != 0 {
		out["learning_rate"] = t.LearningRate
	}
	if t.L2 != 0 {
		out["l2"] = t.L2
	}
	if len(t.Hidden) > 0 {
		out["hidden"] = t.Hidden
	}
	for k, v := range t.Args {
		if slices.Contains(scriptArgNames, k) {
			return nil, fmt.Errorf("trainer.args.%s: set by the manifest's own field", k)
		}
		out[k] = v
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("trainer.args: %w", err)
	}
	return b, nil
}

// KindPyTorch is the trainer kind that runs a job's own PyTorch script at
// each site (custom code: the submitter needs the byoc right there).
const KindPyTorch = "pytorch"

// Custom says the job brings its own code.
func (t TrainerSpec) Custom() bool { return t.Kind == KindPyTorch }

// MaxCodeBytes bounds a job's code, which travels in every join.
const MaxCodeBytes = 256 << 10

// TrainerDP is the trainer's dp section: either a noise multiplier for
// every site, `dp: {noise_multiplier: 1.1, clip_norm: 1.0}`, or a target
// guarantee, `dp: {epsilon: 8, delta: 1e-5, clip_norm: 1.0}`, for which
// each site finds the smallest noise multiplier that keeps the whole job
// (all its rounds) within epsilon at delta for its own number of records
// (a small site needs more noise than a large one). clip_norm is required.
// delta is the δ at which sites report ε (1e-5 when absent). It holds no
// seed: DP-SGD's sampling and noise come from each site's own secret
// randomness, which a manifest (seen by the server and every site) must
// never decide.
type TrainerDP struct {
	NoiseMultiplier float64 `yaml:"noise_multiplier,omitempty"`
	Epsilon         float64 `yaml:"epsilon,omitempty"`
	Delta           float64 `yaml:"delta,omitempty"`
	ClipNorm        float64 `yaml:"clip_norm"`
}

// DefaultDelta is the δ sites report ε at when a job names none.
const DefaultDelta = 1e-5

// Bounds of a job's privacy target.
const (
	maxTargetEpsilon = 100
	maxDelta         = 1e-2
)

// ReportDelta is the δ the job's ε is reported at.
func (d *TrainerDP) ReportDelta() float64 {
	if d.Delta > 0 {
		return d.Delta
	}
	return DefaultDelta
}

// validate checks what Spec's validation cannot: one of noise_multiplier
// and epsilon, and a target within bounds.
func (d *TrainerDP) validate() error {
	switch {
	case (d.NoiseMultiplier != 0) == (d.Epsilon != 0):
		return errors.New("dp: give noise_multiplier or epsilon (a target each site calibrates its noise to), one of them")
	case d.Epsilon != 0 && !(d.Epsilon > 0 && d.Epsilon <= maxTargetEpsilon):
		return fmt.Errorf("dp: epsilon %v is not in (0, %d]", d.Epsilon, maxTargetEpsilon)
	case d.Delta != 0 && !(d.Delta > 0 && d.Delta <= maxDelta):
		return fmt.Errorf("dp: delta %v is not in (0, %g]", d.Delta, maxDelta)
	}
	return nil
}

// Bounds of a data shape: in a manifest, and as a site reports it.
const (
	maxFeatures = 1 << 24
	maxClasses  = 1 << 16
)

// ValidShape says whether features and classes are a plausible data shape.
func ValidShape(features, classes int64) bool {
	return features >= 1 && features <= maxFeatures && classes >= 2 && classes <= maxClasses
}

// Evaluation says what the sites evaluate.
type Evaluation struct {
	// Validation: each round, sites score the round's global model on
	// their local validation data.
	Validation bool `yaml:"validation"`
	// Test: after the last round, sites score the final model on their
	// held-out test data.
	Test bool `yaml:"test"`
	// CrossSite (swarm, with test): each site also scores every other
	// site's last local model on its test data; only the metrics reach
	// the server.
	CrossSite bool `yaml:"cross_site,omitempty"`
}

// Spec is the trainer spec the sites run.
func (t TrainerSpec) Spec() trainer.Spec {
	s := trainer.Spec{Kind: t.Kind, Hidden: t.Hidden, LearningRate: t.LearningRate, Epochs: t.Epochs,
		BatchSize: t.BatchSize, L2: t.L2, Seed: t.Seed, Params: t.Params}
	if t.DP != nil {
		s.DP = &trainer.DPSpec{NoiseMultiplier: t.DP.NoiseMultiplier, ClipNorm: t.DP.ClipNorm}
		if t.DP.Epsilon != 0 { // each site calibrates its own; until then, a value Validate accepts
			s.DP.NoiseMultiplier = 1
		}
	}
	return s
}

// MaxRounds bounds a job's rounds, and so its history, which the server
// keeps in one JetStream record.
const MaxRounds = 10000

// MaxManifestBytes bounds a manifest. A real one is well under a kilobyte;
// the bound keeps whatever a submitter sends cheap to refuse and to parse.
const MaxManifestBytes = 16 << 10

// ParseManifest parses manifest bytes strictly and validates them: at most
// MaxManifestBytes; one YAML document; no anchors, aliases, tags or
// duplicate keys; at most maxMappingKeys keys in a mapping, maxSequence items
// in a sequence and maxDepth levels; unknown fields are errors. Its cost is
// linear in the input: the YAML is first parsed into a node tree (linear),
// checked against those bounds (linear, duplicate keys by map), and only
// then decoded, when yaml.v3's own duplicate-key check (quadratic in the
// keys of a mapping) has at most maxMappingKeys keys to compare.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("job manifest: %d bytes, more than the %d allowed", len(data), MaxManifestBytes)
	}
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	var doc, more yaml.Node
	if err := nodes.Decode(&doc); err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	if err := nodes.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("job manifest: want exactly one YAML document")
	}
	if err := checkShape(&doc, 0); err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
	if err := checkDPSection(&doc); err != nil {
		return nil, fmt.Errorf("job manifest: %w", err)
	}
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

// Bounds of a manifest's YAML structure (ParseManifest).
const (
	maxMappingKeys = 32
	maxSequence    = 1024
	maxDepth       = 8
)

// checkShape walks a parsed YAML node tree and refuses what a manifest
// never needs: anchors, aliases, explicit tags, duplicate or non-scalar
// keys, and structures past the bounds above.
func checkShape(n *yaml.Node, depth int) error {
	where := func() string { return fmt.Sprintf("line %d", n.Line) }
	switch {
	case depth > maxDepth:
		return fmt.Errorf("%s: nested more than %d levels", where(), maxDepth)
	case n.Anchor != "" || n.Kind == yaml.AliasNode:
		return fmt.Errorf("%s: anchors and aliases are not allowed", where())
	case n.Tag != "" && n.Style&yaml.TaggedStyle != 0:
		return fmt.Errorf("%s: explicit tags are not allowed", where())
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("%s: want one YAML document", where())
		}
	case yaml.MappingNode:
		if len(n.Content) > 2*maxMappingKeys {
			return fmt.Errorf("%s: %d keys in one mapping, at most %d", where(), len(n.Content)/2, maxMappingKeys)
		}
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: keys must be plain names", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("line %d: key %q appears twice", k.Line, k.Value)
			}
			seen[k.Value] = true
		}
	case yaml.SequenceNode:
		if len(n.Content) > maxSequence {
			return fmt.Errorf("%s: %d items in one list, at most %d", where(), len(n.Content), maxSequence)
		}
	}
	for _, c := range n.Content {
		if err := checkShape(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkDPSection refuses a trainer.dp that is there but not a mapping
// (`dp:` or `dp: null`), which would otherwise decode as no dp section and
// train without privacy; a mapping's missing fields are zero, and
// trainer.DPSpec's validation refuses those.
func checkDPSection(doc *yaml.Node) error {
	dp := mappingValue(mappingValue(doc.Content[0], "trainer"), "dp")
	if dp != nil && dp.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: trainer.dp must be a mapping {noise_multiplier: σ, clip_norm: C}, or left out for training without privacy", dp.Line)
	}
	return nil
}

// mappingValue is the value of key in the mapping n, or nil when n is not
// a mapping or has no such key.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// ValidID says whether id has the shape the server gives job ids,
// "job-" and 12 lowercase hex digits. Ids cross trust boundaries (a site
// keeps them in its ledger and audit log), so anything else is refused
// before it is used.
func ValidID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "job-")
	if !ok || len(hexPart) != 12 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewID makes a fresh job id (ValidID).
func NewID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "job-" + hex.EncodeToString(b), nil
}

// ValidName says whether s is a safe job name: 1 to 128 characters of
// letters, digits, space, '.', '_' and '-', starting with a letter or a
// digit. Names reach other admins' terminals, so nothing else is allowed.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != ' ' && c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// Validate checks every field; problems are joined, each naming its field.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("job manifest: %s: "+format, append([]any{field}, a...)...))
	}
	if !ValidName(m.Name) {
		bad("name", "required: 1 to 128 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit")
	}
	if m.Workflow != WorkflowFedAvg && m.Workflow != WorkflowSwarm {
		bad("workflow", "%q is not supported (want %s or %s)", m.Workflow, WorkflowFedAvg, WorkflowSwarm)
	}
	if m.Rounds < 1 || m.Rounds > MaxRounds {
		bad("rounds", "%d is not in 1..%d", m.Rounds, MaxRounds)
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
	if m.Evaluation.CrossSite && (m.Workflow != WorkflowSwarm || !m.Evaluation.Test) {
		bad("evaluation.cross_site", "needs workflow: swarm and evaluation.test")
	}
	if len(m.Aggregators) > 0 && m.Workflow != WorkflowSwarm {
		bad("aggregators", "only a swarm job names aggregators")
	}
	eligible := map[string]bool{}
	for i, a := range m.Aggregators {
		switch {
		case a == AllSites:
			bad(fmt.Sprintf("aggregators[%d]", i), "name sites, or leave aggregators out for all of them")
		case eligible[a]:
			bad(fmt.Sprintf("aggregators[%d]", i), "%q listed twice", a)
		case len(m.Sites) > 0 && m.Sites[0] != AllSites && !seen[a]:
			bad(fmt.Sprintf("aggregators[%d]", i), "%q is not one of the job's sites", a)
		}
		eligible[a] = true
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
	if m.Trainer.Custom() {
		m.validateCode(bad)
	} else if err := m.Trainer.Spec().Validate(); err != nil {
		bad("trainer", "%v", err)
	} else if m.Trainer.Script != "" || m.Trainer.ScriptSHA256 != "" {
		bad("trainer.script", "only a trainer of kind %s runs a job's script", KindPyTorch)
	}
	if d := m.Trainer.DP; d != nil {
		if err := d.validate(); err != nil {
			bad("trainer", "%v", err)
		}
	}
	if len(m.PrivacyScope) > maxScopeName {
		bad("privacy_scope", "%d bytes, more than %d", len(m.PrivacyScope), maxScopeName)
	}
	if f := m.Filters; f != nil {
		specs, err := privacy.ParseFilters("filters.task_result_filters", f.Result)
		switch {
		case err != nil:
			bad("filters", "%v", err)
		case len(specs) > MaxJobFilters:
			bad("filters", "%d filters, more than the %d a job may bring (each costs every site a pass over the update)", len(specs), MaxJobFilters)
		}
		m.ResultFilters = specs
	}
	if d := m.Data; d != nil && (d.Features < 1 || d.Features > maxFeatures || d.Classes < 2 || d.Classes > maxClasses) {
		bad("data", "%d features, %d classes: want 1..%d features and 2..%d classes", d.Features, d.Classes, maxFeatures, maxClasses)
	}
	if err := m.Aggregation.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("job manifest: %w", err))
	}
	if m.HE != nil {
		m.validateHE(bad)
	}
	if m.Quantize != "" {
		if _, err := quantize.ByName(m.Quantize); err != nil {
			bad("quantize", "%v", err)
		}
		if m.Workflow != WorkflowFedAvg || m.HE != nil {
			bad("quantize", "streamed models are quantized in FedAvg jobs without he only (not yet in swarm learning; under he the ciphertexts are the encoding)")
		}
	}
	if m.Placement != nil {
		m.validatePlacement(bad, seen)
	}
	if r := m.Resources; r != nil {
		if err := r.Validate(); err != nil {
			bad("resources", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// validateCode checks a custom trainer's pin of its code.
func (m *Manifest) validateCode(bad func(field, format string, a ...any)) {
	t := m.Trainer
	if !validScriptName(t.Script) {
		bad("trainer.script", "%q: want a file name in the job's folder ending .py (letters, digits, '.', '_', '-'; no folders)", envelope.Clip(t.Script, 64))
	}
	if b, err := hex.DecodeString(t.ScriptSHA256); err != nil || len(b) != sha256.Size {
		bad("trainer.script_sha256", "required: the script's SHA-256, 64 hex digits (hearth admin submit prints it)")
	}
	if t.DP != nil {
		bad("trainer.dp", "DP-SGD is the built-in trainers': a job's own script makes no privacy guarantee Hearth can account")
	}
	if t.Params != 0 {
		bad("trainer.params", "the noop trainer's; a script's model has the layout its build() makes")
	}
	for k := range t.Args {
		if slices.Contains(scriptArgNames, k) {
			bad("trainer.args."+envelope.Clip(k, 64), "set by the manifest's own field (trainer.%s, or dataset)", k)
		}
	}
	if _, err := m.Arguments(); err != nil {
		bad("trainer.args", "%v", err)
	}
	// What a job's own trainer does not run with yet: each needs the
	// sites' models built from the script's layout where today the
	// built-in trainers' is assumed.
	switch {
	case m.Workflow != WorkflowFedAvg:
		bad("workflow", "a job's own trainer runs under %s only in this version (%s builds the sites' first model from a built-in trainer)", WorkflowFedAvg, envelope.Clip(m.Workflow, 32))
	case m.HE != nil:
		bad("he", "not yet with a job's own trainer")
	case m.Quantize != "":
		bad("quantize", "not with a job's own trainer: its models travel inline, unquantized")
	}
}

func validScriptName(s string) bool {
	if len(s) < 4 || len(s) > 128 || !strings.HasSuffix(s, ".py") || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// CheckCode checks the code a signed job carries against its manifest's
// pin: exactly the script it names, of the pinned SHA-256, within
// MaxCodeBytes; a job without custom code carries none.
func CheckCode(m *Manifest, code []*hearthv1.JobFile) error {
	if !m.Trainer.Custom() {
		if len(code) > 0 {
			return errors.New("job code: the manifest runs no script, yet code came with it")
		}
		return nil
	}
	if len(code) != 1 || code[0].GetName() != m.Trainer.Script {
		return fmt.Errorf("job code: want exactly the script %q the manifest names, got %d files", m.Trainer.Script, len(code))
	}
	if n := len(code[0].Data); n > MaxCodeBytes {
		return fmt.Errorf("job code: %s is %d bytes, more than %d", m.Trainer.Script, n, MaxCodeBytes)
	}
	sum := sha256.Sum256(code[0].Data)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, m.Trainer.ScriptSHA256) {
		return fmt.Errorf("job code: %s has SHA-256 %s, the signed manifest pins %s", m.Trainer.Script, got, envelope.Clip(m.Trainer.ScriptSHA256, 64))
	}
	return nil
}

// validatePlacement checks the placement section: attested hosts aggregate
// a swarm job's rounds, and they are not among its sites.
func (m *Manifest) validatePlacement(bad func(field, format string, a ...any), sites map[string]bool) {
	p := m.Placement
	if p.Aggregator != PlacementAttested {
		bad("placement.aggregator", "%q is not supported (want %s)", p.Aggregator, PlacementAttested)
	}
	if m.Workflow != WorkflowSwarm {
		bad("placement", "needs workflow: %s (the hosts aggregate the rounds the sites train, sealed site to host)", WorkflowSwarm)
	}
	if len(m.Aggregators) > 0 {
		bad("aggregators", "a job placed on attested hosts names them in placement.hosts, not sites as aggregators")
	}
	if m.HE != nil {
		bad("placement", "not with he")
	}
	if m.Trainer.Custom() {
		bad("placement", "not yet with a job's own trainer: the host makes the initial model from a built-in one")
	}
	if len(p.TEE) == 0 {
		bad("placement.tee", "required: the evidence every host presents (%s, %s)", TEESEVSNP, TEENvidiaGPU)
	}
	kinds := map[string]bool{}
	for i, k := range p.TEE {
		switch {
		case k != TEESEVSNP && k != TEENvidiaGPU:
			bad(fmt.Sprintf("placement.tee[%d]", i), "%q is not one of %s, %s", envelope.Clip(k, 64), TEESEVSNP, TEENvidiaGPU)
		case kinds[k]:
			bad(fmt.Sprintf("placement.tee[%d]", i), "%q listed twice", k)
		}
		kinds[k] = true
	}
	if kinds[TEENvidiaGPU] && !kinds[TEESEVSNP] {
		bad("placement.tee", "%s only with %s: GPU evidence attests the GPU, not the code that holds the host's key", TEENvidiaGPU, TEESEVSNP)
	}
	if m.Evaluation.CrossSite {
		bad("evaluation.cross_site", "not with placement: each site's last local model, sent to every other site, would show its last update outside the host")
	}
	if len(p.Hosts) == 0 || len(p.Hosts) > MaxHosts {
		bad("placement.hosts", "%d hosts: want 1..%d aggregation hosts", len(p.Hosts), MaxHosts)
	}
	hosts := map[string]bool{}
	for i, h := range p.Hosts {
		switch {
		case pki.ValidName(h) != nil:
			bad(fmt.Sprintf("placement.hosts[%d]", i), "%q is not a participant name", envelope.Clip(h, 64))
		case hosts[h]:
			bad(fmt.Sprintf("placement.hosts[%d]", i), "%q listed twice", h)
		case sites[h]:
			bad(fmt.Sprintf("placement.hosts[%d]", i), "%q is one of the job's sites", h)
		}
		hosts[h] = true
	}
}

// validateHE checks the he section and what it rules out: the server of
// such a job sees no site's update alone, so it can neither bound, screen
// nor rank one, and only the weighted mean (FedAvg) of a sum is possible.
func (m *Manifest) validateHE(bad func(field, format string, a ...any)) {
	if m.Workflow != WorkflowFedAvg {
		bad("he", "needs workflow: %s (the server adds the ciphertexts; not yet in swarm learning)", WorkflowFedAvg)
	}
	t := m.HE.Threshold
	switch {
	case t != 0 && (t < 2 || t > he.MaxParties):
		bad("he.threshold", "%d is not in 2..%d (with 1, any one site could decrypt what it is handed)", t, he.MaxParties)
	case len(m.Sites) > 0 && m.Sites[0] != AllSites && len(m.Sites) > he.MaxParties:
		bad("sites", "%d sites: homomorphic encryption is shared among at most %d", len(m.Sites), he.MaxParties)
	case len(m.Sites) > 0 && m.Sites[0] != AllSites && t > len(m.Sites):
		bad("he.threshold", "%d is more than the %d sites listed", t, len(m.Sites))
	case len(m.Sites) > 0 && m.Sites[0] != AllSites && t != 0 && 2*t <= len(m.Sites):
		bad("he.threshold", "%d is no majority of the %d sites listed (two groups of %d could each decrypt a different sum of one round)", t, len(m.Sites), t)
	}
	if t > m.MinSites && m.MinSites >= 1 {
		bad("he.threshold", "%d is more than min_sites %d: a round that min_sites lets close could not be decrypted", t, m.MinSites)
	}
	a := m.Aggregation
	why := "a job under he has its sum decrypted, never one site's update, so the server cannot %s"
	if a.Method != "" && a.Method != aggregator.FedAvg {
		bad("aggregation.method", why+" (only fedavg)", "rank or select updates")
	}
	if a.NormBound != 0 || a.RelativeNormBound != 0 || a.OnViolation != "" {
		bad("aggregation", why+" (norm_bound, relative_norm_bound, on_violation): bound updates at the sites (a gaussian_privacy filter clips them)", "bound one")
	}
	if a.Screen == aggregator.ScreenKrum || a.ScreenRatio != 0 || a.Trim != 0 || a.TrimFraction != 0 || a.KrumF != 0 || a.KrumM != 0 {
		bad("aggregation", why+" (screen, screen_ratio, trim, krum)", "screen or trim one")
	}
}
