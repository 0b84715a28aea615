package main

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/report"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/integration/cluster"
	codetrainer "github.com/hearthfl/hearth/plugins/trainer"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// pocMarker marks a folder as a POC workspace, which a later run may wipe.
const pocMarker = ".hearth-poc"

// pocOptions are hearth poc's flags.
type pocOptions struct {
	sites       int
	rounds      int
	dataset     string
	model       string
	workflow    string
	alpha       float64
	seed        int64
	workspace   string
	asJSON      bool
	centralized bool
	timeout     time.Duration
	privacy     string  // "", "dp" or "he"
	epsilon     float64 // with dp: each site's target ε for the whole job
	aggregator  string  // "" or "attested": an aggregation host the sites attest
	trainer     string  // "" (built in) or "pytorch": the job brings its own script (pocjob/train.py)
}

// pocHost is the POC's aggregation host with --aggregator attested, and
// the evidence it presents (simulated: these machines have no TEE).
const pocHost = "agg-1"

var pocTEE = []string{job.TEESEVSNP, job.TEENvidiaGPU}

// DP-SGD in the POC: each site calibrates its own noise for the job's
// target ε (δ 1e-5) over all its rounds; an MLP with larger steps and
// batches than the non-private defaults, as measured for optdigits with
// 5 sites (actors/learning/README.md).
const (
	pocDPDelta    = 1e-5
	pocDPClipNorm = 1.0
	pocDPRounds   = 20
)

// pocSummary is what `hearth poc --json` prints.
type pocSummary struct {
	Workspace   string             `json:"workspace"`
	Dataset     string             `json:"dataset"`
	Model       string             `json:"model"`
	Workflow    string             `json:"workflow"`
	Alpha       float64            `json:"alpha"`
	LabelSkew   float64            `json:"label_skew"`
	Sites       []cluster.SiteData `json:"sites"`
	JobID       string             `json:"job_id"`
	Status      string             `json:"status"`
	Reason      string             `json:"reason,omitempty"`
	Rounds      []roundLine        `json:"rounds"`
	TestAcc     float64            `json:"test_accuracy"`
	TestSamples int64              `json:"test_samples"`
	Central     *trainer.Metrics   `json:"centralized,omitempty"`
	Files       map[string]string  `json:"files"`
	// Swarm: where the final model is; the server never held it; and the
	// cross-site evaluation's accuracies, model -> site -> accuracy.
	ModelLocation string    `json:"model_location,omitempty"`
	CrossSite     crossSite `json:"cross_site,omitempty"`
	Seconds       float64   `json:"seconds"`
	// DP: each site's target ε over the whole job (0 without DP).
	Epsilon float64 `json:"epsilon,omitempty"`
	// HE: how many of the sites decrypt each round's sum together (0
	// without homomorphic encryption).
	HEThreshold int             `json:"he_threshold,omitempty"`
	Trainer     job.TrainerSpec `json:"trainer"`
}

type roundLine struct {
	Round     int64   `json:"round"`
	Answered  int     `json:"sites_answered"`
	Of        int     `json:"sites"`
	TrainLoss float64 `json:"train_loss"`
	ValAcc    float64 `json:"validation_accuracy"`
	Bytes     int64   `json:"bytes_moved"`
	Millis    float64 `json:"ms"`
	// Swarm: the site that aggregated the round, and the attempts it took
	// (more than one after a failover).
	Aggregator string `json:"aggregator,omitempty"`
	Attempts   int64  `json:"attempts,omitempty"`
	// DP: the largest ε any site has spent by this round, at δ 1e-5.
	Epsilon float64 `json:"epsilon,omitempty"`
}

