package bus_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// TestLeafOverWebsocket joins a site over wss (the hub's websocket listener)
// and sends a message through it.
func TestLeafOverWebsocket(t *testing.T) {
	p := pkitest.New(t)
	server := p.Issue(t, "server", "hearth", pki.KindServer)
	site := p.Issue(t, "site-1", "org-a", pki.KindSite)
	admin := p.Issue(t, "admin@hearth.org", "hearth", pki.KindAdmin)
	refusals := make(chan bus.Refusal, 8)
	hub, err := bus.StartHub(bus.HubConfig{Name: "server", Host: "127.0.0.1", LeafPort: -1, ClientPort: -1, WebsocketPort: -1,
		Certificate: server.TLS(), Trust: p.Trust, StoreDir: t.TempDir(), Logger: bustest.Logger(),
		Participants: []pki.Identity{site.Identity, admin.Identity},
		OnRefusal:    func(r bus.Refusal) { refusals <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown()
	join := func(part *pkitest.Participant) *bus.Leaf {
		leaf, err := bus.StartLeaf(bus.LeafConfig{Name: part.Identity.Name, HubURLs: []string{"wss://" + hub.WebsocketAddr()},
			LocalPort: -1, Certificate: part.TLS(), Trust: p.Trust, Logger: bustest.Logger(), ReconnectInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(leaf.Shutdown)
		return leaf
	}
	leaf := join(site)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaf.WaitHub(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := leaf.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, err := hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	inbox, _ := sc.SubscribeSync(bus.Inbox("server"))
	bustest.DeliverUntilSeen(t, nc, bus.Direct("server", "site-1"), inbox)

	// The websocket listener checks certificates like the leafnode one.
	join(admin)
	select {
	case r := <-refusals:
		if r.Listener != "websocket" || r.Reason() != "wrong_kind" {
			t.Fatalf("refusal %+v (%s), want websocket wrong_kind", r, r.Reason())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("admin certificate over websocket was not refused")
	}
}

// TestLeafThroughHTTPConnectProxy joins a site through a real HTTP CONNECT
// proxy (tinyproxy), as a site whose only way out is its proxy would. Under
// CI=true the proxy must be installed (.ci/run installs it).
func TestLeafThroughHTTPConnectProxy(t *testing.T) {
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tinyproxy is required under CI (apt-get install tinyproxy)")
		}
		t.Skip("tinyproxy not installed: apt-get install tinyproxy to run this test")
	}
	tp := bustest.NewTopology(t, "site-1")
	port := freePort(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "tinyproxy.log")
	conf := filepath.Join(dir, "tinyproxy.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(
		"Port %d\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nLogFile %q\nLogLevel Connect\nPidFile %q\nMaxClients 10\n",
		port, logFile, filepath.Join(dir, "tinyproxy.pid"))), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	proxy := exec.Command(bin, "-d", "-c", conf)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { proxy.Process.Kill(); proxy.Wait() }()

	leaf, err := bus.StartLeaf(bus.LeafConfig{Name: "site-1", HubURLs: []string{"tls://" + tp.Hub.LeafAddr()}, LocalPort: -1,
		Certificate: tp.Sites["site-1"].TLS(), Trust: tp.Project.Trust, Logger: bustest.Logger(),
		Proxy: fmt.Sprintf("http://127.0.0.1:%d", port), ReconnectInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := leaf.WaitHub(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := leaf.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, err := tp.Hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	inbox, _ := sc.SubscribeSync(bus.Inbox("server"))
	bustest.DeliverUntilSeen(t, nc, bus.Direct("server", "site-1"), inbox)

	// The link really went through the proxy.
	bustest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		log, _ := os.ReadFile(logFile)
		_, port, _ := strings.Cut(tp.Hub.LeafAddr(), ":")
		if !strings.Contains(string(log), "CONNECT") || !strings.Contains(string(log), port) {
			return fmt.Errorf("proxy log shows no CONNECT to the hub's port %s:\n%s", port, log)
		}
		return nil
	})
}

// freePort returns a TCP port on loopback that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
