package job_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
	"google.golang.org/protobuf/proto"
)

const good = `name: digits
workflow: fedavg
rounds: 10
sites: ["@all"]
min_sites: 2
round_timeout: 30s
dataset: optdigits
trainer: {kind: logreg, learning_rate: 0.01, epochs: 2, batch_size: 32, seed: 1}
evaluation: {validation: true, test: true}
`

func TestParseManifestRefuses(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"unknown field", "rounds: 10", "rounds: 10\nepochs: 3", "field epochs not found"},
		{"workflow", "fedavg", "cyclic", `workflow: "cyclic" is not supported`},
		{"rounds", "rounds: 10", "rounds: 0", "rounds: 0 is not in"},
		{"no sites", `sites: ["@all"]`, "sites: []", "sites: required"},
		{"@all with names", `["@all"]`, `["@all", "site-1"]`, "@all must stand alone"},
		{"duplicate site", `["@all"]`, `["site-1", "site-1"]`, `"site-1" listed twice`},
		{"min_sites above sites", `sites: ["@all"]`, `sites: ["site-1"]`, "min_sites: 2 is more than the 1 sites"},
		{"round timeout", "30s", "10ms", "round_timeout: 10ms"},
		{"dataset", "optdigits", "imagenet", `dataset: "imagenet" is not one of`},
		{"trainer", "kind: logreg", "kind: transformer", "trainer:"},
		{"duplicate key", "rounds: 10", "rounds: 10\nrounds: 11", `key "rounds" appears twice`},
		{"duplicate nested key", "seed: 1}", "seed: 1, seed: 2}", `key "seed" appears twice`},
		{"anchor and alias", "evaluation: {validation: true, test: true}", "evaluation: &e {validation: true, test: true}\ndata: *e", "anchors and aliases"},
		{"explicit tag", "rounds: 10", "rounds: !!int 10", "explicit tags"},
		{"two documents", "rounds: 10", "rounds: 10\n---\nrounds: 3", "exactly one YAML document"},
		{"terminal escape in name", "name: digits", "name: \"digits\\e[2J\"", "name: required"},
		{"newline in name", "name: digits", "name: \"digits\\nrow\"", "name: required"},
		{"bad data shape", "rounds: 10", "rounds: 10\ndata: {features: 0, classes: 10}", "data: 0 features"},
		{"too large", "rounds: 10", "rounds: 10\n#" + strings.Repeat("x", job.MaxManifestBytes), "bytes, more than"},
		{"dp empty", "seed: 1}", "seed: 1, dp: }", "trainer.dp must be a mapping"},
		{"dp null", "seed: 1}", "seed: 1, dp: null}", "trainer.dp must be a mapping"},
		{"dp a number", "seed: 1}", "seed: 1, dp: 1.1}", "trainer.dp must be a mapping"},
		{"dp a list", "seed: 1}", "seed: 1, dp: [1.1, 1]}", "trainer.dp must be a mapping"},
		{"dp no fields", "seed: 1}", "seed: 1, dp: {}}", "dp noise multiplier 0"},
		{"dp without clip norm", "seed: 1}", "seed: 1, dp: {noise_multiplier: 1.1}}", "dp clip norm 0"},
		{"dp without noise", "seed: 1}", "seed: 1, dp: {clip_norm: 1}}", "dp noise multiplier 0"},
		{"dp negative noise", "seed: 1}", "seed: 1, dp: {noise_multiplier: -1, clip_norm: 1}}", "dp noise multiplier -1"},
		{"dp NaN clip norm", "seed: 1}", "seed: 1, dp: {noise_multiplier: 1, clip_norm: .nan}}", "dp clip norm NaN"},
		{"dp unknown field", "seed: 1}", "seed: 1, dp: {noise_multiplier: 1, clip_norm: 1, budget: 8}}", "field budget not found"},
		{"dp both a noise multiplier and a target", "seed: 1}", "seed: 1, dp: {noise_multiplier: 1, clip_norm: 1, epsilon: 8}}", "one of them"},
		{"dp a target too large", "seed: 1}", "seed: 1, dp: {epsilon: 1000, clip_norm: 1}}", "epsilon 1000 is not in"},
		{"too many filters", "seed: 1}", "seed: 1}\nfilters: {task_result_filters: [" + strings.Repeat("{path: quantize, args: {codec: float16}}, ", 9) + "]}", "more than the 8"},
		{"an unknown filter", "seed: 1}", "seed: 1}\nfilters: {task_result_filters: [{path: my.Filter}]}", "unknown filter"},
		{"a filter argument out of range", "seed: 1}", "seed: 1}\nfilters: {task_result_filters: [{path: percentile_privacy, args: {percentile: 200}}]}", "percentile"},
		{"dp a delta too large", "seed: 1}", "seed: 1, dp: {epsilon: 8, delta: 0.5, clip_norm: 1}}", "delta 0.5 is not in"},
		{"dp seed", "seed: 1}", "seed: 1, dp: {noise_multiplier: 1, clip_norm: 1, seed: 7}}", "field seed not found"},
		{"dp duplicate key", "seed: 1}", "seed: 1, dp: {noise_multiplier: 1, clip_norm: 1, clip_norm: 2}}", `key "clip_norm" appears twice`},
		{"dp on noop", "kind: logreg", "kind: noop, params: 10, dp: {noise_multiplier: 1, clip_norm: 1}", "no dp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := job.ParseManifest([]byte(strings.Replace(good, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	m, err := job.ParseManifest([]byte(good))
	if err != nil || m.Rounds != 10 || m.RoundTimeout != 30*time.Second || m.Trainer.Spec().Kind != "logreg" {
		t.Fatalf("good manifest: %+v, %v", m, err)
	}
}

