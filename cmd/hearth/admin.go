package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

const adminSynopsis = `-k KIT [--json] [--timeout D] <command>

commands:
  submit [--dry-run] JOBDIR
                       sign JOBDIR/manifest.yml with this admin's key and submit it; with
                       --dry-run, ask each site it deploys to whether it would run it
                       (authentication, policy, data) and run nothing
  list                 list jobs
  status JOB           a job's status and per-round history
  abort JOB            abort a running job
  download JOB [-o DIR]  the job's latest model (model.pb; a large one as model.f32, float32
                         little-endian, with model_layout.json) and metrics (metrics.json)
                         into DIR (default ./JOB)
  site status|resources|logs|audit|shutdown SITE [--lines N]
                       a command SITE decides and answers itself, as FLARE's check_status,
                       report_resources, tail (logs and audit, read-only) and shutdown
  login SITE --ldap | --oidc ISSUER --client-id ID [--ca FILE] [--user NAME]
                       log into SITE's own identity system: LDAP (each command then asks for
                       the directory password, which is never kept), or OIDC (tokens for SITE
                       with the password grant, kept 0600, refreshed when about to expire);
                       passwords come from standard input, never the command line; commands
                       carry the credential to SITE sealed to it and bound to the command
  logout SITE          forget the login for SITE
  logins               the sites logged into, and until when`

// runAdmin runs one admin command. Every text that came from the server or
// from other participants (job ids, names, submitters, reasons, site
// names, relayed errors) is printed through termText; --json output is
// JSON, escaped already.
func runAdmin(ctx context.Context, c *cli, args []string) (err error) {
	defer func() { err = safeError(err) }()
	fs := newFlags(c, "admin", adminSynopsis)
	kitDir := fs.String("k", "", "the admin's startup kit folder (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kitDir == "" || fs.NArg() == 0 {
		fs.Usage()
		return errUsageMsg("-k KIT and a command are required")
	}
	k, err := kit.Load(*kitDir)
	if err != nil {
		return err
	}
	switch fs.Arg(0) { // the console's own state: no server needed
	case "login":
		return runLogin(ctx, c, k, fs.Args()[1:])
	case "logout":
		return runLogout(c, k, fs.Args()[1:])
	case "logins":
		return printLogins(c, k, *asJSON)
	}
	a, err := openConsole(ctx, c, c.stderr, k, *timeout)
	if err != nil {
		return err
	}
	defer a.Close()
	rest := fs.Args()[1:]
	switch cmd := fs.Arg(0); cmd {
	case "submit":
		dry := len(rest) == 2 && rest[0] == "--dry-run"
		if dry {
			rest = rest[1:]
		}
		if len(rest) != 1 {
			return errUsageMsg("submit takes one job folder, after --dry-run if any")
		}
		if dry {
			rows, err := a.Preflight(ctx, rest[0], a.Trust)
			if err != nil {
				return err
			}
			if *asJSON {
				return printPreflightJSON(c.stdout, rows)
			}
			printPreflight(c.stdout, rows)
			return nil
		}
		id, err := a.Submit(ctx, rest[0])
		if err != nil {
			return err
		}
		return printResult(c.stdout, *asJSON, &hearthv1.JobAccepted{JobId: id}, func(w io.Writer) { fmt.Fprintln(w, "submitted", termText(id)) })
	case "site":
		return runSiteCommand(ctx, c, k, a, *asJSON, rest)
	case "list":
		var list hearthv1.JobList
		if err := a.Call(ctx, &hearthv1.ListJobs{}, &list); err != nil {
			return err
		}
		return printResult(c.stdout, *asJSON, &list, func(w io.Writer) {
			printJobList(w, list.Jobs)
			if list.More > 0 {
				fmt.Fprintf(w, "(%d older jobs not listed)\n", list.More)
			}
		})
	case "status":
		if len(rest) != 1 {
			return errUsageMsg("status takes one job id")
		}
		var info hearthv1.JobInfo
		if err := a.Call(ctx, &hearthv1.GetJob{JobId: rest[0]}, &info); err != nil {
			return err
		}
		return printResult(c.stdout, *asJSON, &info, func(w io.Writer) { printJob(w, &info) })
	case "abort":
		if len(rest) != 1 {
			return errUsageMsg("abort takes one job id")
		}
		var info hearthv1.JobInfo
		if err := a.Call(ctx, &hearthv1.AbortJob{JobId: rest[0]}, &info); err != nil {
			return err
		}
		return printResult(c.stdout, *asJSON, &info, func(w io.Writer) { printJob(w, &info) })
	case "download":
		dfs := flag.NewFlagSet("download", flag.ContinueOnError)
		dfs.SetOutput(c.stderr)
		out := dfs.String("o", "", "output folder (default ./JOB)")
		if len(rest) < 1 {
			return errUsageMsg("download takes a job id")
		}
		if err := dfs.Parse(rest[1:]); err != nil {
			return err
		}
		dir := *out
		if dir == "" {
			dir = rest[0]
		}
		res, err := a.Download(ctx, rest[0], dir)
		if err != nil {
			return err
		}
		return printResult(c.stdout, *asJSON, res.Info, func(w io.Writer) {
			printJob(w, res.Info)
			switch {
			case res.Model != nil:
				fmt.Fprintf(w, "\nwrote %s and %s\n", filepath.Join(dir, coordinator.ModelFile), filepath.Join(dir, coordinator.MetricsFile))
			case res.ModelStream != nil:
				fmt.Fprintf(w, "\nwrote %s (%s), %s and %s\n", filepath.Join(dir, coordinator.LargeModelFile), bytesText(res.ModelStream.TotalBytes),
					filepath.Join(dir, coordinator.LargeLayoutFile), filepath.Join(dir, coordinator.MetricsFile))
			case res.Info.GetModelLocation() != "":
				fmt.Fprintf(w, "\na swarm job's model never reaches the server: it is %s\nwrote %s\n", termText(res.Info.ModelLocation),
					filepath.Join(dir, coordinator.MetricsFile))
			default:
				fmt.Fprintf(w, "\nno model on the server (no round completed, or a swarm job not yet ended): wrote %s\n", filepath.Join(dir, coordinator.MetricsFile))
			}
		})
	default:
		fs.Usage()
		return errUsageMsg(fmt.Sprintf("unknown admin command %q", cmd))
	}
}

