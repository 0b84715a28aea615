package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestPOCReachesAccuracy runs the newcomer's command, smaller, and checks
// what it learned.
func TestPOCReachesAccuracy(t *testing.T) {
	for _, tc := range []struct {
		dataset string
		sites   int
		floor   float64
	}{
		{"optdigits", 3, 0.93},
		{"wdbc", 3, 0.95},
	} {
		t.Run(tc.dataset, func(t *testing.T) {
			ws := filepath.Join(t.TempDir(), "poc")
			out, err := exec.Command(hearthBin, "poc", "--sites", fmt.Sprint(tc.sites), "--dataset", tc.dataset,
				"--workspace", ws, "--json").Output()
			if err != nil {
				t.Fatalf("hearth poc: %v\n%s", err, out)
			}
			var sum struct {
				Status  string             `json:"status"`
				TestAcc float64            `json:"test_accuracy"`
				Samples int64              `json:"test_samples"`
				Rounds  []json.RawMessage  `json:"rounds"`
				Files   map[string]string  `json:"files"`
				Sites   []cluster.SiteData `json:"sites"`
			}
			if err := json.Unmarshal(out, &sum); err != nil {
				t.Fatalf("summary: %v\n%s", err, out)
			}
			if sum.Status != "finished" || sum.TestAcc < tc.floor {
				t.Fatalf("status %s, test accuracy %.4f (floor %.2f)", sum.Status, sum.TestAcc, tc.floor)
			}
			t.Logf("%s: %d sites, %d rounds, test accuracy %.2f%% on %d samples", tc.dataset, len(sum.Sites), len(sum.Rounds), 100*sum.TestAcc, sum.Samples)
			for _, f := range []string{"model", "metrics", "plot"} {
				if fi, err := os.Stat(sum.Files[f]); err != nil || fi.Size() == 0 {
					t.Errorf("%s file %q: %v", f, sum.Files[f], err)
				}
			}
		})
	}
}

// learningProject is a running project with data at every site and an
// admin console in the test process.
type learningProject struct {
	*project
	admin *coordinator.Client
	node  *node.Node
}

func startLearning(t testing.TB, sites int) *learningProject {
	t.Helper()
	return startLearningWith(t, projectSpec{provisioned: sites, running: sites})
}

func startLearningWith(t testing.TB, spec projectSpec) *learningProject {
	t.Helper()
	p := startProjectWith(t, spec)
	if _, err := p.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	n, admin := p.console(t, p.Admin)
	return &learningProject{project: p, node: n, admin: admin}
}

// console starts an admin's console in the test process.
func (p *project) console(t testing.TB, name string) (*node.Node, *coordinator.Client) {
	t.Helper()
	n := p.inProcess(t, name, node.Options{})
	k := n.Kit
	return n, &coordinator.Client{Bus: n.Bridge, Streams: n.Streams, Server: "server",
		SignJob: func(m []byte) (*hearthv1.SignedJob, error) { return job.Sign(m, k.Cert, k.Key) }}
}

// jobSpec is a small optdigits job.
type jobSpec struct {
	rounds, minSites int
	timeout          string // round timeout
	trainer          string // YAML flow mapping
}

// slowTrainer makes rounds long enough (~0.1-0.3 s) to act in the middle of
// a job.
const slowTrainer = "{kind: mlp, hidden: [128], learning_rate: 0.003, epochs: 6, batch_size: 32, seed: 1}"

func (j jobSpec) manifest() string {
	tr := j.trainer
	if tr == "" {
		tr = "{kind: logreg, learning_rate: 0.01, epochs: 1, batch_size: 32, seed: 1}"
	}
	return fmt.Sprintf(`name: test-job
workflow: fedavg
rounds: %d
sites: ["@all"]
min_sites: %d
round_timeout: %s
dataset: optdigits
trainer: %s
evaluation: {validation: true, test: true}
`, j.rounds, j.minSites, j.timeout, tr)
}

