package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/quantize"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/cmd/hearth/linkrelay"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// benchRow is one measured configuration.
type benchRow struct {
	Workflow   string `json:"workflow"`
	Aggregator string `json:"aggregator"`
	Codec      string `json:"codec"` // what streamed models cross the wire in
	// SiteFilter is the plugin filter every site ran on its update ("" for none).
	SiteFilter   string  `json:"site_filter,omitempty"`
	ModelBytes   int64   `json:"model_bytes"`
	Sites        int     `json:"sites"`
	Rounds       int     `json:"rounds"`
	FirstSeconds float64 `json:"first_round_seconds"` // allocating every buffer
	RoundSeconds float64 `json:"round_seconds"`       // steady state: broadcast, gather, aggregate
	Checkpoint   float64 `json:"checkpoint_seconds"`
	BytesMoved   int64   `json:"bytes_moved"`
	MBps         float64 `json:"mb_per_s"`
	VsPlain      float64 `json:"ratio_to_plain_nats"` // FedAvg: the leaf -> hub path; swarm: leaf -> hub -> leaf
	// Swarm: the encryption and decryption on a round's path (streamed
	// models), as a share of the round: the wall time inside those calls,
	// and the CPU time they took.
	SealShare    float64 `json:"seal_share,omitempty"`
	SealCPUShare float64 `json:"seal_cpu_share,omitempty"`
	// Swarm: plain NATS moving the round's bytes as the round moves them
	// (the members' updates to one leaf at once, then the model published
	// once to all; plainSwarmRound), best of the baseline's runs, and the
	// round against it.
	PatternMBps float64 `json:"plain_nats_round_pattern_mb_per_s,omitempty"`
	VsPattern   float64 `json:"ratio_to_plain_nats_round_pattern,omitempty"`
	ServerRSS   int64   `json:"server_peak_rss"`
	SiteRSS     int64   `json:"site_peak_rss"`
	TotalRSS    int64   `json:"all_processes_peak_rss"`
	// Relayed is what the link relay carried both ways over the whole run,
	// all rounds and the job's setup (under --link only).
	Relayed int64 `json:"link_relayed_bytes,omitempty"`
}

// plainRuns is how many times the plain NATS baseline is measured.
const plainRuns = 3

type benchReport struct {
	// Link is the rate every site's connection to the hub was limited to,
	// each way (--link); "" on loopback.
	Link          string  `json:"link,omitempty"`
	LinkBytesPerS float64 `json:"link_bytes_per_s,omitempty"`
	// Sealfree: a build whose models travel unencrypted (swarm.Sealfree),
	// to measure what sealing costs.
	Sealfree  bool      `json:"sealfree,omitempty"`
	PlainMBps float64   `json:"plain_nats_mb_per_s"` // the best run
	PlainRuns []float64 `json:"plain_nats_runs_mb_per_s"`
	// The path swarm's bytes take: leaf -> hub -> leaf (measured when a
	// swarm configuration is).
	PeerMBps float64    `json:"plain_nats_peer_mb_per_s,omitempty"`
	PeerRuns []float64  `json:"plain_nats_peer_runs_mb_per_s,omitempty"`
	Rows     []benchRow `json:"rounds"`
}

