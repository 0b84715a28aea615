package stream

import (
	"bytes"
	"context"
	"testing"

	"github.com/hearthfl/hearth/bus/bustest"
)

func TestPreparedPayloadIsOfferedToManyWithTheSameHashes(t *testing.T) {
	tp := bustest.NewTopology(t, "site-1", "site-2")
	server := newManager(t, tp.HubConn(t), "server")
	data := randomBytes(5<<20+123, 7)
	p, err := server.Prepare(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, site := range []string{"site-1", "site-2"} {
		_, nc := tp.JoinedLeaf(t, site)
		m := newManager(t, nc, site)
		reachable(t, server, m)
		out, err := server.OfferPayload(context.Background(), site, p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Manifest.StreamId)
		sink := newCheckSink()
		if _, err := m.Receive(context.Background(), "server", out.Manifest, sink); err != nil {
			t.Fatal(err)
		}
		sink.check(t, data)
		if !bytes.Equal(out.Manifest.ChunkHashes[0], p.hashes[0]) {
			t.Fatal("the manifest does not carry the prepared hashes")
		}
	}
	if ids[0] == ids[1] {
		t.Fatal("two offers of one payload share a stream id")
	}
}