func (lp *learningProject) submit(t testing.TB, manifestText string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(manifestText), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := lp.admin.Submit(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitRound waits until the job has completed at least n rounds.
func (lp *learningProject) waitRound(t testing.TB, id string, n int64) *hearthv1.JobInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := lp.admin.Status(context.Background(), id)
		if err == nil && (info.CompletedRounds >= n || coordinator.Ended(info.Status)) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not reach round %d: %v %v", id, n, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (lp *learningProject) waitEnd(t testing.TB, id string, limit time.Duration) *hearthv1.JobInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	info, err := lp.admin.Follow(ctx, id, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestPOCWithDifferentialPrivacy: `hearth poc --privacy dp` trains with
// DP-SGD at every site, each within ε 8 at δ 1e-5 over the whole job by
// its own accountant (the ε each reports is in every round's summary),
// and still learns: optdigits, 5 sites, alpha 0.5, at least 88% (94%
// without privacy).
func TestPOCWithDifferentialPrivacy(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "poc")
	out, err := exec.Command(hearthBin, "poc", "--privacy", "dp", "--epsilon", "8", "--workspace", ws, "--json").Output()
	if err != nil {
		t.Fatalf("hearth poc --privacy dp: %v\n%s", err, out)
	}
	var sum struct {
		Status  string  `json:"status"`
		TestAcc float64 `json:"test_accuracy"`
		Rounds  []struct {
			Epsilon float64 `json:"epsilon"`
		} `json:"rounds"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	if sum.Status != "finished" || sum.TestAcc < 0.88 || len(sum.Rounds) == 0 {
		t.Fatalf("status %s, test accuracy %.4f (floor 0.88), %d rounds", sum.Status, sum.TestAcc, len(sum.Rounds))
	}
	for i, r := range sum.Rounds {
		if r.Epsilon <= 0 || r.Epsilon > 8 || i > 0 && r.Epsilon < sum.Rounds[i-1].Epsilon {
			t.Fatalf("round %d: the largest ε spent is %v (rounds: %+v); want it growing, within 8", i+1, r.Epsilon, sum.Rounds)
		}
	}
	last := sum.Rounds[len(sum.Rounds)-1].Epsilon
	if last < 7 {
		t.Fatalf("the sites spent at most ε %v of their 8: each calibrates its noise to spend the budget", last)
	}
	t.Logf("DP-SGD at ε ≤ 8 (δ 1e-5): test accuracy %.2f%%; ε by round %.2f .. %.2f", 100*sum.TestAcc, sum.Rounds[0].Epsilon, last)
}

// TestPOCWithHomomorphicEncryption: hearth poc --privacy he trains the
// POC's model under threshold homomorphic encryption (3 of 5 sites decrypt
// each round's sum) to the POC's accuracy floor, and says so.
func TestPOCWithHomomorphicEncryption(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "poc")
	out, err := exec.Command(hearthBin, "poc", "--privacy", "he", "--workspace", ws, "--json").Output()
	if err != nil {
		t.Fatalf("hearth poc --privacy he: %v\n%s", err, out)
	}
	var sum struct {
		Status    string  `json:"status"`
		TestAcc   float64 `json:"test_accuracy"`
		Threshold int     `json:"he_threshold"`
		Rounds    []struct {
			Bytes int64 `json:"bytes_moved"`
		} `json:"rounds"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	if sum.Status != "finished" || sum.TestAcc < 0.93 || sum.Threshold != 3 || len(sum.Rounds) == 0 {
		t.Fatalf("status %s, test accuracy %.4f (floor 0.93), threshold %d, %d rounds", sum.Status, sum.TestAcc, sum.Threshold, len(sum.Rounds))
	}
	// Per round: 5 ciphertexts to the server, and all 5 to each of the 3
	// decrypting sites (61,510 bytes each for the POC's 650 values).
	if b := sum.Rounds[0].Bytes; b < 8*61_000 {
		t.Fatalf("round 1 moved %d bytes: not the encrypted updates", b)
	}
	t.Logf("under homomorphic encryption: test accuracy %.2f%%, %d bytes moved a round", 100*sum.TestAcc, sum.Rounds[0].Bytes)
}
