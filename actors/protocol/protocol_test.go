package protocol_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

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
		{"a site hears the server, sites (swarm learning) and aggregation hosts", pki.KindSite, []pki.Kind{pki.KindAggregator, pki.KindServer, pki.KindSite}},
		{"an admin console hears the server only", pki.KindAdmin, []pki.Kind{pki.KindServer}},
		{"an aggregation host hears the server and sites", pki.KindAggregator, []pki.Kind{pki.KindServer, pki.KindSite}},
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

// TestSitesAndHostsHearOnlyAttestedAggregation: a site and an aggregation
// host hear from each other only evidence, updates, models and their
// receipts; the server never hears an update from either, and a host
// sends the server only its join and its rounds' accounts.
func TestSitesAndHostsHearOnlyAttestedAggregation(t *testing.T) {
	atHost := protocol.AllowFor(pki.KindAggregator)[pki.KindSite]
	atSite := protocol.AllowFor(pki.KindSite)[pki.KindAggregator]
	atServer := protocol.AllowFor(pki.KindServer)[pki.KindAggregator]
	want := func(where string, got []string, msgs ...proto.Message) {
		t.Helper()
		var names []string
		for _, m := range msgs {
			names = append(names, protocol.Name(m))
		}
		slices.Sort(names)
		got = slices.Sorted(slices.Values(got))
		for _, n := range []string{protocol.Name(&hearthv1.Ping{}), protocol.Name(&hearthv1.Pong{}), protocol.Name(&hearthv1.Failure{})} {
			got = slices.DeleteFunc(got, func(s string) bool { return s == n })
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s: %v, want %v", where, got, names)
		}
	}
	want("a host hears from a site", atHost, &hearthv1.AttestationRequest{}, &hearthv1.SwarmReceived{}, &hearthv1.SwarmUpdate{})
	want("a site hears from a host", atSite, &hearthv1.AttestationEvidence{}, &hearthv1.SwarmModel{}, &hearthv1.SwarmReceived{})
	want("the server hears from a host", atServer, &hearthv1.JobJoined{}, &hearthv1.SwarmTrained{})
}
