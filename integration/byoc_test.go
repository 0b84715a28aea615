package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
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
// pins, and passes only a site whose components.json allows its trainer;
// every refusal names its reason, and pre-flight shows each site's.
func TestJobCodeIsCheckedEverywhere(t *testing.T) {
	const lead = "lead@hearth.local"
	noByoc := strings.Replace(readDefault(t, "authorization.json"), `"project_admin": "any"`, `"project_admin": {"submit_job": "any", "view": "any", "byoc": "none"}`, 1)
	lp := startLearningWith(t, projectSpec{provisioned: 3, running: 3,
		admins: []provision.AdminSpec{{Name: lead, Org: "hearth", Role: pki.RoleLead}},
		local: func(name string) map[string]string {
			switch name {
			case "server": // the server: a lead may submit, but bring no code
				return map[string]string{"authorization.json": strings.Replace(readDefault(t, "authorization.json"), `"byoc": "any"`, `"byoc": "none"`, 1)}
			case "site-2": // site-2: the project admin may submit, but bring no code here
				return map[string]string{"authorization.json": noByoc}
			case "site-3": // site-3: no job's own trainer
				return map[string]string{"components.json": `{"trainers": ["logreg", "mlp"], "workflows": ["fedavg", "swarm"], "filters": [], "scripts": []}`}
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
	for site, want := range map[string]string{"site-1": "runs no job code yet", "site-2": "byoc", "site-3": `trainer "pytorch" is not in this site's allow-list`} {
		row := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, site) {
				row = l
			}
		}
		if !strings.Contains(row, "refuse") || !strings.Contains(row, want) {
			t.Fatalf("%s's pre-flight row %q, want a refusal for %q\n%s", site, row, want, out)
		}
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
