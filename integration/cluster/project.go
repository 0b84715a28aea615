package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
)

// Local is a project provisioned to run on this machine.
type Local struct {
	Workspace  string
	Project    *provision.Project
	Passphrase []byte // the CA passphrase; kept in Workspace/ca/passphrase (local projects only)
	Server     string
	Sites      []string
	Admin      string
	Hosts      []string // aggregation hosts (kind aggregator), if any
}

// ProvisionLocal provisions a project with one server on loopback (free
// ports), sites named site-1..site-N in two orgs, and one project admin.
func ProvisionLocal(workspace string, sites int, now time.Time) (*Local, error) {
	return ProvisionLocalHosts(workspace, sites, 0, now)
}

// ProvisionLocalHosts is ProvisionLocal with aggregation hosts named
// agg-1..agg-H too, in the server's org.
func ProvisionLocalHosts(workspace string, sites, hosts int, now time.Time) (*Local, error) {
	return ProvisionLocalWith(workspace, LocalOptions{Sites: sites, Hosts: hosts}, now)
}

// LocalOptions are what a local project can vary.
type LocalOptions struct {
	Sites int // site-1..site-N, at least one
	Hosts int // aggregation hosts agg-1..agg-H
	// SiteProxy, when set, is the HTTP CONNECT proxy URL every site's kit
	// dials the hub through (its leaf.proxy).
	SiteProxy string
}

// ProvisionLocalWith is ProvisionLocal with the options o.
func ProvisionLocalWith(workspace string, o LocalOptions, now time.Time) (*Local, error) {
	sites, hosts := o.Sites, o.Hosts
	if sites < 1 {
		return nil, fmt.Errorf("a project needs at least one site, got %d", sites)
	}
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	p := &provision.Project{
		APIVersion: 1,
		Name:       "hearth-poc",
		Server: provision.ServerSpec{Name: "server", Org: "hearth", Hosts: []string{"localhost", "127.0.0.1"},
			LeafPort: ports[0], ClientPort: ports[1]},
		Admins: []provision.AdminSpec{{Name: "admin@hearth.local", Org: "hearth", Role: pki.RoleProjectAdmin}},
	}
	l := &Local{Workspace: workspace, Project: p, Server: "server", Admin: "admin@hearth.local"}
	for i := 1; i <= sites; i++ {
		name := fmt.Sprintf("site-%d", i)
		p.Sites = append(p.Sites, provision.SiteSpec{Name: name, Org: fmt.Sprintf("org-%c", 'a'+(i-1)%2),
			DataDir: filepath.Join("..", "..", dataDir, name), Proxy: o.SiteProxy})
		l.Sites = append(l.Sites, name)
	}
	for i := 1; i <= hosts; i++ {
		name := fmt.Sprintf("agg-%d", i)
		p.Aggregators = append(p.Aggregators, provision.AggregatorSpec{Name: name, Org: "hearth"})
		l.Hosts = append(l.Hosts, name)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	l.Passphrase = []byte(hex.EncodeToString(secret))
	if _, err := provision.Provision(p, workspace, l.Passphrase, policies.Defaults(), now); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(workspace, "ca", "passphrase"), l.Passphrase, 0o600); err != nil {
		return nil, err
	}
	return l, nil
}

// dataDir is where a local project keeps each site's data, under the
// workspace: data/<site>/<dataset>/{train,val,test}.bin.
const dataDir = "data"

// Kit is the kit folder of a participant.
func (l *Local) Kit(name string) string { return provision.KitDir(l.Workspace, name) }

// FreePorts returns n distinct free TCP ports on loopback.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
