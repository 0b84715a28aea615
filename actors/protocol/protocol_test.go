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
		{"a site hears the server only", pki.KindSite, []pki.Kind{pki.KindServer}},
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
				if !slices.Equal(types, protocol.Allow()[k]) {
					t.Errorf("%s may send %v here, %v in Allow", k, types, protocol.Allow()[k])
				}
			}
		})
	}
	if slices.Contains(protocol.AllowFor(pki.KindSite)[pki.KindServer], protocol.Name(&hearthv1.SubmitJob{})) {
		t.Error("a site accepts SubmitJob from the server")
	}
}
