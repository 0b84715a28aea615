package provision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"gopkg.in/yaml.v3"
)

// DefaultCertValidityDays is how long participant certificates last when a
// project file does not say.
const DefaultCertValidityDays = 365

// Project is project.yml: a project's participants and where its hub listens.
type Project struct {
	APIVersion       int              `yaml:"api_version"` // 1
	Name             string           `yaml:"name"`
	Server           ServerSpec       `yaml:"server"`
	Sites            []SiteSpec       `yaml:"sites,omitempty"`
	Admins           []AdminSpec      `yaml:"admins,omitempty"`
	Aggregators      []AggregatorSpec `yaml:"aggregators,omitempty"`
	CertValidityDays int              `yaml:"cert_validity_days,omitempty"` // default 365
	// Limits bound what one admin may hold on the server: running jobs,
	// kept checkpoints and how long they are kept (the server's defaults
	// when omitted).
	Limits *kit.Limits `yaml:"limits,omitempty"`
}

// ServerSpec is the project's server: the hub every participant dials.
type ServerSpec struct {
	Name          string   `yaml:"name"`
	Org           string   `yaml:"org"`
	Hosts         []string `yaml:"hosts"`                    // DNS names / IPs put in the server certificate; hosts[0] is dialed
	LeafPort      int      `yaml:"leaf_port"`                // mTLS leafnode listener
	ClientPort    int      `yaml:"client_port"`              // mTLS client listener for admin consoles
	WebsocketPort int      `yaml:"websocket_port,omitempty"` // wss leaf listener; 0 = off
}

// SiteSpec is a site: a data owner that runs a leaf node.
type SiteSpec struct {
	Name      string `yaml:"name"`
	Org       string `yaml:"org"`
	LocalPort int    `yaml:"local_port,omitempty"` // loopback listener for site-local processes; 0 = pick at start
	Websocket bool   `yaml:"websocket,omitempty"`  // dial the hub over wss
	Proxy     string `yaml:"proxy,omitempty"`      // HTTP CONNECT proxy URL
	DataDir   string `yaml:"data_dir,omitempty"`   // the site's local data, relative to its kit or absolute
}

// AdminSpec is a person who runs the admin console.
type AdminSpec struct {
	Name string   `yaml:"name"`
	Org  string   `yaml:"org"`
	Role pki.Role `yaml:"role"` // project_admin, org_admin, lead or member
}

// AggregatorSpec is an aggregation host that joins as a leaf.
type AggregatorSpec struct {
	Name string `yaml:"name"`
	Org  string `yaml:"org"`
}