func runBench(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "bench", "[flags]")
	sizes := fs.String("sizes", "16MiB,256MiB,1GiB", "model sizes, comma-separated (KiB, MiB, GiB, MB, GB)")
	sites := fs.String("sites", "2,4,8", "site counts, comma-separated")
	rounds := fs.Int("rounds", 4, "rounds a configuration runs: the first is reported apart, the others give the steady-state figures")
	pairs := fs.String("configs", "", "size x sites pairs to measure instead of --sizes and --sites, comma-separated: e.g. 256MiBx4,1GiBx2")
	nvflare := fs.Bool("nvflare", false, "measure the sizes NVFlare's figures are for instead: 100MB x 2 sites, 500MB x 4, 1GB x 2")
	plainBytes := fs.String("plain", "2GiB", "bytes to send for the plain NATS baseline")
	workspace := fs.String("workspace", "", "folder for the benchmark's projects (default: a temporary folder, removed afterwards)")
	asJSON := fs.Bool("json", false, "print JSON")
	profiles := fs.String("profile", "", "write each process's CPU profile into this folder as <workflow>-<aggregator>-<codec>[-filter]-<size>x<sites>-<process>.pprof")
	aggregators := fs.String("aggregators", "fedavg", "aggregation rules to measure each configuration with, comma-separated: "+
		strings.Join(slices.Sorted(maps.Keys(benchAggregations)), ", "))
	workflows := fs.String("workflows", job.WorkflowFedAvg, "workflows to measure each configuration with, comma-separated: fedavg, swarm")
	siteFilter := fs.String("site-filter", "", "also measure each configuration with this privacy filter plugin binary (e.g. hearth-filter-noop) in every site's local/privacy.json")
	codecs := fs.String("codecs", quantize.NameFloat32, "codecs streamed models cross the wire in, comma-separated (FedAvg): "+strings.Join(quantize.Names(), ", "))
	linkRate := fs.String("link", "", "put every site's connection to the hub (and the plain NATS baseline's) through a relay limited to this rate each way, "+
		"as a WAN link would: bits (1Gbit, 100Mbit) or bytes (500MB) per second; default: loopback, unlimited")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var link linkrelay.Rate
	if *linkRate != "" {
		var err error
		if link, err = linkrelay.ParseRate(*linkRate); err != nil {
			return fmt.Errorf("--link: %w", err)
		}
	}
	type config struct {
		size     int64
		sites    int
		agg      string
		workflow string
		codec    string
		filter   string
	}
	var wires []string
	for _, name := range strings.Split(*codecs, ",") {
		name = strings.TrimSpace(name)
		if _, err := quantize.ByName(name); err != nil {
			return fmt.Errorf("--codecs: %w", err)
		}
		wires = append(wires, name)
	}
	var aggs []string
	for _, a := range strings.Split(*aggregators, ",") {
		if a = strings.TrimSpace(a); benchAggregations[a] == "" {
			return fmt.Errorf("--aggregators: %q is not one of %v", a, slices.Sorted(maps.Keys(benchAggregations)))
		}
		aggs = append(aggs, a)
	}
	var grid []config
	var flows []string
	for _, w := range strings.Split(*workflows, ",") {
		if w = strings.TrimSpace(w); w != job.WorkflowFedAvg && w != job.WorkflowSwarm {
			return fmt.Errorf("--workflows: %q is not fedavg or swarm", w)
		}
		flows = append(flows, w)
	}
	switch {
	case *nvflare:
		grid = []config{{size: 100e6, sites: 2}, {size: 500e6, sites: 4}, {size: 1e9, sites: 2}}
	case *pairs != "":
		for _, p := range strings.Split(*pairs, ",") {
			size, n, ok := strings.Cut(strings.TrimSpace(p), "x")
			bytes, err := parseSize(size)
			sites, serr := strconv.Atoi(n)
			if !ok || err != nil || serr != nil || sites < 1 {
				return fmt.Errorf("--configs: %q is not SIZExSITES (e.g. 256MiBx4)", p)
			}
			grid = append(grid, config{size: bytes, sites: sites})
		}
	default:
		ss, err := parseList(*sizes, parseSize)
		if err != nil {
			return fmt.Errorf("--sizes: %w", err)
		}
		ns, err := parseList(*sites, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 0) })
		if err != nil {
			return fmt.Errorf("--sites: %w", err)
		}
		for _, s := range ss {
			for _, n := range ns {
				grid = append(grid, config{size: s, sites: int(n)})
			}
		}
	}
	// Each configuration once per workflow, aggregator and codec, side by
	// side (swarm streams float32 only).
	var all []config
	for _, g := range grid {
		for _, w := range flows {
			for _, a := range aggs {
				for _, c := range wires {
					if w == job.WorkflowSwarm && c != quantize.NameFloat32 {
						continue
					}
					g.agg, g.workflow, g.codec, g.filter = a, w, c, ""
					all = append(all, g)
					if *siteFilter != "" {
						g.filter = *siteFilter
						all = append(all, g)
					}
				}
			}
		}
	}
	grid = all
	plain, err := parseSize(*plainBytes)
	if err != nil {
		return fmt.Errorf("--plain: %w", err)
	}
	ws := *workspace
	if ws == "" {
		if ws, err = os.MkdirTemp("", "hearth-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(ws)
	}
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(c.stdout, format+"\n", a...)
		}
	}
	// The baseline is the best of a few runs: its fastest, which is what
	// Hearth's rounds are held against.
	var rep benchReport
	if swarm.Sealfree {
		// The servers and sites this bench starts inherit it.
		if err := os.Setenv(sealfreeBench, "1"); err != nil {
			return err
		}
		rep.Sealfree = true
		say("sealfree build: models travel unencrypted, where the real build seals them, to measure what sealing costs (never a release)")
	}
	if link > 0 {
		rep.Link, rep.LinkBytesPerS = link.String(), float64(link)
		say("link: every site's connection to the hub through the bench's relay, %s each way per site (TLS end to end through it)", link)
	}
	for i := range plainRuns {
		v, err := plainThroughput(ctx, filepath.Join(ws, fmt.Sprintf("plain-%d", i)), plain, link)
		if err != nil {
			return fmt.Errorf("plain NATS baseline: %w", err)
		}
		rep.PlainRuns = append(rep.PlainRuns, v)
		rep.PlainMBps = max(rep.PlainMBps, v)
	}
	say("plain NATS, leaf -> hub%s, mTLS, compression off, %s in 1 MiB messages: %.0f MB/s (best of %d: %.0f-%.0f)",
		overLink(link), sizeText(plain), rep.PlainMBps, plainRuns, slices.Min(rep.PlainRuns), rep.PlainMBps)
	if slices.Contains(flows, job.WorkflowSwarm) {
		for i := range plainRuns {
			v, err := plainPeerThroughput(ctx, filepath.Join(ws, fmt.Sprintf("peer-%d", i)), plain, link)
			if err != nil {
				return fmt.Errorf("plain NATS leaf-to-leaf baseline: %w", err)
			}
			rep.PeerRuns = append(rep.PeerRuns, v)
			rep.PeerMBps = max(rep.PeerMBps, v)
		}
		say("plain NATS, leaf -> hub -> leaf (swarm's path)%s, same links, %s: %.0f MB/s (best of %d: %.0f-%.0f)",
			overLink(link), sizeText(plain), rep.PeerMBps, plainRuns, slices.Min(rep.PeerRuns), rep.PeerMBps)
	}
	say("\n%-8s %-16s %-12s %-7s %-9s %5s %8s %8s %10s %7s %9s %10s %6s %8s %11s %11s %11s %7s", "workflow", "aggregator", "codec", "filter", "model", "sites", "first s", "round s", "moved", "MB/s", "vs plain", "vs pattern", "seal", "seal cpu", "server RSS", "site RSS", "all RSS", "ckpt s")
	var patterns []string // printed after the table: the rows' pattern baselines
	for i, g := range grid {
		var extra []func(string) []string
		if *profiles != "" {
			extra = append(extra, func(name string) []string {
				return []string{"--cpu-profile", filepath.Join(*profiles, profileName(g.workflow, g.agg, g.codec, g.filter, g.size, g.sites, name))}
			})
		}
		row, err := benchRound(ctx, filepath.Join(ws, fmt.Sprintf("round-%d", i)), g.workflow, g.agg, g.codec, g.filter, g.size, g.sites, *rounds, link, extra...)
		if err != nil {
			return fmt.Errorf("%s %s %s, %s with %d sites: %w", g.workflow, g.agg, g.codec, sizeText(g.size), g.sites, err)
		}
		row.VsPlain = row.MBps / rep.PlainMBps
		if row.Workflow == job.WorkflowSwarm {
			row.VsPlain = row.MBps / rep.PeerMBps
			var runs []float64
			for i := range plainRuns {
				v, err := plainSwarmRound(ctx, filepath.Join(ws, fmt.Sprintf("pattern-%d-%d", len(rep.Rows), i)), g.size, g.sites, link)
				if err != nil {
					return fmt.Errorf("plain NATS swarm-round baseline: %w", err)
				}
				runs = append(runs, v)
			}
			row.PatternMBps = slices.Max(runs)
			row.VsPattern = row.MBps / row.PatternMBps
			patterns = append(patterns, fmt.Sprintf("plain NATS, a swarm round's pattern%s, %s x %d (%d updates to one leaf at once, then one publication to all): %.0f MB/s (best of %d: %.0f-%.0f)",
				overLink(link), sizeText(g.size), g.sites, g.sites-1, row.PatternMBps, plainRuns, slices.Min(runs), row.PatternMBps))
		}
		rep.Rows = append(rep.Rows, *row)
		seal, sealCPU, vsPattern := "-", "-", "-"
		if row.VsPattern > 0 {
			vsPattern = fmt.Sprintf("%.0f%%", 100*row.VsPattern)
		}
		if row.SealShare > 0 {
			seal, sealCPU = fmt.Sprintf("%.0f%%", 100*row.SealShare), fmt.Sprintf("%.0f%%", 100*row.SealCPUShare)
		}
		filter := "-"
		if row.SiteFilter != "" {
			filter = "plugin"
		}
		say("%-8s %-16s %-12s %-7s %-9s %5d %8.2f %8.2f %10s %7.0f %8.0f%% %10s %6s %8s %11s %11s %11s %7.2f", row.Workflow, row.Aggregator, row.Codec, filter, sizeText(row.ModelBytes), row.Sites, row.FirstSeconds, row.RoundSeconds, sizeText(row.BytesMoved),
			row.MBps, 100*row.VsPlain, vsPattern, seal, sealCPU, sizeText(row.ServerRSS), sizeText(row.SiteRSS), sizeText(row.TotalRSS), row.Checkpoint)
	}
	if len(patterns) > 0 {
		say("")
		for _, p := range patterns {
			say("%s", p)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

// benchAggregations are the aggregation rules bench measures, as the job
// manifest's aggregation section.
var benchAggregations = map[string]string{
	"fedavg":           "{}", // the default: FedAvg with the relative norm bound, chunks in lockstep
	"fedavg_unbounded": "{unbounded: true}",
	"median":           "{method: median}",
	"trimmed_mean":     "{method: trimmed_mean, trim: 1}",
}

// provisionBench provisions a project of sites sites in ws whose kits dial
// the hub through the bench's relay (serving, with a link rate; the caller
// closes it).
func provisionBench(ws string, sites int, link linkrelay.Rate) (*cluster.Local, *benchLink, error) {
	if err := os.MkdirAll(ws, 0o700); err != nil {
		return nil, nil, err
	}
	relay, err := newBenchLink(link)
	if err != nil {
		return nil, nil, err
	}
	local, err := cluster.ProvisionLocalWith(ws, cluster.LocalOptions{Sites: sites, SiteProxy: relay.url()}, time.Now())
	if err != nil {
		relay.abandon()
		return nil, nil, err
	}
	if err := relay.serve(local.Project.Server); err != nil {
		return nil, nil, err
	}
	return local, relay, nil
}

// benchRound runs rounds of a noop model of size bytes in workflow
// (fedavg or swarm) under the aggregation rule agg (a key of
// benchAggregations), its streams in codec, on a server and `sites` sites
// as separate processes, and measures them. With a link rate, every
// site's kit dials the hub through a relay of that rate.
func benchRound(ctx context.Context, ws, workflow, agg, codec, siteFilter string, size int64, sites, rounds int, link linkrelay.Rate, extra ...func(string) []string) (*benchRow, error) {
	local, relay, err := provisionBench(ws, sites, link)
	if err != nil {
		return nil, err
	}
	defer relay.close()
	if _, err := local.PrepareData("wdbc", 100, 1); err != nil { // sites need local data to join; noop ignores it
		return nil, err
	}
	if siteFilter != "" {
		if err := pinSiteFilter(local, siteFilter); err != nil {
			return nil, err
		}
	}
	procs, err := startLocal(ctx, local, filepath.Join(ws, "logs"), extra...)
	defer procs.stop(os.Stderr)
	if err != nil {
		return nil, err
	}
	k, err := kit.Load(local.Kit(local.Admin))
	if err != nil {
		return nil, err
	}
	admin, err := openConsole(ctx, nil, os.Stderr, k, time.Minute)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	dir := filepath.Join(ws, "job")
	manifest := fmt.Sprintf(`name: bench
workflow: %s
rounds: %d
sites: ["@all"]
min_sites: %d
round_timeout: 30m
dataset: wdbc
trainer: {kind: noop, params: %d}
evaluation: {validation: false, test: false}
aggregation: %s
%s`, workflow, rounds, sites, size/4, benchAggregations[agg], quantizeLine(codec))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, job.ManifestFile), []byte(manifest), 0o644); err != nil {
		return nil, err
	}
	id, err := admin.Submit(ctx, dir)
	if err != nil {
		return nil, err
	}
	info, err := admin.Follow(ctx, id, 100*time.Millisecond, nil)
	if err != nil {
		return nil, err
	}
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || len(info.History) == 0 {
		return nil, fmt.Errorf("job %s: %s", status(info.Status), info.Reason)
	}
	if len(info.History) != rounds {
		return nil, fmt.Errorf("job finished after %d of %d rounds", len(info.History), rounds)
	}
	first := info.History[0]
	row := &benchRow{Workflow: workflow, Aggregator: agg, Codec: codec, SiteFilter: siteFilter, ModelBytes: size / 4 * 4, Sites: sites, Rounds: rounds, FirstSeconds: float64(first.DurationMicros) / 1e6}
	// Steady state: the median of the rounds after the first (the first
	// alone when there is no other), so one slow round does not move it.
	steady := info.History
	if len(steady) > 1 {
		steady = steady[1:]
	}
	var secs, ckpt []float64
	for _, r := range steady {
		secs = append(secs, float64(r.DurationMicros)/1e6)
		ckpt = append(ckpt, float64(r.CheckpointMicros)/1e6)
	}
	row.RoundSeconds, row.Checkpoint, row.BytesMoved = median(secs), median(ckpt), steady[0].BytesMoved
	if workflow == job.WorkflowSwarm {
		// The server sees no weights: a round moves an update from each
		// member but the aggregator to it and the new model back to each,
		// leaf -> hub -> leaf.
		row.BytesMoved = 2 * int64(sites-1) * row.ModelBytes
		var seal, sealCPU []float64
		for _, r := range steady {
			seal = append(seal, float64(r.SealMicros)/float64(r.DurationMicros))
			sealCPU = append(sealCPU, float64(r.SealCpuMicros)/float64(r.DurationMicros))
		}
		row.SealShare, row.SealCPUShare = median(seal), median(sealCPU)
	}
	row.MBps = float64(row.BytesMoved) / 1e6 / row.RoundSeconds
	if row.Relayed, err = relay.carried(sites); err != nil {
		return nil, err
	}
	for i, p := range procs {
		rss, err := p.PeakRSS()
		if err != nil {
			return nil, err
		}
		row.TotalRSS += rss
		switch i {
		case 0:
			row.ServerRSS = rss
		case 1:
			row.SiteRSS = rss
		}
	}
	return row, nil
}

