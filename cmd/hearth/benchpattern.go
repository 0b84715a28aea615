package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/cmd/hearth/linkrelay"
)

// plainSwarmRound measures plain NATS moving a swarm round's bytes the way
// Hearth's swarm moves them, with no Hearth in between: sites-1 leaves
// each send size bytes to one leaf at once (the members' updates to the
// aggregator), then that leaf publishes size bytes once on a subject the
// others all subscribe (the new model, which the hub hands to each leaf).
// 1 MiB messages, 16 in flight per flow, over the project's mTLS leaf
// links (through the bench's relay with a link rate). It returns the
// bytes delivered, 2(sites-1)*size, per second of both phases.
func plainSwarmRound(ctx context.Context, ws string, size int64, sites int, link linkrelay.Rate) (float64, error) {
	net, err := startPlainNet(ctx, ws, sites, sites, link)
	if err != nil {
		return 0, err
	}
	defer net.close()
	names, conns, relay := net.names, net.conns, net.relay
	n := int((size + plainChunk - 1) / plainChunk)
	// The updates: every member's flow to the aggregator (site 0) at once.
	var updates []*plainFlow
	for i := 1; i < sites; i++ {
		f, err := newPlainFlow(conns[i], names[i], bus.Stream(names[0], names[i], "plain"),
			[]*nats.Conn{conns[0]}, []string{names[0]}, n)
		if err != nil {
			return 0, err
		}
		defer f.close()
		updates = append(updates, f)
	}
	// The model: one publication the hub hands to every member's leaf.
	model, err := newPlainFlow(conns[0], names[0], bus.Cast(names[0], "plain"), conns[1:], names[1:], n)
	if err != nil {
		return 0, err
	}
	defer model.close()
	for _, f := range append(updates, model) {
		if err := f.warm(); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	errs := make(chan error, len(updates))
	for _, f := range updates {
		go func() { errs <- f.run() }()
	}
	for range updates {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	if err := model.run(); err != nil {
		return 0, err
	}
	mbps := float64(2*int64(sites-1)*int64(n)*plainChunk) / 1e6 / time.Since(start).Seconds()
	if _, err := relay.carried(sites); err != nil {
		return 0, err
	}
	return mbps, nil
}

// plainNet is a plain NATS baseline's network, in this process: the
// project's hub (and a client on it) and a leaf node for each of the first
// sites, each with a client, linked as a round's sites are (mTLS, through
// the bench's relay when there is a link rate).
type plainNet struct {
	serverName string
	hub        *nats.Conn
	names      []string
	conns      []*nats.Conn
	relay      *benchLink
	stops      []func()
}

// startPlainNet provisions a project of sites sites in ws and starts its
// hub and the first leaves of them.
func startPlainNet(ctx context.Context, ws string, sites, leaves int, link linkrelay.Rate) (*plainNet, error) {
	local, relay, err := provisionBench(ws, sites, link)
	if err != nil {
		return nil, err
	}
	net := &plainNet{relay: relay, stops: []func(){relay.close}}
	fail := func(err error) (*plainNet, error) {
		net.close()
		return nil, err
	}
	sk, err := kit.Load(local.Kit(local.Server))
	if err != nil {
		return fail(err)
	}
	trust, err := sk.Trust()
	if err != nil {
		return fail(err)
	}
	state, err := sk.StateDir()
	if err != nil {
		return fail(err)
	}
	hub, err := bus.StartHub(bus.HubConfig{Name: sk.Config.Name, Host: "127.0.0.1", LeafPort: sk.Config.Server.LeafPort,
		ClientPort: sk.Config.Server.ClientPort, Certificate: sk.TLSCertificate(), Trust: trust, Participants: sk.Participants,
		StoreDir: filepath.Join(state, "jetstream")})
	if err != nil {
		return fail(err)
	}
	net.stops = append(net.stops, hub.Shutdown)
	if net.hub, err = hub.Connect(); err != nil {
		return fail(err)
	}
	net.stops, net.serverName = append(net.stops, net.hub.Close), sk.Config.Name
	for _, name := range local.Sites[:leaves] {
		k, err := kit.Load(local.Kit(name))
		if err != nil {
			return fail(err)
		}
		leaf, err := bus.StartLeaf(bus.LeafConfig{Name: k.Config.Name, HubURLs: k.Config.LeafURLs(), LocalPort: -1,
			Certificate: k.TLSCertificate(), Trust: trust, Proxy: k.Config.Leaf.Proxy})
		if err != nil {
			return fail(err)
		}
		net.stops = append(net.stops, leaf.Shutdown)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = leaf.WaitHub(wctx)
		cancel()
		if err != nil {
			return fail(err)
		}
		nc, err := leaf.Connect()
		if err != nil {
			return fail(err)
		}
		net.stops = append(net.stops, nc.Close)
		net.names, net.conns = append(net.names, k.Config.Name), append(net.conns, nc)
	}
	return net, nil
}

// close stops what startPlainNet started, the last first.
func (n *plainNet) close() {
	for i := len(n.stops) - 1; i >= 0; i-- {
		n.stops[i]()
	}
}

// plainChunk and plainWindow are the plain baselines' message size and
// messages in flight per flow (each receiver acknowledges every half
// window), so that nothing is dropped.
const plainChunk, plainWindow = 1 << 20, 16

// plainFlow is n messages from one connection on one subject to one or
// more receivers, each acknowledging on its own subject to the sender; the
// sender keeps at most a window ahead of the slowest.
type plainFlow struct {
	pub     *nats.Conn
	subject string
	n       int
	acked   chan [2]int // receiver, count
	subs    []*nats.Subscription
	counts  []int
}

func newPlainFlow(pub *nats.Conn, sender, subject string, receivers []*nats.Conn, names []string, n int) (*plainFlow, error) {
	f := &plainFlow{pub: pub, subject: subject, n: n, acked: make(chan [2]int, 1024), counts: make([]int, len(receivers))}
	for r, rc := range receivers {
		acks := bus.Stream(sender, names[r], "plain-"+strconv.Itoa(r))
		var mu sync.Mutex
		got := 0
		sub, err := rc.Subscribe(subject, func(m *nats.Msg) {
			if len(m.Data) == 1 { // warm-up: the links carry interest both ways
				_ = rc.Publish(acks, []byte("0"))
				return
			}
			mu.Lock()
			got++
			g := got
			mu.Unlock()
			if g%(plainWindow/2) == 0 || g == n {
				_ = rc.Publish(acks, []byte(strconv.Itoa(g)))
			}
		})
		if err != nil {
			f.close()
			return nil, err
		}
		sub.SetPendingLimits(-1, -1)
		f.subs = append(f.subs, sub)
		asub, err := pub.Subscribe(acks, func(m *nats.Msg) {
			v, _ := strconv.Atoi(string(m.Data))
			f.acked <- [2]int{r, v}
		})
		if err != nil {
			f.close()
			return nil, err
		}
		f.subs = append(f.subs, asub)
		if err := rc.Flush(); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, pub.Flush()
}

// warm sends one-byte messages until every receiver has answered one.
func (f *plainFlow) warm() error {
	heard := make([]bool, len(f.counts))
	left := len(heard)
	for deadline := time.Now().Add(10 * time.Second); left > 0; {
		if err := f.pub.Publish(f.subject, []byte{0}); err != nil {
			return err
		}
		select {
		case a := <-f.acked:
			if !heard[a[0]] {
				heard[a[0]], left = true, left-1
			}
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				return errors.New("nothing crosses the leaf links")
			}
		}
	}
	for { // late answers to the warm-up
		select {
		case <-f.acked:
		case <-time.After(50 * time.Millisecond):
			return nil
		}
	}
}

// run sends the flow's messages and returns once every receiver has them.
func (f *plainFlow) run() error {
	payload := make([]byte, plainChunk)
	slowest := func() int { return slices.Min(f.counts) }
	for sent := 0; sent < f.n || slowest() < f.n; {
		for sent < f.n && sent-slowest() < plainWindow {
			if err := f.pub.Publish(f.subject, payload); err != nil {
				return err
			}
			sent++
		}
		select {
		case a := <-f.acked:
			f.counts[a[0]] = max(f.counts[a[0]], a[1])
		case <-time.After(30 * time.Second):
			return fmt.Errorf("stalled at %d of %d messages", slowest(), f.n)
		}
	}
	return nil
}

func (f *plainFlow) close() {
	for _, s := range f.subs {
		s.Unsubscribe()
	}
}