func runPOC(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "poc", "[flags]")
	var o pocOptions
	fs.IntVar(&o.sites, "sites", 5, "number of sites")
	fs.IntVar(&o.rounds, "rounds", 0, "federated rounds (default: the recommended number for the dataset and model)")
	fs.StringVar(&o.dataset, "dataset", "optdigits", "dataset: optdigits, wdbc, mnist or adult")
	fs.StringVar(&o.model, "model", "logreg", "model: logreg or mlp")
	fs.StringVar(&o.workflow, "workflow", job.WorkflowFedAvg, "workflow: fedavg (the server aggregates) or swarm (a different site aggregates each round; the model never reaches the server)")
	fs.Float64Var(&o.alpha, "alpha", 0.5, "Dirichlet label-skew concentration (smaller: more skewed sites)")
	fs.Int64Var(&o.seed, "seed", 1, "seed for the data split and training")
	fs.StringVar(&o.workspace, "workspace", "hearth-poc", "folder for kits, data, logs and results (a previous POC workspace there is replaced)")
	fs.BoolVar(&o.asJSON, "json", false, "print a JSON summary instead of progress")
	fs.BoolVar(&o.centralized, "centralized", false, "also train the same model on the pooled data, for comparison")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	fs.StringVar(&o.privacy, "privacy", "", "dp: the sites train with DP-SGD, each within --epsilon for the whole job (an MLP; see README); he: the server adds encrypted updates and a majority of the sites decrypt only their sum")
	fs.Float64Var(&o.epsilon, "epsilon", 8, "with --privacy dp: each site's ε over the whole job, at δ 1e-5")
	fs.StringVar(&o.aggregator, "aggregator", "", "attested: swarm learning whose rounds an aggregation host aggregates, in its own process, "+
		"once each site verified its TEE evidence (SIMULATED here: go-sev-guest's test device, a test NVIDIA device chain)")
	fs.StringVar(&o.trainer, "trainer", "", "pytorch: the job brings its own PyTorch script (an MLP), pinned by hash in the signed manifest; "+
		"each site runs it confined, with "+codetrainer.DefaultInterpreter+" and Debian's python3-torch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch o.trainer {
	case "":
	case job.KindPyTorch:
		if o.workflow != job.WorkflowFedAvg || o.privacy != "" || o.aggregator != "" || o.centralized {
			return errUsageMsg("--trainer pytorch: with --workflow fedavg only, and no --privacy, --aggregator or --centralized, in this version")
		}
		if err := pythonReady(); err != nil {
			fmt.Fprintf(c.stderr, "hearth poc --trainer pytorch: skipped: %v\n", err)
			return nil
		}
		o.model = "mlp" // the script's MLP, trained as the built-in one's recommendation says
	default:
		return errUsageMsg(fmt.Sprintf("--trainer %q: want pytorch (or no --trainer: the built-in one --model names)", o.trainer))
	}
	workflowSet := false
	fs.Visit(func(f *flag.Flag) { workflowSet = workflowSet || f.Name == "workflow" })
	switch o.aggregator {
	case "":
	case "attested":
		if workflowSet && o.workflow != job.WorkflowSwarm || o.privacy == "he" {
			return errUsageMsg("--aggregator attested: the sites send their updates sealed to the host, so it needs --workflow swarm (and no --privacy he)")
		}
		o.workflow = job.WorkflowSwarm
	default:
		return errUsageMsg(fmt.Sprintf("--aggregator %q: want attested", o.aggregator))
	}
	if fs.NArg() > 0 {
		return errUsageMsg("poc takes no arguments")
	}
	if o.workflow != job.WorkflowFedAvg && o.workflow != job.WorkflowSwarm {
		return errUsageMsg(fmt.Sprintf("--workflow %q: want %s or %s", o.workflow, job.WorkflowFedAvg, job.WorkflowSwarm))
	}
	switch o.privacy {
	case "":
	case "dp":
		if !(o.epsilon > 0 && o.epsilon <= 100) {
			return errUsageMsg(fmt.Sprintf("--epsilon %v: want (0, 100]", o.epsilon))
		}
		o.model = "mlp"
		if o.rounds == 0 {
			o.rounds = pocDPRounds
		}
	case "he":
		if o.workflow != job.WorkflowFedAvg {
			return errUsageMsg("--privacy he: the server adds the encrypted updates, so it needs --workflow fedavg")
		}
	default:
		return errUsageMsg(fmt.Sprintf("--privacy %q: want dp or he", o.privacy))
	}
	if o.rounds == 0 {
		o.rounds = trainer.DefaultRounds(o.dataset, o.model)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	sum, err := poc(ctx, c, o)
	if o.asJSON && sum != nil {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(sum); jerr != nil && err == nil {
			err = jerr
		}
	}
	return safeError(err) // it may relay the server's text
}

