package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	codetrainer "github.com/hearthfl/hearth/plugins/trainer"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// byocJob writes a job folder whose trainer is the job's own script, pinned
// by pin (its real SHA-256 when pin is empty).
func byocJob(t *testing.T, pin string) string {
	t.Helper()
	dir := t.TempDir()
	script := []byte("import torch\n\ndef model(features, classes):\n    return torch.nn.Linear(features, classes)\n")
	if err := os.WriteFile(filepath.Join(dir, "train.py"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	if pin == "" {
		sum := sha256.Sum256(script)
		pin = hex.EncodeToString(sum[:])
	}
	manifest := `name: byoc
workflow: fedavg
rounds: 2
sites: ["@all"]
min_sites: 1
round_timeout: 30s
dataset: optdigits
trainer: {kind: pytorch, script: train.py, script_sha256: "` + pin + `", learning_rate: 0.01, epochs: 1, batch_size: 32, seed: 1}
evaluation: {validation: true, test: true}
`
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestJobCodeIsCheckedEverywhere: a job bringing its own code needs the
// byoc right at the server and again at each site (each by its own
// authorization.json), must carry exactly the code its signed manifest
// pins, and passes only a site whose components.json allows its trainer
// and whose checker plugins (the real imports checker) let it in;
// every refusal names its reason, and pre-flight shows each site's.
func TestJobCodeIsCheckedEverywhere(t *testing.T) {
	const lead = "lead@hearth.local"
	noByoc := strings.Replace(readDefault(t, "authorization.json"), `"project_admin": "any"`, `"project_admin": {"submit_job": "any", "view": "any", "byoc": "none"}`, 1)
	checkerBin := filepath.Join(t.TempDir(), "hearth-checker-imports")
	if out, err := exec.Command("go", "build", "-o", checkerBin, "../cmd/hearth-checker-imports").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(checkerBin)
	if err != nil {
		t.Fatal(err)
	}
	binSum := sha256.Sum256(bin)
	withChecker := func(pin, config string) string {
		return `{"trainers": ["pytorch"], "workflows": ["fedavg"], "filters": [], "scripts": ["any"],
		  "checkers": [{"name": "imports", "path": "` + checkerBin + `", "sha256": "` + pin + `", "config": ` + config + `}]}`
	}
	lp := startLearningWith(t, projectSpec{provisioned: 5, running: 5,
		admins: []provision.AdminSpec{{Name: lead, Org: "hearth", Role: pki.RoleLead}},
		local: func(name string) map[string]string {
			switch name {
			case "server": // the server: a lead may submit, but bring no code
				return map[string]string{"authorization.json": strings.Replace(readDefault(t, "authorization.json"), `"byoc": "any"`, `"byoc": "none"`, 1)}
			case "site-2": // site-2: the project admin may submit, but bring no code here
				return map[string]string{"authorization.json": noByoc}
			case "site-3": // site-3: no job's own trainer
				return map[string]string{"components.json": `{"trainers": ["logreg", "mlp"], "workflows": ["fedavg", "swarm"], "filters": [], "scripts": []}`}
			case "site-4": // site-4: a checker whose policy lets scripts import math only
				return map[string]string{"components.json": withChecker(hex.EncodeToString(binSum[:]), `{"allow": ["math"]}`)}
			case "site-5": // site-5: a checker whose binary is not the one pinned
				return map[string]string{"components.json": withChecker(strings.Repeat("ab", 32), `{"allow": ["torch"]}`)}
			}
			return nil
		}})
	dir := byocJob(t, "")
	// The server decides by its own policy first.
	if out, err := lp.adminCLI(t, lead, "submit", dir); err == nil || !strings.Contains(out, "byoc") {
		t.Fatalf("a lead without byoc at the server: %v\n%s", err, out)
	}
	// Each site decides again, by its own policy and allow-list.
	out, err := lp.adminCLI(t, lp.Admin, "submit", "--dry-run", dir)
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for site, want := range map[string]string{"site-1": "", "site-2": "byoc", "site-3": `trainer "pytorch" is not in this site's allow-list`,
		"site-4": "checker imports: train.py line 1: imports torch", "site-5": "checker imports: no verdict, so refused"} {
		row := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, site) {
				row = l
			}
		}
		if want == "" { // site-1's policy lets the code in: it would run it
			if row == "" || strings.Contains(row, "refuse") {
				t.Fatalf("%s's pre-flight row %q, want it to accept\n%s", site, row, out)
			}
			continue
		}
		if !strings.Contains(row, "refuse") || !strings.Contains(row, want) {
			t.Fatalf("%s's pre-flight row %q, want a refusal for %q\n%s", site, row, want, out)
		}
	}
	for _, site := range []string{"site-4", "site-5"} { // each refusal is in the site's own audit log too
		if got := auditOf(t, lp.project, site, func(r auditor.Record) bool {
			return r.Action == "preflight.refused" && strings.Contains(r.Detail["reason"], "checker imports")
		}); len(got) != 1 {
			t.Errorf("%s audited %d checker refusals, want 1", site, len(got))
		}
	}
	if got := auditOf(t, lp.project, "site-5", func(r auditor.Record) bool { return r.Action == "components.checker.refused" }); len(got) != 1 {
		t.Errorf("site-5 audited %d checkers that did not start, want 1", len(got))
	}
	// The console refuses code its manifest does not pin, and says the pin.
	if out, err := lp.adminCLI(t, lp.Admin, "submit", byocJob(t, strings.Repeat("ab", 32))); err == nil || !strings.Contains(out, "has SHA-256") {
		t.Fatalf("a wrong pin: %v\n%s", err, out)
	}
	// Code changed after signing: the server refuses it.
	manifest, err := os.ReadFile(filepath.Join(dir, job.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	k := loadKit(t, lp.Kit(lp.Admin))
	signed, err := job.Sign(manifest, k.Cert, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	signed.Code = []*hearthv1.JobFile{{Name: "train.py", Data: []byte("import os\nprint(os.environ)\n")}}
	if _, err := lp.admin.SubmitSigned(context.Background(), signed); err == nil || !strings.Contains(err.Error(), "the signed manifest pins") {
		t.Fatalf("changed code: %v", err)
	}
}

func readDefault(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "policies", "defaults", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requireTorch skips a test that runs a job's PyTorch script when the
// site's Python cannot, and fails it under CI=true (CI installs them).
func requireTorch(t *testing.T) {
	t.Helper()
	out, err := exec.Command(codetrainer.DefaultInterpreter, "-I", "-c", "import torch, grpc, google.protobuf, cryptography").CombinedOutput()
	if err == nil {
		return
	}
	msg := "a job's PyTorch script needs " + codetrainer.DefaultInterpreter + " with torch, grpc, protobuf and cryptography " +
		"(apt-get install python3-torch python3-grpcio python3-protobuf python3-cryptography): " + string(out)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestPOCWithPyTorch: `hearth poc --trainer pytorch` submits a job that
// brings its own PyTorch script, pinned in the signed manifest; the five
// sites run it, each with its own Python, and the federation reaches the
// POC's accuracy floor on optdigits.
func TestPOCWithPyTorch(t *testing.T) {
	requireTorch(t)
	ws := filepath.Join(t.TempDir(), "poc")
	out, err := exec.Command(hearthBin, "poc", "--trainer", "pytorch", "--workspace", ws, "--json").Output()
	if err != nil {
		t.Fatalf("hearth poc --trainer pytorch: %v\n%s", err, out)
	}
	var sum struct {
		Status  string  `json:"status"`
		Model   string  `json:"model"`
		TestAcc float64 `json:"test_accuracy"`
		Samples int64   `json:"test_samples"`
		Rounds  []struct {
			Answered int `json:"sites_answered"`
		} `json:"rounds"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	t.Logf("%s: %d rounds, test accuracy %.2f%% on %d samples", sum.Model, len(sum.Rounds), 100*sum.TestAcc, sum.Samples)
	if sum.Status != "finished" || sum.Model != "pytorch-mlp" || sum.TestAcc < 0.93 || sum.Samples != 1797 {
		t.Fatalf("status %s, model %s, test accuracy %.4f on %d samples; want finished, pytorch-mlp, at least 0.93 on 1797", sum.Status, sum.Model, sum.TestAcc, sum.Samples)
	}
	for i, r := range sum.Rounds {
		if r.Answered != 5 {
			t.Errorf("round %d: %d of 5 sites answered", i+1, r.Answered)
		}
	}
}

// TestJobCodeIsConfined: a job's script plays the attacker inside each
// site. It looks for the site's environment, the site's process, its
// private key (through the site's command line and through the layout of
// the kits) and the other data folders, and asks for more memory than
// site-3's limit. Confined, it finds none of them at site-1 and site-3;
// site-2 runs job code unconfined (its own choice, "sandbox": false), and
// there the same script reads site-2's key: the test's attacker is real.
// At site-3 it hits its memory limit each round: site-3 is left out of
// the rounds (audited there, with why) and the job goes on with the others.
func TestJobCodeIsConfined(t *testing.T) {
	requireTorch(t)
	components := func(jobCode string) string {
		return `{"trainers": ["pytorch"], "workflows": ["fedavg"], "filters": [], "scripts": ["any"], "job_code": ` + jobCode + `}`
	}
	lp := startLearningWith(t, projectSpec{provisioned: 3, running: 3, local: func(name string) map[string]string {
		switch name {
		case "site-2":
			return map[string]string{"components.json": components(`{"sandbox": false}`)}
		case "site-3":
			return map[string]string{"components.json": components(`{"memory_mib": 1536}`)}
		}
		return nil
	}})
	script, err := os.ReadFile(filepath.Join("testdata", "snoop_and_hoard.py"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "train.py"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	site1Data := loadKit(t, lp.Kit("site-1")).DataDir()
	manifest := fmt.Sprintf(`name: confined
workflow: fedavg
rounds: 2
sites: ["@all"]
min_sites: 2
round_timeout: 60s
dataset: optdigits
trainer:
  kind: pytorch
  script: train.py
  script_sha256: %s
  epochs: 1
  batch_size: 32
  seed: 1
  args: {kit_hint: %q, data_hint: %q, hoard_mib: 2048}
evaluation: {validation: true, test: true}
`, hex.EncodeToString(sum[:]), lp.Kit("site-1"), filepath.Join(site1Data, "optdigits"))
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := lp.admin.Submit(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	info := lp.waitEnd(t, id, 4*time.Minute)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("job %s: %s", info.Status, info.Reason)
	}
	for _, r := range info.History {
		if !slices.Equal(r.Answered, []string{"site-1", "site-2"}) || !slices.Equal(r.Missing, []string{"site-3"}) {
			t.Errorf("round %d: answered %v, missing %v; want site-1 and site-2, site-3 missing", r.Round, r.Answered, r.Missing)
		}
	}
	figures := func(site string) map[string]string {
		rounds := auditOf(t, lp.project, site, func(r auditor.Record) bool { return r.Action == "trainer.round" && r.JobID == id })
		if len(rounds) == 0 {
			t.Fatalf("%s audited no trainer round", site)
		}
		return rounds[0].Detail
	}
	confined := figures("site-1")
	for _, k := range []string{"metric.host_env_vars", "metric.parent_environ", "metric.site_keys_read", "metric.other_datasets_listed"} {
		if confined[k] != "0" {
			t.Errorf("site-1 (confined): %s = %q, want 0 (figures %v)", k, confined[k], confined)
		}
	}
	if confined["metric.hoarded_mib"] != "2048" {
		t.Errorf("site-1: hoarded %q MiB, want 2048 within its default limit", confined["metric.hoarded_mib"])
	}
	open := figures("site-2")
	if open["metric.site_keys_read"] == "0" || open["metric.parent_environ"] == "0" {
		t.Errorf("site-2 runs job code unconfined, and the script found nothing there (%v): the test's attacker is not real", open)
	}
	failed := auditOf(t, lp.project, "site-3", func(r auditor.Record) bool { return r.Action == "task.failed" && r.JobID == id })
	if len(failed) != len(info.History) || !strings.Contains(failed[0].Detail["reason"], "memory limit") {
		t.Fatalf("site-3's failed tasks %v, want one per round (%d) for its memory limit", failed, len(info.History))
	}
	t.Logf("site-1, confined: %v; site-2, unconfined: keys read %s; site-3: %s", confined, open["metric.site_keys_read"], failed[0].Detail["reason"])
}