// A trainer's dp section reaches the trainer spec the sites run; without
// one they train without privacy.
func TestParseManifestDP(t *testing.T) {
	m, err := job.ParseManifest([]byte(strings.Replace(good, "seed: 1}", "seed: 1,\n  dp: {noise_multiplier: 1.1, clip_norm: 0.5}}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	spec := m.Trainer.Spec()
	if spec.DP == nil || spec.DP.NoiseMultiplier != 1.1 || spec.DP.ClipNorm != 0.5 || spec.DP.Seed != nil {
		t.Fatalf("trainer spec DP = %+v", spec.DP)
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	block := strings.Replace(good, "trainer: {kind: logreg, learning_rate: 0.01, epochs: 2, batch_size: 32, seed: 1}",
		"trainer:\n  kind: mlp\n  hidden: [64]\n  learning_rate: 0.1\n  epochs: 2\n  batch_size: 64\n  seed: 1\n  dp:\n    noise_multiplier: 1.2\n    clip_norm: 1.0\n", 1)
	if m, err := job.ParseManifest([]byte(block)); err != nil || m.Trainer.Spec().DP.NoiseMultiplier != 1.2 {
		t.Fatalf("block style dp: %+v, %v", m, err)
	}
	if m, _ := job.ParseManifest([]byte(good)); m.Trainer.Spec().DP != nil {
		t.Fatal("a manifest without dp gave a private trainer spec")
	}
}

func TestVerifyRefuses(t *testing.T) {
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@org.org", "org", pki.KindAdmin)
	site := p.Issue(t, "site-1", "org", pki.KindSite)
	stranger := pkitest.New(t).Issue(t, "admin@org.org", "org", pki.KindAdmin)
	revoked := p.Issue(t, "gone@org.org", "org", pki.KindAdmin)
	p.Revoke(t, 1, revoked)
	sign := func(part *pkitest.Participant) *hearthv1.SignedJob {
		sj, err := job.Sign([]byte(good), part.Cert, part.Key)
		if err != nil {
			t.Fatal(err)
		}
		return sj
	}
	genuine := sign(admin)
	if v, err := job.Verify(genuine, p.Trust, time.Now()); err != nil || v.Submitter.Name != "admin@org.org" {
		t.Fatalf("genuine job: %v %v", v, err)
	}
	cases := []struct {
		name string
		sj   *hearthv1.SignedJob
		want error
		text string
	}{
		{"changed after signing", with(genuine, func(sj *hearthv1.SignedJob) {
			sj.Manifest = []byte(strings.Replace(good, "rounds: 10", "rounds: 11", 1))
		}),
			job.ErrSignature, "does not match the manifest"},
		{"signature by another key", with(genuine, func(sj *hearthv1.SignedJob) { sj.Signature = sign(site).Signature }), job.ErrSignature, "does not match the manifest"},
		{"signed by a site", sign(site), pki.ErrWrongKind, "kind"},
		{"signed by another project's admin", sign(stranger), pki.ErrUnknownAuthority, "root CA"},
		{"signed by a revoked admin", sign(revoked), pki.ErrRevoked, "revoked"},
		{"no signature", &hearthv1.SignedJob{Manifest: genuine.Manifest, SubmitterCert: genuine.SubmitterCert}, job.ErrSignature, "required"},
		{"nonce changed", with(genuine, func(sj *hearthv1.SignedJob) { sj.Nonce = make([]byte, job.NonceSize) }), job.ErrSignature, "does not match"},
		{"not-after moved", with(genuine, func(sj *hearthv1.SignedJob) { sj.NotAfterUnixNano += int64(time.Hour) }), job.ErrSignature, "does not match"},
		{"no nonce", with(genuine, func(sj *hearthv1.SignedJob) { sj.Nonce = nil }), job.ErrSignature, "nonce is 0 bytes"},
		{"nil", nil, job.ErrSignature, "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := job.Verify(tc.sj, p.Trust, time.Now())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	if _, err := job.Sign([]byte("rounds: nope"), admin.Cert, admin.Key); err == nil {
		t.Fatal("an invalid manifest was signed")
	}
}

func with(sj *hearthv1.SignedJob, change func(*hearthv1.SignedJob)) *hearthv1.SignedJob {
	c := proto.Clone(sj).(*hearthv1.SignedJob)
	change(c)
	return c
}

func TestFreshness(t *testing.T) {
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@org.org", "org", pki.KindAdmin)
	now := time.Now()
	sj, err := job.SignAt([]byte(good), admin.Cert, admin.Key, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, err := job.Verify(sj, p.Trust, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Fresh(now.Add(59 * time.Second)); err != nil {
		t.Fatalf("within its lifetime: %v", err)
	}
	if err := v.Fresh(now.Add(61 * time.Second)); !errors.Is(err, job.ErrExpired) || !strings.Contains(err.Error(), "has passed") {
		t.Fatalf("past its not-after: %v", err)
	}
	if err := v.Fresh(now.Add(-job.MaxLifetime)); !errors.Is(err, job.ErrExpired) || !strings.Contains(err.Error(), "ahead") {
		t.Fatalf("not-after too far ahead: %v", err)
	}
	if _, err := job.SignAt([]byte(good), admin.Cert, admin.Key, now, job.MaxLifetime+time.Second); err == nil {
		t.Fatal("signed a job for longer than MaxLifetime")
	}
	again, _ := job.SignAt([]byte(good), admin.Cert, admin.Key, now, time.Minute)
	if w, _ := job.Verify(again, p.Trust, now); w.Nonce == v.Nonce {
		t.Fatal("two signatures of one manifest share a nonce")
	}
}

// TestParseCostIsLinear: yaml.v3's own duplicate-key check is quadratic in
// a mapping's keys; the manifest parser refuses such input before it gets
// there, in time that grows no faster than the input.
func TestParseCostIsLinear(t *testing.T) {
	hostile := func(keys int) []byte {
		var b strings.Builder
		for i := range keys {
			fmt.Fprintf(&b, "k%d: 1\n", i)
		}
		return []byte(b.String())
	}
	small, large := hostile(200), hostile(1600) // 8x the input; within MaxManifestBytes
	if len(large) > job.MaxManifestBytes {
		t.Fatalf("test input of %d bytes is over the limit", len(large))
	}
	cost := func(data []byte) time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			if _, err := job.ParseManifest(data); err == nil || !strings.Contains(err.Error(), "keys in one mapping") {
				t.Fatalf("hostile manifest: %v", err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	cs, cl := cost(small), cost(large)
	// Linear: about 8x. Quadratic would be about 64x; allow generous noise.
	if cl > 24*cs+time.Millisecond {
		t.Fatalf("8x the keys cost %v against %v: not linear", cl, cs)
	}
	t.Logf("%d bytes: %v; %d bytes: %v", len(small), cs, len(large), cl)
}

func TestModelWire(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{
		{Name: "dense0/weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-7, -1e7}},
		{Name: "dense0/bias", Shape: []int{3}, Data: []float32{0.25, 0, -0.5}},
	}}
	back, err := job.FromWire(job.ToWire(m))
	if err != nil {
		t.Fatal(err)
	}
	if back.SameLayout(m) != nil || back.Tensors[0].Data[5] != -1e7 || back.Tensors[1].Data[2] != -0.5 {
		t.Fatalf("round trip changed the model: %+v", back)
	}
	bad := []struct {
		name string
		w    *hearthv1.Model
		want string
	}{
		{"empty", &hearthv1.Model{}, "no tensors"},
		{"short data", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{2}, Data: make([]byte, 4)}}}, "4 data bytes"},
		{"zero dimension", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{0}}}}, "out of range"},
		{"huge", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{1 << 20, 1 << 20}}}}, "larger than"},
		{"NaN", job.ToWire(&model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{1}, Data: []float32{float32(nan())}}}}), "model"},
		{"duplicate names", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{1}, Data: make([]byte, 4)}, {Name: "w", Shape: []int64{1}, Data: make([]byte, 4)}}}, "model"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := job.FromWire(tc.w); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