func poc(ctx context.Context, c *cli, o pocOptions) (*pocSummary, error) {
	start := time.Now()
	say := func(format string, a ...any) {
		if !o.asJSON {
			fmt.Fprintf(c.stdout, format+"\n", a...)
		}
	}
	ws, err := pocWorkspace(o.workspace)
	if err != nil {
		return nil, err
	}
	spec := trainer.Defaults(o.dataset, o.model)
	spec.Seed = o.seed
	if o.privacy == "dp" {
		spec.Hidden, spec.LearningRate, spec.Epochs, spec.BatchSize, spec.L2 = []int{64}, 0.1, 2, 64, 0
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("--dataset %s --model %s: %w", o.dataset, o.model, err)
	}
	hosts := 0
	if o.aggregator == "attested" {
		hosts = 1
	}
	local, err := cluster.ProvisionLocalHosts(ws, o.sites, hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	split, err := local.PrepareData(o.dataset, o.alpha, o.seed)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	model := o.model
	if o.trainer != "" {
		model = o.trainer + "-" + o.model
	}
	sum := &pocSummary{Workspace: ws, Dataset: o.dataset, Model: model, Workflow: o.workflow, Alpha: o.alpha, LabelSkew: split.Skew,
		Sites: split.Sites, Files: map[string]string{}, Trainer: trainerSpec(spec)}
	if o.privacy == "dp" {
		sum.Epsilon = o.epsilon
	}
	if o.privacy == "he" {
		sum.HEThreshold = pocQuorum(o.sites)
	}
	say("hearth poc: %s, %s, %s, %d sites, Dirichlet alpha %g (label skew %.2f), %d rounds", o.workflow, o.dataset, model, o.sites, o.alpha, split.Skew, o.rounds)
	if o.trainer != "" {
		say("the job brings its own code: a PyTorch script (train.py) pinned by SHA-256 in the signed manifest; the submitter needs the byoc right at the server and at every site, " +
			"and each site runs the script with its own Python, confined (Landlock and seccomp, rlimits, no environment, its own folder), on its own data only; the sites report their model's layout, never its values, and the server makes round 0 from it")
	}
	if o.privacy == "dp" {
		say("differential privacy: DP-SGD at every site, clip norm %g, each within ε %g at δ %g over the whole job (its own noise for its own data)", pocDPClipNorm, o.epsilon, pocDPDelta)
	}
	if o.privacy == "he" {
		say("homomorphic encryption (threshold CKKS): the sites make a key whose secret no one holds; each sends its update encrypted; the server adds the ciphertexts; %d of the %d sites decrypt each round's sum, and nothing else", sum.HEThreshold, o.sites)
	}
	say("provisioned project %q in %s: root CA, server, %d sites, admin %s", local.Project.Name, ws, o.sites, local.Admin)
	for _, s := range split.Sites {
		say("  %s: %d train, %d validation, %d test samples; classes %v", s.Site, s.Train, s.Val, s.Test, s.ClassCounts)
	}

	if o.aggregator == "attested" {
		if err := writeSimulatedAttestation(local); err != nil {
			return sum, err
		}
		say("attested aggregation: %s aggregates every round in its own process; each site asks it for TEE evidence (%s) with its own nonce "+
			"and checks it against its local/attestation.json before it seals an update to the key the evidence binds", pocHost, strings.Join(pocTEE, ", "))
		say("  SIMULATED evidence: these machines have no TEE; the host signs with go-sev-guest's test device and test-only AMD chain and a test NVIDIA device chain, " +
			"which the sites trust only because their policy says \"simulated\": true")
	}
	procs, err := startLocal(ctx, local, filepath.Join(ws, "logs"))
	defer procs.stop(c.stderr)
	if err != nil {
		return sum, err
	}
	hostsText := ""
	if hosts > 0 {
		hostsText = " and an aggregation host"
	}
	say("server, %d sites%s running as separate processes (mTLS leaf links, signed envelopes); logs in %s", o.sites, hostsText, filepath.Join(ws, "logs"))

	jobDir := filepath.Join(ws, "jobs", o.dataset+"-"+o.workflow)
	if err := writeJob(jobDir, o, spec); err != nil {
		return sum, err
	}
	k, err := kit.Load(local.Kit(local.Admin))
	if err != nil {
		return sum, err
	}
	admin, err := openConsole(ctx, nil, c.stderr, k, 30*time.Second)
	if err != nil {
		return sum, err
	}
	defer admin.Close()
	sum.JobID, err = admin.Submit(ctx, jobDir)
	if err != nil {
		return sum, err
	}
	say("submitted job %s, signed by %s\n", termText(sum.JobID), local.Admin)
	swarm := o.workflow == job.WorkflowSwarm
	epsCol := ""
	if o.privacy == "dp" {
		epsCol = "  max ε"
	}
	if swarm {
		say("round  sites  aggregator  train loss  val acc    time%s", epsCol)
	} else {
		say("round  sites  train loss  val acc    bytes moved   time%s", epsCol)
	}
	info, err := admin.Follow(ctx, sum.JobID, 100*time.Millisecond, func(r *hearthv1.RoundSummary) {
		line := roundLine{Round: r.Round, Answered: len(r.Answered), Of: len(r.Answered) + len(r.Missing), TrainLoss: r.TrainLoss,
			ValAcc: r.GetValidation().GetAccuracy(), Bytes: r.BytesMoved, Millis: float64(r.DurationMicros) / 1000,
			Aggregator: r.Aggregator, Attempts: r.Attempts}
		for _, s := range r.Sites {
			line.Epsilon = max(line.Epsilon, s.Epsilon)
		}
		eps := ""
		if o.privacy == "dp" {
			eps = fmt.Sprintf("  %5.2f", line.Epsilon)
		}
		sum.Rounds = append(sum.Rounds, line)
		if swarm {
			failover := ""
			if len(r.Failovers) > 0 {
				failover = "  after " + termText(strings.Join(r.Failovers, "; "))
			}
			say("%5d  %2d/%-2d  %-10s  %10.4f  %6.2f%%  %6.0f ms%s%s", line.Round, line.Answered, line.Of, termText(line.Aggregator),
				line.TrainLoss, 100*line.ValAcc, line.Millis, eps, failover)
			return
		}
		say("%5d  %2d/%-2d  %10.4f  %6.2f%%  %10s  %6.0f ms%s", line.Round, line.Answered, line.Of, line.TrainLoss, 100*line.ValAcc, bytesText(line.Bytes), line.Millis, eps)
	})
	if info != nil {
		sum.Status, sum.Reason = status(info.Status), info.Reason
	}
	if err != nil {
		return sum, err
	}
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
		return sum, fmt.Errorf("job %s %s: %s", termText(info.Id), status(info.Status), termText(info.Reason))
	}
	sum.TestAcc, sum.TestSamples = info.GetTest().GetAccuracy(), info.GetTest().GetSamples()
	say("\nfederated: test accuracy %.2f%% on %d held-out samples (evaluated at the sites)", 100*sum.TestAcc, sum.TestSamples)
	if len(info.CrossSite) > 0 {
		sum.CrossSite = crossSiteTable(info.CrossSite)
		say("cross-site evaluation (rows: the model; columns: the site whose test data scored it):\n%s", sum.CrossSite.text())
	}

	resultDir := filepath.Join(ws, "result")
	res, err := admin.Download(ctx, sum.JobID, resultDir)
	if err != nil {
		return sum, err
	}
	sum.Files["metrics"] = filepath.Join(resultDir, "metrics.json")
	if swarm {
		if res.Model != nil || res.ModelStream != nil {
			return sum, fmt.Errorf("job %s: the server returned a model for a swarm job", termText(sum.JobID))
		}
		aggs := map[string]bool{}
		for _, r := range sum.Rounds {
			aggs[r.Aggregator] = true
		}
		sum.ModelLocation = res.GetInfo().GetModelLocation()
		if o.aggregator == "attested" {
			say("%s aggregated every round, in its (simulated) TEE; the server coordinated and never held a weight", strings.Join(slices.Sorted(maps.Keys(aggs)), ", "))
		} else {
			say("%d sites aggregated in turn; the server coordinated and never held a weight", len(aggs))
		}
		say("the final model is %s", termText(sum.ModelLocation))
	} else {
		sum.Files["model"] = filepath.Join(resultDir, "model.pb")
	}
	if err := procs.stop(c.stderr); err != nil {
		return sum, err
	}
	if o.centralized {
		central, err := centralBaseline(ctx, spec, o.rounds, split)
		if err != nil {
			return sum, err
		}
		sum.Central = central
		say("centralized (same model, pooled data, %d epochs): test accuracy %.2f%%", o.rounds*spec.Epochs, 100*central.Accuracy)
	}
	plot := filepath.Join(resultDir, "accuracy.png")
	if err := writePlot(plot, sum); err != nil {
		return sum, err
	}
	sum.Files["plot"] = plot
	sum.Seconds = time.Since(start).Seconds()
	if swarm {
		say("wrote %s and %s", sum.Files["metrics"], plot)
	} else {
		say("wrote %s, %s and %s", sum.Files["model"], sum.Files["metrics"], plot)
	}
	say("all processes stopped cleanly; %.1f s in all", sum.Seconds)
	return sum, nil
}