// ParseProject parses a project file strictly (an unknown field is an
// error), fills in defaults (cert_validity_days 365) and validates it.
func ParseProject(data []byte) (*Project, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Project
	if err := dec.Decode(&p); errors.Is(err, io.EOF) {
		return nil, errors.New("project file is empty")
	} else if err != nil {
		return nil, fmt.Errorf("parse project file: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse project file: it holds more than one YAML document")
	}
	if p.CertValidityDays == 0 {
		p.CertValidityDays = DefaultCertValidityDays
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the project: api_version 1; valid project, participant
// and org names (pki.ValidName); participant names unique across server,
// sites, admins and aggregators (ignoring case, since names become folder
// names); admin roles known; server hosts present and well formed; ports in
// 1..65535 (websocket_port 0 = off) and distinct; site settings coherent.
// All problems are reported together (errors.Join), each naming its field,
// e.g. `sites[2].name: duplicate participant name "site-1"`.
func (p *Project) Validate() error {
	var errs []error
	if p.APIVersion != 1 {
		errs = append(errs, fmt.Errorf("api_version: %d is not supported (want 1)", p.APIVersion))
	}
	if err := pki.ValidName(p.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if p.CertValidityDays < 0 {
		errs = append(errs, fmt.Errorf("cert_validity_days: %d is negative (omit it for %d)", p.CertValidityDays, DefaultCertValidityDays))
	}
	server := p.serverConfig()
	errs = append(errs, kit.Prefixed("server.", server.Validate())...)
	if p.Limits != nil {
		if err := p.Limits.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	seen := map[string]string{} // lowercased name -> field
	for _, m := range p.members() {
		if err := pki.ValidName(m.id.Name); err != nil {
			if m.id.Kind != pki.KindServer { // the server's name was checked with its config
				errs = append(errs, fmt.Errorf("%s.name: %w", m.field, err))
			}
		} else if _, dup := seen[strings.ToLower(m.id.Name)]; dup {
			errs = append(errs, fmt.Errorf("%s.name: duplicate participant name %q", m.field, m.id.Name))
		} else {
			seen[strings.ToLower(m.id.Name)] = m.field
		}
		if err := pki.ValidName(m.id.Org); err != nil {
			errs = append(errs, fmt.Errorf("%s.org: %w", m.field, err))
		}
		if m.id.Kind == pki.KindAdmin && !m.id.Role.Valid() {
			errs = append(errs, fmt.Errorf("%s.role: unknown role %q (want project_admin, org_admin, lead or member)", m.field, m.id.Role))
		}
		if m.id.Kind == pki.KindSite {
			errs = append(errs, kit.Prefixed(m.field+".", m.leaf.Validate(server))...)
		}
	}
	return errors.Join(errs...)
}

// validityDays is cert_validity_days, or its default when unset.
func (p *Project) validityDays() int {
	if p.CertValidityDays > 0 {
		return p.CertValidityDays
	}
	return DefaultCertValidityDays
}

func (p *Project) serverConfig() kit.ServerConfig {
	return kit.ServerConfig{
		Name:          p.Server.Name,
		Hosts:         slices.Clone(p.Server.Hosts),
		LeafPort:      p.Server.LeafPort,
		ClientPort:    p.Server.ClientPort,
		WebsocketPort: p.Server.WebsocketPort,
	}
}

// siteHosts are the names in every site certificate: the site serves its
// site-local processes on loopback only.
var siteHosts = []string{"localhost", "127.0.0.1"}

// member is one participant of a project, whatever its kind.
type member struct {
	field string // where it is in the project file, e.g. "sites[2]"
	id    pki.Identity
	hosts []string        // certificate SANs
	leaf  *kit.LeafConfig // sites and aggregators
	spec  any             // the ServerSpec, SiteSpec, AdminSpec or AggregatorSpec
}

// members lists the project's participants: the server, then sites,
// admins and aggregators in file order.
func (p *Project) members() []member {
	ms := []member{{
		field: "server",
		id:    pki.Identity{Name: p.Server.Name, Org: p.Server.Org, Kind: pki.KindServer},
		hosts: slices.Clone(p.Server.Hosts),
		spec:  p.Server,
	}}
	for i, s := range p.Sites {
		ms = append(ms, member{
			field: fmt.Sprintf("sites[%d]", i),
			id:    pki.Identity{Name: s.Name, Org: s.Org, Kind: pki.KindSite},
			hosts: slices.Clone(siteHosts),
			leaf:  &kit.LeafConfig{LocalPort: s.LocalPort, Websocket: s.Websocket, Proxy: s.Proxy, DataDir: s.DataDir},
			spec:  s,
		})
	}
	for i, a := range p.Admins {
		ms = append(ms, member{
			field: fmt.Sprintf("admins[%d]", i),
			id:    pki.Identity{Name: a.Name, Org: a.Org, Kind: pki.KindAdmin, Role: a.Role},
			spec:  a,
		})
	}
	for i, a := range p.Aggregators {
		ms = append(ms, member{
			field: fmt.Sprintf("aggregators[%d]", i),
			id:    pki.Identity{Name: a.Name, Org: a.Org, Kind: pki.KindAggregator},
			leaf:  &kit.LeafConfig{},
			spec:  a,
		})
	}
	return ms
}

// find returns the member named name, ignoring case.
func (p *Project) find(name string) (member, bool) {
	for _, m := range p.members() {
		if strings.EqualFold(m.id.Name, name) {
			return m, true
		}
	}
	return member{}, false
}

// add appends a participant's spec to its list (the server is not added:
// a project has exactly one).
func (p *Project) add(spec any) {
	switch s := spec.(type) {
	case SiteSpec:
		p.Sites = append(p.Sites, s)
	case AdminSpec:
		p.Admins = append(p.Admins, s)
	case AggregatorSpec:
		p.Aggregators = append(p.Aggregators, s)
	}
}

// others are the identities of every participant but the server: everyone
// the hub admits (participants.json).
func (p *Project) others() []pki.Identity {
	var ids []pki.Identity
	for _, m := range p.members()[1:] {
		ids = append(ids, m.id)
	}
	return ids
}

// clone copies p deeply enough that appending to its lists leaves p alone.
func (p *Project) clone() *Project {
	c := *p
	c.Server.Hosts = slices.Clone(p.Server.Hosts)
	c.Sites = slices.Clone(p.Sites)
	c.Admins = slices.Clone(p.Admins)
	c.Aggregators = slices.Clone(p.Aggregators)
	return &c
}

// marshal renders p as project.yml.
func (p *Project) marshal() ([]byte, error) {
	body, err := yaml.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("render project file: %w", err)
	}
	return append([]byte("# Written by hearth: the project as provisioned so far. Edit your own project file, not this one.\n"), body...), nil
}