// TestPreflightJobsNeverRun: a job signed for a dry run verifies only as
// one, and a job signed to run never as a dry run's, so a server cannot
// turn a pre-flight into a job.
func TestPreflightJobsNeverRun(t *testing.T) {
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@org.org", "org", pki.KindAdmin)
	now := time.Now()
	dry, err := job.SignPreflight([]byte(good), admin.Cert, admin.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.VerifyPreflight(dry, p.Trust, now); err != nil {
		t.Fatalf("VerifyPreflight(a dry run's job) = %v", err)
	}
	if _, err := job.Verify(dry, p.Trust, now); !errors.Is(err, job.ErrSignature) {
		t.Fatalf("Verify(a dry run's job) = %v, want ErrSignature", err)
	}
	run, err := job.Sign([]byte(good), admin.Cert, admin.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.VerifyPreflight(run, p.Trust, now); !errors.Is(err, job.ErrSignature) {
		t.Fatalf("VerifyPreflight(a job to run) = %v, want ErrSignature", err)
	}
}

func TestManifestFilters(t *testing.T) {
	m, err := job.ParseManifest([]byte(good + "privacy_scope: private\nfilters:\n  task_result_filters:\n    - {path: percentile_privacy, args: {percentile: 5, gamma: 0.1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.PrivacyScope != "private" || len(m.ResultFilters) != 1 || m.ResultFilters[0].Name != "percentile_privacy" {
		t.Fatalf("scope %q, filters %v", m.PrivacyScope, m.ResultFilters)
	}
}

// TestParseManifestHE: the he section, and what it rules out (the server
// of such a job sees only a decrypted sum, so it can neither bound nor
// screen one site's update, and it aggregates in FedAvg only).
func TestParseManifestHE(t *testing.T) {
	withHE := good + "he: {threshold: 2}\n"
	m, err := job.ParseManifest([]byte(withHE))
	if err != nil || m.HE == nil || m.HE.Threshold != 2 {
		t.Fatalf("he: %+v, %v", m.HE, err)
	}
	if m, err := job.ParseManifest([]byte(good + "he: {}\n")); err != nil || m.HE == nil || m.HE.Threshold != 0 {
		t.Fatalf("he: {} (a majority): %+v, %v", m, err)
	}
	for _, tc := range []struct{ name, manifest, want string }{
		{"a threshold of one", good + "he: {threshold: 1}\n", "he.threshold: 1 is not in 2..64"},
		{"a threshold above min_sites", good + "he: {threshold: 3}\n", "more than min_sites 2"},
		{"a threshold above the sites listed", strings.Replace(good, `["@all"]`, `[a, b]`, 1) + "he: {threshold: 3}\n", "more than the 2 sites listed"},
		{"a threshold that is no majority", strings.Replace(good, `["@all"]`, `[a, b, c, d]`, 1) + "he: {threshold: 2}\n", "no majority of the 4 sites"},
		{"swarm", strings.Replace(good, "workflow: fedavg", "workflow: swarm", 1) + "he: {}\n", "needs workflow: fedavg"},
		{"a robust method", good + "he: {}\naggregation: {method: median}\n", "aggregation.method"},
		{"a norm bound", good + "he: {}\naggregation: {norm_bound: 5}\n", "norm_bound"},
		{"the Krum screen", good + "he: {}\naggregation: {screen: krum}\n", "screen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := job.ParseManifest([]byte(tc.manifest)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := job.ParseManifest([]byte(good + "he: {}\naggregation: {max_share: 0.5}\n")); err != nil {
		t.Fatalf("a share cap applies to the weights, which are public: %v", err)
	}
}

func TestParseManifestPlacement(t *testing.T) {
	swarm := strings.Replace(strings.Replace(good, "workflow: fedavg", "workflow: swarm", 1), `["@all"]`, `[site-1, site-2]`, 1)
	placed := swarm + "placement: {aggregator: attested, tee: [sev-snp, nvidia-gpu], hosts: [agg-1, agg-2]}\n"
	m, err := job.ParseManifest([]byte(placed))
	if err != nil || !m.Attested() || len(m.Placement.Hosts) != 2 || len(m.Placement.TEE) != 2 {
		t.Fatalf("placement: %+v, %v", m.Placement, err)
	}
	for _, tc := range []struct{ name, manifest, want string }{
		{"fedavg", strings.Replace(placed, "workflow: swarm", "workflow: fedavg", 1), "placement: needs workflow: swarm"},
		{"another placement", strings.Replace(placed, "aggregator: attested", "aggregator: anywhere", 1), `placement.aggregator: "anywhere" is not supported`},
		{"no evidence asked for", strings.Replace(placed, "tee: [sev-snp, nvidia-gpu]", "tee: []", 1), "placement.tee: required"},
		{"an unknown TEE", strings.Replace(placed, "nvidia-gpu]", "tdx]", 1), `placement.tee[1]: "tdx" is not one of`},
		{"a TEE twice", strings.Replace(placed, "nvidia-gpu]", "sev-snp]", 1), `placement.tee[1]: "sev-snp" listed twice`},
		{"GPU evidence alone", strings.Replace(placed, "tee: [sev-snp, nvidia-gpu]", "tee: [nvidia-gpu]", 1), "nvidia-gpu only with sev-snp"},
		{"cross-site evaluation", strings.Replace(placed, "evaluation: {validation: true, test: true}", "evaluation: {validation: true, test: true, cross_site: true}", 1), "evaluation.cross_site: not with placement"},
		{"no hosts", strings.Replace(placed, "hosts: [agg-1, agg-2]", "hosts: []", 1), "placement.hosts: 0 hosts"},
		{"a host twice", strings.Replace(placed, "agg-2]", "agg-1]", 1), `placement.hosts[1]: "agg-1" listed twice`},
		{"a site as host", strings.Replace(placed, "agg-2]", "site-2]", 1), `placement.hosts[1]: "site-2" is one of the job's sites`},
		{"a bad host name", strings.Replace(placed, "agg-2]", "'a*'] ", 1), `placement.hosts[1]: "a*" is not a participant name`},
		{"sites as aggregators too", placed + "aggregators: [site-1]\n", "names them in placement.hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := job.ParseManifest([]byte(tc.manifest)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseManifestResources(t *testing.T) {
	m, err := job.ParseManifest([]byte(good + "resources: {num_of_gpus: 1, mem_per_gpu_in_GiB: 16}\n"))
	if err != nil || m.Resources == nil || m.Resources.GPUs != 1 || m.Resources.MemPerGPU != 16 {
		t.Fatalf("resources: %+v, %v", m.Resources, err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"negative GPUs", "resources: {num_of_gpus: -1}\n", "resources: num_of_gpus -1"},
		{"memory without GPUs", "resources: {mem_per_gpu_in_GiB: 8}\n", "without num_of_gpus"},
		{"an unknown key", "resources: {gpus: 1}\n", "gpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := job.ParseManifest([]byte(good + tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCustomTrainerIsPinned(t *testing.T) {
	script := []byte("def model(f, c): ...\n")
	sum := sha256.Sum256(script)
	pin := hex.EncodeToString(sum[:])
	custom := strings.Replace(good, "trainer: {kind: logreg", "trainer: {kind: pytorch, script: train.py, script_sha256: \""+pin+"\"", 1)
	m, err := job.ParseManifest([]byte(custom))
	if err != nil || !m.Trainer.Custom() {
		t.Fatalf("a pinned script: %+v, %v", m, err)
	}
	if err := job.CheckCode(m, []*hearthv1.JobFile{{Name: "train.py", Data: script}}); err != nil {
		t.Fatalf("the pinned code: %v", err)
	}
	for _, tc := range []struct {
		name string
		code []*hearthv1.JobFile
		want string
	}{
		{"no code", nil, "want exactly the script"},
		{"another file", []*hearthv1.JobFile{{Name: "other.py", Data: script}}, "want exactly the script"},
		{"two files", []*hearthv1.JobFile{{Name: "train.py", Data: script}, {Name: "x.py"}}, "got 2 files"},
		{"changed code", []*hearthv1.JobFile{{Name: "train.py", Data: append(script, '#')}}, "the signed manifest pins"},
		{"oversized code", []*hearthv1.JobFile{{Name: "train.py", Data: make([]byte, job.MaxCodeBytes+1)}}, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := job.CheckCode(m, tc.code); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckCode = %v, want %q", err, tc.want)
			}
		})
	}
	withArgs, err := job.ParseManifest([]byte(strings.Replace(custom, "seed: 1}", "seed: 1, hidden: [32], args: {dropout: 0.1, layers: {norm: true}}}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if args, err := withArgs.Arguments(); err != nil || string(args) != `{"batch_size":32,"dataset":"optdigits","dropout":0.1,"epochs":2,"hidden":[32],"layers":{"norm":true},"learning_rate":0.01,"seed":1}` {
		t.Fatalf("the script's arguments: %s, %v", args, err)
	}
	plain, _ := job.ParseManifest([]byte(good))
	if err := job.CheckCode(plain, []*hearthv1.JobFile{{Name: "train.py", Data: script}}); err == nil {
		t.Fatal("code rode along a job that runs none")
	}
	for _, tc := range []struct{ name, manifest, want string }{
		{"no pin", strings.Replace(custom, ", script_sha256: \""+pin+"\"", "", 1), "trainer.script_sha256: required"},
		{"a path for a script", strings.Replace(custom, "script: train.py", "script: ../train.py", 1), "trainer.script"},
		{"not Python", strings.Replace(custom, "script: train.py", "script: train.sh", 1), "ending .py"},
		{"a script for a built-in trainer", strings.Replace(good, "trainer: {kind: logreg", "trainer: {kind: logreg, script: train.py", 1), "only a trainer of kind pytorch"},
		{"DP-SGD claimed for a script", strings.Replace(custom, "seed: 1}", "seed: 1, dp: {noise_multiplier: 1, clip_norm: 1}}", 1), "trainer.dp"},
		{"an argument the manifest sets", strings.Replace(custom, "seed: 1}", "seed: 1, args: {epochs: 50}}", 1), "trainer.args.epochs: set by the manifest's own field"},
		{"a script in swarm learning", strings.Replace(custom, "workflow: fedavg", "workflow: swarm", 1), "runs under fedavg only"},
		{"a script under he", custom + "he: {threshold: 2}\n", "he: not yet with a job's own trainer"},
		{"a parameter count for a script", strings.Replace(custom, "seed: 1}", "seed: 1, params: 100}", 1), "trainer.params"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := job.ParseManifest([]byte(tc.manifest)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest = %v, want %q", err, tc.want)
			}
		})
	}
}