// pocWorkspace prepares the workspace folder: new, or a previous POC's
// (replaced); any other existing folder is refused.
func pocWorkspace(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(abs, pocMarker)); err != nil {
			return "", fmt.Errorf("--workspace %s exists and is not a POC workspace; choose another folder", dir)
		}
		if err := os.RemoveAll(abs); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", err
	}
	return abs, os.WriteFile(filepath.Join(abs, pocMarker), []byte("made by hearth poc; the next run replaces this folder\n"), 0o600)
}

// localProcs are the POC's server and site processes.
type localProcs []*cluster.Proc

// startLocal starts the server and every site of a local project and waits
// until all are up.
func startLocal(ctx context.Context, local *cluster.Local, logs string, extra ...func(name string) []string) (localProcs, error) {
	binary, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate the hearth binary: %w", err)
	}
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return nil, err
	}
	var procs localProcs
	start := func(name string, args ...string) (*cluster.Proc, error) {
		args = append(args, "--log-format", "json")
		for _, e := range extra {
			args = append(args, e(name)...)
		}
		p, err := cluster.Start(binary, filepath.Join(logs, name+".log"), name, args...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	ready, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	server, err := start("server", "server", "-k", local.Kit(local.Server), "--listen", "127.0.0.1")
	if err != nil {
		return procs, err
	}
	if _, err := server.AwaitReady(ready); err != nil {
		return procs, err
	}
	for _, s := range local.Sites {
		if _, err := start(s, "site", "-k", local.Kit(s)); err != nil {
			return procs, err
		}
	}
	for _, h := range local.Hosts { // the POC's hosts present simulated evidence: no TEE here
		if _, err := start(h, "aggregator", "-k", local.Kit(h), "--simulated-tee", "--tee", strings.Join(pocTEE, ",")); err != nil {
			return procs, err
		}
	}
	for _, p := range procs[1:] {
		if _, err := p.AwaitReady(ready); err != nil {
			return procs, err
		}
	}
	return procs, nil
}

// stop stops the processes, sites first; it may be called twice.
func (ps *localProcs) stop(stderr io.Writer) error {
	var errs []error
	for i := len(*ps) - 1; i >= 0; i-- {
		if err := (*ps)[i].Stop(10 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("%s did not stop cleanly: %w", (*ps)[i].Name, err))
		}
	}
	*ps = nil
	return errors.Join(errs...)
}

