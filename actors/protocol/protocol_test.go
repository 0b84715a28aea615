package protocol_test

import (
	"slices"
	"testing"

	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Table is what bus/node is handed.
var _ node.Protocol = protocol.Table{}

func TestAllowForListsOnlyWhoMayAddressSelf(t *testing.T) {
	tests := []struct {
		name  string
		self  pki.Kind
		kinds []pki.Kind
	}{
		{"a site hears the server and, for swarm learning, sites", pki.KindSite, []pki.Kind{pki.KindServer, pki.KindSite}},
		{"an admin console hears the server only", pki.KindAdmin, []pki.Kind{pki.KindServer}},
		{"an aggregator hears the server only", pki.KindAggregator, []pki.Kind{pki.KindServer}},
		{"the server hears everyone", pki.KindServer, []pki.Kind{pki.KindAdmin, pki.KindAggregator, pki.KindServer, pki.KindSite}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow := protocol.AllowFor(tt.self)
			var got []pki.Kind
			for k := range allow {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.kinds) {
				t.Fatalf("kinds %v, want %v", got, tt.kinds)
			}
			for k, types := range allow {
				for _, typ := range types {
					if !slices.Contains(protocol.Allow()[k], typ) {
						t.Errorf("%s may send %s here, which Allow does not list", k, typ)
					}
				}
			}
		})
	}
	if slices.Contains(protocol.AllowFor(pki.KindSite)[pki.KindServer], protocol.Name(&hearthv1.SubmitJob{})) {
		t.Error("a site accepts SubmitJob from the server")
	}
}

// TestSitesSendSitesOnlySwarmTraffic: another site's job answers never
// reach a site, and a site's swarm updates and models never reach the
// server (it coordinates a swarm and never holds its weights).
func TestSitesSendSitesOnlySwarmTraffic(t *testing.T) {
	atSite := protocol.AllowFor(pki.KindSite)[pki.KindSite]
	atServer := protocol.AllowFor(pki.KindServer)[pki.KindSite]
	for _, m := range []string{protocol.Name(&hearthv1.SwarmUpdate{}), protocol.Name(&hearthv1.SwarmModel{}), protocol.Name(&hearthv1.SwarmReceived{})} {
		if !slices.Contains(atSite, m) {
			t.Errorf("a site does not hear %s from a site", m)
		}
		if slices.Contains(atServer, m) {
			t.Errorf("the server hears %s from a site", m)
		}
	}
	for _, m := range []string{protocol.Name(&hearthv1.JobJoined{}), protocol.Name(&hearthv1.TrainResult{}), protocol.Name(&hearthv1.SwarmTrained{}),
		protocol.Name(&hearthv1.JoinJob{}), protocol.Name(&hearthv1.SwarmTask{})} {
		if slices.Contains(atSite, m) {
			t.Errorf("a site hears %s from a site", m)
		}
	}
	if !slices.Contains(atServer, protocol.Name(&hearthv1.SwarmTrained{})) {
		t.Error("the server does not hear SwarmTrained")
	}
}
