package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/integration/cluster"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
	"google.golang.org/protobuf/proto"
)

// pocSummary is what `hearth poc --json` prints.
type pocSummary struct {
	Workspace string        `json:"workspace"`
	Sites     []string      `json:"sites"`
	Pings     []pingResult  `json:"pings"`
	Notices   int           `json:"notices_delivered"`
	Refused   []refusalSeen `json:"refused"`
	Seconds   float64       `json:"seconds"`
}

type pingResult struct {
	To        string  `json:"to"`
	Responder string  `json:"responder"`
	RTTMillis float64 `json:"rtt_ms"`
}

type refusalSeen struct {
	At     string `json:"at"`
	Reason string `json:"reason"`
}

func runPOC(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "poc", "[flags]")
	sites := fs.Int("sites", 3, "number of sites")
	workspace := fs.String("workspace", "", "workspace folder (default: a new temporary folder, removed afterwards)")
	asJSON := fs.Bool("json", false, "print a JSON summary instead of progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(c.stdout, format+"\n", a...)
		}
	}
	ws := *workspace
	if ws == "" {
		tmp, err := os.MkdirTemp("", "hearth-poc-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		ws = tmp
	}
	binary, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the hearth binary: %w", err)
	}
	local, err := cluster.ProvisionLocal(ws, *sites, time.Now())
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	say("provisioned project %q in %s: server, %d sites, admin %s", local.Project.Name, ws, *sites, local.Admin)

	logs := filepath.Join(ws, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}
	var procs []*cluster.Proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].Stop(10 * time.Second); err != nil {
				fmt.Fprintf(c.stderr, "hearth: stopping %s: %v\n", procs[i].Name, err)
			}
		}
	}()
	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	startProc := func(name string, args ...string) (*cluster.Proc, error) {
		p, err := cluster.Start(binary, filepath.Join(logs, name+".log"), name, append(args, "--log-format", "json")...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}
	server, err := startProc("server", "server", "-k", local.Kit("server"), "--listen", "127.0.0.1")
	if err != nil {
		return err
	}
	rec, err := server.AwaitReady(readyCtx)
	if err != nil {
		return err
	}
	say("server: hub up, leafnodes on %s, admin clients on %s (mTLS, TLS 1.3)", rec.Str("leaf"), rec.Str("client"))
	siteProcs := map[string]*cluster.Proc{}
	for _, s := range local.Sites {
		p, err := startProc(s, "site", "-k", local.Kit(s))
		if err != nil {
			return err
		}
		siteProcs[s] = p
	}
	for _, s := range local.Sites {
		if _, err := siteProcs[s].AwaitReady(readyCtx); err != nil {
			return err
		}
		say("%s: leaf node joined the hub", s)
	}

	k, err := kit.Load(local.Kit(local.Admin))
	if err != nil {
		return err
	}
	admin, err := node.StartAdmin(ctx, k, node.Options{})
	if err != nil {
		return err
	}
	defer admin.Close()
	summary := pocSummary{Workspace: ws, Sites: local.Sites}

	for _, to := range append([]string{local.Server}, local.Sites...) {
		t0 := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		reply, err := admin.Bridge.Request(rctx, to, &hearthv1.Ping{Seq: 1, Text: "hello from the admin console"})
		rcancel()
		if err != nil {
			return err
		}
		pong := reply.Msg.(*hearthv1.Pong)
		r := pingResult{To: to, Responder: pong.Responder, RTTMillis: float64(time.Since(t0).Microseconds()) / 1000}
		summary.Pings = append(summary.Pings, r)
		say("admin -> %-8s signed Ping, verified Pong from %s (%s, org %s) in %.2f ms", to, pong.Responder,
			reply.From.Kind, reply.From.Org, r.RTTMillis)
	}
	for _, s := range local.Sites {
		admin.System.Root.Send(admin.Bridge.PID(), &bridge.Send{To: s, Msg: &hearthv1.Notice{Text: "welcome to the federation, " + s}})
	}
	for _, s := range local.Sites {
		if _, err := siteProcs[s].Await(readyCtx, "notice", func(r cluster.Record) bool { return r.Msg() == "notice" }); err != nil {
			return err
		}
		summary.Notices++
	}
	say("admin -> sites: %d signed notices delivered to the sites' actors", summary.Notices)

	// Show the envelope checks at work: a tampered and a replayed envelope.
	target := local.Sites[0]
	data, _, err := admin.Signer.Sign(envelope.Outgoing{Recipient: target, Body: &hearthv1.Notice{Text: "genuine"}}, time.Now())
	if err != nil {
		return err
	}
	var env hearthv1.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		return err
	}
	env.Body[len(env.Body)-1] ^= 1 // "genuine" becomes "genuind"
	tampered, err := proto.Marshal(&env)
	if err != nil {
		return err
	}
	subject := bus.Direct(target, local.Admin)
	for _, d := range [][]byte{tampered, data, data} {
		if err := admin.Conn.Publish(subject, d); err != nil {
			return err
		}
	}
	for _, want := range []string{"bad_signature", "replay"} {
		_, err := siteProcs[target].Await(readyCtx, "refusal "+want, func(r cluster.Record) bool {
			return r.Msg() == "envelope refused" && r.Str("reason") == want
		})
		if err != nil {
			return err
		}
		summary.Refused = append(summary.Refused, refusalSeen{At: target, Reason: want})
		say("%s: refused a %s envelope (%s) before any actor saw it", target, map[string]string{"bad_signature": "tampered", "replay": "replayed"}[want], want)
	}

	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(10 * time.Second); err != nil {
			return fmt.Errorf("%s did not stop cleanly: %w", procs[i].Name, err)
		}
	}
	procs = nil
	summary.Seconds = time.Since(start).Seconds()
	say("all processes stopped cleanly in %.1fs; logs were in %s", summary.Seconds, logs)
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(summary)
	}
	return nil
}