// pocQuorum is the POC job's min_sites, and its decryption threshold under
// --privacy he: a majority of the sites.
func pocQuorum(sites int) int { return max(1, sites/2+1) }

// writeJob writes the job folder the POC submits.
func writeJob(dir string, o pocOptions, spec trainer.Spec) error {
	kind, script := spec.Kind, ""
	if o.trainer == job.KindPyTorch {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, pocScriptName), pocScript, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(pocScript)
		kind, script = o.trainer, fmt.Sprintf("  script: %s   # the job's own code, pinned:\n  script_sha256: %s\n", pocScriptName, hex.EncodeToString(sum[:]))
	}
	hidden := ""
	if len(spec.Hidden) > 0 {
		hidden = fmt.Sprintf("  hidden: %s\n", strings.ReplaceAll(fmt.Sprint(spec.Hidden), " ", ", "))
	}
	privacy := ""
	if o.privacy == "dp" {
		privacy = fmt.Sprintf("  dp: {epsilon: %g, delta: %g, clip_norm: %g}   # DP-SGD: each site within epsilon over the whole job\n", o.epsilon, pocDPDelta, pocDPClipNorm)
	}
	if o.privacy == "he" {
		privacy += fmt.Sprintf("he: {threshold: %d}   # threshold homomorphic encryption: %d sites decrypt each round's sum together\n", pocQuorum(o.sites), pocQuorum(o.sites))
	}
	crossSite := ""
	if o.workflow == job.WorkflowSwarm && o.aggregator == "" { // attested: no site sees another's local model
		crossSite = "  cross_site: true   # each site also scores every other site's last local model\n"
	}
	if o.aggregator == "attested" {
		crossSite += fmt.Sprintf("placement:   # the aggregator on an aggregation host whose TEE evidence every site checks itself\n  aggregator: attested\n  tee: [%s]\n  hosts: [%s]\n",
			strings.Join(pocTEE, ", "), pocHost)
	}
	manifest := fmt.Sprintf(`# A %s job written by hearth poc. Submit your own with: hearth admin -k KIT submit FOLDER
name: %s-%s
workflow: %s
rounds: %d
sites: ["@all"]
min_sites: %d
round_timeout: 60s
dataset: %s
trainer:
  kind: %s
%s%s  learning_rate: %g
  epochs: %d
  batch_size: %d
  l2: %g
  seed: %d
%sevaluation:
  validation: true
  test: true
%s`, o.workflow, o.dataset, o.workflow, o.workflow, o.rounds, pocQuorum(o.sites), o.dataset, kind, script, hidden, spec.LearningRate, spec.Epochs, spec.BatchSize, spec.L2, spec.Seed, privacy, crossSite)
	if _, err := job.ParseManifest([]byte(manifest)); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(manifest), 0o644)
}

