package kit

import (
	"slices"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/pki"
)

func validSite() Config {
	return Config{
		Project: "p", Name: "site-1", Org: "a", Kind: pki.KindSite,
		Server: ServerConfig{Name: "server", Hosts: []string{"hub.example.org", "10.0.0.1"}, LeafPort: 7422, ClientPort: 4222, WebsocketPort: 443},
		Leaf:   &LeafConfig{},
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // "" = valid
	}{
		{"valid site", func(c *Config) {}, ""},
		{"valid websocket and proxy", func(c *Config) {
			c.Leaf = &LeafConfig{LocalPort: 14222, Websocket: true, Proxy: "http://127.0.0.1:3128"}
		}, ""},
		{"valid admin", func(c *Config) { c.Kind, c.Role, c.Leaf = pki.KindAdmin, pki.RoleMember, nil }, ""},
		{"bad project", func(c *Config) { c.Project = "-x" }, "project: invalid name"},
		{"admin without role", func(c *Config) { c.Kind, c.Leaf = pki.KindAdmin, nil }, "unknown role"},
		{"no hosts", func(c *Config) { c.Server.Hosts = nil }, "server.hosts: at least one"},
		{"bad host", func(c *Config) { c.Server.Hosts = []string{"tls://hub:1"} }, `server.hosts[0]: "tls://hub:1" is not a DNS name or IP address`},
		{"repeated host", func(c *Config) { c.Server.Hosts = []string{"a", "a"} }, `server.hosts[1]: "a" repeats hosts[0]`},
		{"leaf port zero", func(c *Config) { c.Server.LeafPort = 0 }, "server.leaf_port: 0 is not a port (want 1-65535)"},
		{"client port too big", func(c *Config) { c.Server.ClientPort = 65536 }, "server.client_port: 65536 is not a port"},
		{"ports clash", func(c *Config) { c.Server.WebsocketPort = 7422 }, "server.websocket_port: port 7422 is already leaf_port"},
		{"site without leaf", func(c *Config) { c.Leaf = nil }, "leaf: required for a site"},
		{"admin with leaf", func(c *Config) { c.Kind, c.Role = pki.KindAdmin, pki.RoleMember }, "leaf: only sites and aggregators"},
		{"bad local port", func(c *Config) { c.Leaf.LocalPort = -1 }, "leaf.local_port: -1 is not a port"},
		{"websocket without server port", func(c *Config) { c.Server.WebsocketPort = 0; c.Leaf.Websocket = true }, "leaf.websocket: the server has no websocket_port"},
		{"bad proxy", func(c *Config) { c.Leaf.Proxy = "socks5://x:1" }, "leaf.proxy:"},
		{"server name mismatch", func(c *Config) { c.Kind, c.Leaf = pki.KindServer, nil }, `name: server kit "site-1" but server.name is "server"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validSite()
			c.Leaf = &LeafConfig{}
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	c := validSite()
	c.Server.Hosts = []string{"hub.example.org", "::1"}
	if got, want := c.LeafURLs(), []string{"tls://hub.example.org:7422", "tls://[::1]:7422"}; !slices.Equal(got, want) {
		t.Errorf("LeafURLs = %v, want %v", got, want)
	}
	if got, want := c.ClientURLs(), []string{"tls://hub.example.org:4222", "tls://[::1]:4222"}; !slices.Equal(got, want) {
		t.Errorf("ClientURLs = %v, want %v", got, want)
	}
	c.Leaf.Websocket = true
	if got, want := c.LeafURLs(), []string{"wss://hub.example.org:443", "wss://[::1]:443"}; !slices.Equal(got, want) {
		t.Errorf("websocket LeafURLs = %v, want %v", got, want)
	}
}

func TestTamperErrorMessage(t *testing.T) {
	e := &TamperError{Kit: "/k", File: "local/a.json", Reason: reasonChanged}
	if got, want := e.Error(), "startup kit /k failed verification: local/a.json changed since provisioning"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