// pinSiteFilter writes into every site's local/privacy.json a default
// scope whose one result filter is the plugin binary at path, pinned by
// its SHA-256.
func pinSiteFilter(local *cluster.Local, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("--site-filter: %w", err)
	}
	sum := sha256.Sum256(bin)
	doc := fmt.Sprintf(`{"default_scope": "bench",
 "scopes": [{"name": "bench", "task_result_filters": [{"plugin": {"path": %q, "sha256": %q}, "timeout": "10m"}]}]}`, abs, hex.EncodeToString(sum[:]))
	for _, site := range local.Sites {
		if err := os.WriteFile(filepath.Join(local.Kit(site), "local", "privacy.json"), []byte(doc), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// quantizeLine is a bench job's quantize line: none for float32, which
// streams the model's own bytes.
func quantizeLine(codec string) string {
	if codec == "" || codec == quantize.NameFloat32 {
		return ""
	}
	return "quantize: " + codec + "\n"
}

// plainThroughput measures plain NATS on the path the sites' updates take
// in FedAvg: a leaf node's connection publishing 1 MiB messages to a
// subscriber on the hub, over the project's mTLS leaf link with
// compression off, with a window of 16 messages in flight (the receiver
// acknowledges every 8) so that nothing is dropped.
func plainThroughput(ctx context.Context, ws string, total int64, link linkrelay.Rate) (float64, error) {
	return plainRun(ctx, ws, total, link, false)
}

// plainPeerThroughput is plainThroughput on swarm's path: from one leaf
// node through the hub to a subscriber on another leaf node.
func plainPeerThroughput(ctx context.Context, ws string, total int64, link linkrelay.Rate) (float64, error) {
	return plainRun(ctx, ws, total, link, true)
}

// plainRun is the baseline; with a link rate, each leaf reaches the hub
// through a relay of that rate, as the sites of a round do.
func plainRun(ctx context.Context, ws string, total int64, link linkrelay.Rate, peer bool) (float64, error) {
	leaves := 1
	if peer {
		leaves = 2
	}
	net, err := startPlainNet(ctx, ws, 2, leaves, link)
	if err != nil {
		return 0, err
	}
	defer net.close()
	receiver, name := net.hub, net.serverName
	if peer {
		receiver, name = net.conns[1], net.names[1]
	}
	f, err := newPlainFlow(net.conns[0], net.names[0], bus.Stream(name, net.names[0], "plain"), []*nats.Conn{receiver}, []string{name},
		int((total+plainChunk-1)/plainChunk))
	if err != nil {
		return 0, err
	}
	defer f.close()
	if err := f.warm(); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := f.run(); err != nil {
		return 0, err
	}
	mbps := float64(int64(f.n)*plainChunk) / 1e6 / time.Since(start).Seconds()
	if _, err := net.relay.carried(leaves); err != nil {
		return 0, err
	}
	return mbps, nil
}

// median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	return (xs[(n-1)/2] + xs[n/2]) / 2
}

func parseList(s string, parse func(string) (int64, error)) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		if v <= 0 {
			return nil, fmt.Errorf("%q is not positive", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseSize reads "16MiB", "1GiB", "500MB", "1GB" or a byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return int64(v * float64(u.mult)), nil
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return bytesText(n)
}

// overLink is how the baseline's line names the link it crossed.
func overLink(link linkrelay.Rate) string {
	if link == 0 {
		return ""
	}
	return " over the relay"
}

// benchLink is a configuration's rate-limited link: a relay that every
// site's kit names as its proxy. With no rate it is nothing, and each of
// its methods does nothing.
type benchLink struct {
	rate  linkrelay.Rate
	ln    net.Listener
	relay *linkrelay.Relay
}

// newBenchLink listens on loopback for the relay (so that its address can
// go into the kits) when rate is set.
func newBenchLink(rate linkrelay.Rate) (*benchLink, error) {
	if rate == 0 {
		return &benchLink{}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("link relay: %w", err)
	}
	return &benchLink{rate: rate, ln: ln}, nil
}

// url is the proxy URL for the sites' kits ("" = direct).
func (l *benchLink) url() string {
	if l.ln == nil {
		return ""
	}
	return "http://" + l.ln.Addr().String()
}

// serve starts relaying to the hub's leaf addresses, those of server.
func (l *benchLink) serve(server provision.ServerSpec) error {
	if l.ln == nil {
		return nil
	}
	var targets []string
	for _, h := range server.Hosts {
		targets = append(targets, net.JoinHostPort(h, strconv.Itoa(server.LeafPort)))
	}
	r, err := linkrelay.Serve(l.ln, linkrelay.Config{Rate: l.rate, Targets: targets})
	if err != nil {
		l.ln.Close()
		return fmt.Errorf("link relay: %w", err)
	}
	l.relay = r
	return nil
}

// carried is what the relay carried both ways; an error when fewer than
// leaves tunnels went through it or it refused any (a site that reached
// the hub around the link would make the figures loopback's).
func (l *benchLink) carried(leaves int) (int64, error) {
	if l.relay == nil {
		return 0, nil
	}
	st := l.relay.Stats()
	if st.Tunnels < int64(leaves) || st.Refused > 0 {
		return 0, fmt.Errorf("link relay: %d tunnels for %d leaf nodes, %d refused: not every link went through it", st.Tunnels, leaves, st.Refused)
	}
	return st.Upstream + st.Down, nil
}

// abandon closes the listener of a relay that never started.
func (l *benchLink) abandon() {
	if l.ln != nil {
		l.ln.Close()
	}
}

// close stops the relay.
func (l *benchLink) close() {
	if l.relay != nil {
		l.relay.Close()
	}
}

// profileName is the CPU profile file of one process of one configuration:
// every axis of the grid in it, so that no configuration's profile
// overwrites another's.
func profileName(workflow, agg, codec, filter string, size int64, sites int, process string) string {
	f := ""
	if filter != "" {
		f = "-filter"
	}
	return fmt.Sprintf("%s-%s-%s%s-%sx%d-%s.pprof", workflow, agg, codec, f, strings.ReplaceAll(sizeText(size), " ", ""), sites, process)
}