// pocScript is the training script of the POC's PyTorch job.
//
//go:embed pocjob/train.py
var pocScript []byte

const pocScriptName = "train.py"

// pythonReady says why the site's Python cannot run the PyTorch trainer,
// or nil when it can.
func pythonReady() error {
	out, err := exec.Command(codetrainer.DefaultInterpreter, "-I", "-c", "import torch, grpc, google.protobuf, cryptography").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import torch, grpc, protobuf and cryptography (apt-get install python3-torch python3-grpcio python3-protobuf python3-cryptography): %v: %s",
			codetrainer.DefaultInterpreter, err, strings.TrimSpace(lastLine(string(out))))
	}
	return nil
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// centralBaseline trains the same model on the pooled training data for as
// many epochs as the federation ran in all, and scores it on the test split.
func centralBaseline(ctx context.Context, spec trainer.Spec, rounds int, split *cluster.Split) (*trainer.Metrics, error) {
	m, err := trainer.Init(spec, split.Pooled.Features, split.Pooled.Classes)
	if err != nil {
		return nil, err
	}
	s := spec
	s.Epochs = rounds * spec.Epochs
	m, _, err = trainer.Train(ctx, s, m, split.Pooled)
	if err != nil {
		return nil, err
	}
	mt, err := trainer.Evaluate(spec, m, split.TestSet)
	return &mt, err
}