// console is an admin console connected to the server.
type console struct {
	*node.Node
	*coordinator.Client
}

// openConsole connects an admin's console to the server. c, if set, asks
// for the directory passwords its commands carry to LDAP sites; warn hears
// of sites that will get no credential.
func openConsole(ctx context.Context, c *cli, warn io.Writer, k *kit.Kit, timeout time.Duration) (*console, error) {
	n, err := node.StartAdmin(ctx, k, node.Options{Protocol: protocol.Table{}, CRLPoll: -1})
	if err != nil {
		return nil, err
	}
	client := &coordinator.Client{
		Bus: n.Bridge, Streams: n.Streams, Server: k.Config.Server.Name, Timeout: timeout,
		SignJob:       func(manifest []byte) (*hearthv1.SignedJob, error) { return job.Sign(manifest, k.Cert, k.Key) },
		SignPreflight: func(manifest []byte) (*hearthv1.SignedJob, error) { return job.SignPreflight(manifest, k.Cert, k.Key) },
	}
	client.Credentials = func(ctx context.Context, signed *hearthv1.SignedJob, cmd authn.Command) ([]*hearthv1.SealedCredential, error) {
		return sealCredentials(ctx, c, warn, k, client, n.Trust, signed, cmd)
	}
	return &console{Node: n, Client: client}, nil
}

func printResult(w io.Writer, asJSON bool, m proto.Message, text func(io.Writer)) error {
	if !asJSON {
		text(w)
		return nil
	}
	data, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var v any // re-indent consistently
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func status(s hearthv1.JobStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

func printJobList(w io.Writer, jobs []*hearthv1.JobInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNAME\tSTATUS\tROUND\tSUBMITTER\tTEST ACC")
	for _, j := range jobs {
		acc := "-"
		if j.Test != nil {
			acc = fmt.Sprintf("%.2f%%", 100*j.Test.Accuracy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", termText(j.Id), termText(j.Name), status(j.Status), j.CompletedRounds, j.Rounds, termText(j.Submitter), acc)
	}
	tw.Flush()
}

func printJob(w io.Writer, j *hearthv1.JobInfo) {
	fmt.Fprintf(w, "job %s (%s): %s, round %d of %d, submitted by %s\n", termText(j.Id), termText(j.Name), status(j.Status), j.CompletedRounds, j.Rounds, termText(j.Submitter))
	if j.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", termText(j.Reason))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if j.Workflow == job.WorkflowSwarm { // the server moves no bytes of a swarm job: who aggregated instead
		fmt.Fprintln(tw, "ROUND\tSITES\tAGGREGATOR\tTRAIN LOSS\tVAL ACC\tMS\tMISSING\tFAILOVERS")
		for _, r := range j.History {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%.4f\t%.2f%%\t%.1f\t%s\t%s\n", r.Round, len(r.Answered), termText(r.Aggregator), r.TrainLoss,
				100*r.GetValidation().GetAccuracy(), float64(r.DurationMicros)/1000, termList(r.Missing, ","), termList(r.Failovers, "; "))
		}
	} else {
		fmt.Fprintln(tw, "ROUND\tSITES\tTRAIN LOSS\tVAL ACC\tBYTES\tMS\tMISSING")
		for _, r := range j.History {
			fmt.Fprintf(tw, "%d\t%d\t%.4f\t%.2f%%\t%d\t%.1f\t%s\n", r.Round, len(r.Answered), r.TrainLoss,
				100*r.GetValidation().GetAccuracy(), r.BytesMoved, float64(r.DurationMicros)/1000, termList(r.Missing, ","))
		}
	}
	tw.Flush()
	if j.Test != nil {
		fmt.Fprintf(w, "test: accuracy %.2f%%, loss %.4f, %d samples\n", 100*j.Test.Accuracy, j.Test.Loss, j.Test.Samples)
	}
	if len(j.CrossSite) > 0 {
		fmt.Fprintf(w, "cross-site evaluation (rows: the model; columns: the site that scored it):\n%s\n", crossSiteTable(j.CrossSite).text())
	}
	if j.ModelLocation != "" {
		fmt.Fprintf(w, "model: %s\n", termText(j.ModelLocation))
	}
	printSites(w, j)
}

// printSites shows each joined site's commitment and its part in the last
// round and the test: what each site reported, apart, so that one site's
// figures cannot hide in an average.
func printSites(w io.Writer, j *hearthv1.JobInfo) {
	if len(j.Commitments) == 0 {
		return
	}
	last := map[string]*hearthv1.SiteRound{}
	total := 0.0
	if n := len(j.History); n > 0 {
		for _, s := range j.History[n-1].Sites {
			last[s.Site] = s
			total += s.Weight
		}
	}
	test := map[string]*hearthv1.Metrics{}
	for _, s := range j.SiteTest {
		test[s.Site] = s.Metrics
	}
	// DP-SGD: each site's ε so far, as its own accountant reported it.
	spent := map[string]float64{}
	for _, r := range j.History {
		for _, s := range r.Sites {
			spent[s.Site] = max(spent[s.Site], s.Epsilon)
		}
	}
	epsHead := ""
	for _, e := range spent {
		if e > 0 {
			epsHead = "\tε SPENT"
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tTRAIN\tVAL\tTEST\tLAST ROUND SHARE\tVAL ACC\tTEST ACC\tCLIPPED"+epsHead)
	for _, c := range j.Commitments {
		share, val, acc, clipped := "-", "-", "-", ""
		if r := last[c.Site]; r != nil {
			if total > 0 {
				share = fmt.Sprintf("%.1f%%", 100*r.Weight/total)
			}
			if r.Validation != nil {
				val = fmt.Sprintf("%.2f%%", 100*r.Validation.Accuracy)
			}
			clipped = r.Clipped
		}
		if m := test[c.Site]; m != nil {
			acc = fmt.Sprintf("%.2f%%", 100*m.Accuracy)
		}
		eps := ""
		if epsHead != "" {
			eps = fmt.Sprintf("\t%.3f", spent[c.Site])
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s%s\n", termText(c.Site), c.TrainSamples, c.ValSamples, c.TestSamples, share, val, acc, termText(clipped), eps)
	}
	tw.Flush()
}

// printPreflight prints a dry run's answers, one row per site: what each
// site signed, or the server's word for a site it could not ask.
func printPreflight(w io.Writer, rows []coordinator.PreflightRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tDECISION\tROLE\tSAMPLES\tREASON")
	for _, r := range rows {
		a := r.Answer
		decision, reason := "refuse", a.Reason
		switch {
		case r.Problem != "":
			decision, reason = "unknown", "an answer that does not verify: "+r.Problem
		case !r.Signed:
			reason = "(the server's word) " + reason
		case a.Accepted:
			decision = "accept"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", termText(a.Site), decision, termText(a.Role), a.TrainSamples, termText(reason))
	}
	tw.Flush()
}

// printPreflightJSON prints a dry run's answers as JSON.
func printPreflightJSON(w io.Writer, rows []coordinator.PreflightRow) error {
	type row struct {
		Site         string `json:"site"`
		Accepted     bool   `json:"accepted"`
		Reason       string `json:"reason"`
		Role         string `json:"role,omitempty"`
		TrainSamples int64  `json:"train_samples,omitempty"`
		Signed       bool   `json:"signed_by_site"`
		Problem      string `json:"problem,omitempty"`
	}
	out := []row{}
	for _, r := range rows {
		a := r.Answer
		out = append(out, row{Site: a.Site, Accepted: a.Accepted && r.Signed, Reason: a.Reason, Role: a.Role, TrainSamples: a.TrainSamples, Signed: r.Signed, Problem: r.Problem})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