func writePlot(path string, sum *pocSummary) error {
	var x, y []float64
	for _, r := range sum.Rounds {
		x, y = append(x, float64(r.Round)), append(y, r.ValAcc)
	}
	chart := report.Chart{
		Title:  fmt.Sprintf("%s on %s, %s, %d sites (alpha %g)", workflowTitle(sum.Workflow), sum.Dataset, sum.Model, len(sum.Sites), sum.Alpha),
		XLabel: "round", YLabel: "accuracy", YMin: 0, YMax: 1,
		Series: []report.Series{{Name: "validation (global model at round start)", X: x, Y: y}},
		HLines: []report.HLine{{Name: fmt.Sprintf("federated test %.1f%%", 100*sum.TestAcc), Y: sum.TestAcc}},
	}
	if sum.Central != nil {
		chart.HLines = append(chart.HLines, report.HLine{Name: fmt.Sprintf("centralized test %.1f%%", 100*sum.Central.Accuracy), Y: sum.Central.Accuracy})
	}
	if sum.Epsilon > 0 { // DP: the largest ε any site has spent, as a share of the target, on the same axis
		var e []float64
		for _, r := range sum.Rounds {
			e = append(e, r.Epsilon/sum.Epsilon)
		}
		chart.Series = append(chart.Series, report.Series{Name: fmt.Sprintf("epsilon spent (largest site), share of the target %g at delta %g", sum.Epsilon, pocDPDelta), X: x, Y: e})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := chart.PNG(f, 900, 540); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func workflowTitle(w string) string {
	if w == job.WorkflowSwarm {
		return "Swarm learning"
	}
	return "FedAvg"
}

func trainerSpec(s trainer.Spec) job.TrainerSpec {
	return job.TrainerSpec{Kind: s.Kind, Hidden: s.Hidden, LearningRate: s.LearningRate, Epochs: s.Epochs, BatchSize: s.BatchSize, L2: s.L2, Seed: s.Seed}
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// crossSite is a cross-site evaluation's accuracies: model ("global" or the
// site whose last local model it is) -> the site that scored it -> accuracy.
type crossSite map[string]map[string]float64

func crossSiteTable(rows []*hearthv1.CrossSiteMetrics) crossSite {
	t := crossSite{}
	for _, r := range rows {
		if t[r.Model] == nil {
			t[r.Model] = map[string]float64{}
		}
		t[r.Model][r.Site] = r.GetMetrics().GetAccuracy()
	}
	return t
}

// text renders the table, the global model first, then the sites' local
// models, each scored by every site.
func (t crossSite) text() string {
	sites := map[string]bool{}
	for _, row := range t {
		for s := range row {
			sites[s] = true
		}
	}
	cols := slices.Sorted(maps.Keys(sites))
	models := slices.Sorted(maps.Keys(t))
	if i := slices.Index(models, "global"); i > 0 {
		models = append([]string{"global"}, slices.Delete(models, i, i+1)...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %-8s", "model")
	for _, c := range cols {
		fmt.Fprintf(&b, " %8s", termText(c))
	}
	for _, m := range models {
		fmt.Fprintf(&b, "\n  %-8s", termText(m))
		for _, c := range cols {
			if v, ok := t[m][c]; ok {
				fmt.Fprintf(&b, " %7.2f%%", 100*v)
			} else {
				fmt.Fprintf(&b, " %8s", "-")
			}
		}
	}
	return b.String()
}
