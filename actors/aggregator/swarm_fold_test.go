package aggregator_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/swarm"
)

// A swarm round at the aggregating site: the aggregator holds the basis
// (the members hold it too, so nothing is offered), each member's update
// arrives as a stream encrypted under its own key and is decrypted and
// folded chunk by chunk, the site's own update is fed from memory the same
// way, and the new model comes back as the requester's own copy. The
// result is the weighted mean of the updates within float tolerance; a
// member whose chunks do not decrypt under the key it sent (here: another
// key, so its first chunk reads as NaN and infinities) is refused and left
// out, and the others' updates still make the round. With HeapModels
// (a swarm site's aggregator) the mean is the held buffer itself, handed
// over: the basis the site holds is untouched, and the aggregator holds
// no model after.
func TestSwarmRoundFoldsEncryptedStreams(t *testing.T) {
	for _, heap := range []bool{false, true} {
		t.Run(fmt.Sprintf("heap models %v", heap), func(t *testing.T) { swarmRoundFolds(t, heap) })
	}
}

func swarmRoundFolds(t *testing.T, heap bool) {
	const (
		n          = 4 * 16384 // four chunks of 64 KiB: a wrong key's first chunk is all but certain to hold a NaN
		chunkBytes = 64 << 10
	)
	mgrs := chunkedStreamManagers(t, chunkBytes, "agg", "a", "b", "c")
	h := newHolder(t, aggregator.Config{Streams: mgrs["agg"], ChunkBytes: chunkBytes, HeapModels: heap})
	basis := &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{n - 10}, Data: make([]float32, n-10)},
		{Name: "b", Shape: []int{10}, Data: make([]float32, 10)},
	}}
	for i := range basis.Tensors[0].Data {
		basis.Tensors[0].Data[i] = 1
	}
	// Equal distances from the basis, so the default norm bound clips none.
	delta := map[string]func(i int) float64{
		"a":   func(i int) float64 { return 0.5 * math.Sin(float64(i)) },
		"b":   func(i int) float64 { return 0.5 * math.Cos(float64(i)) },
		"c":   func(i int) float64 { return 0.5 * math.Sin(float64(i)+2) },
		"agg": func(i int) float64 { return 0.5 * math.Sin(float64(i)+1) },
	}
	weight := map[string]float64{"a": 100, "b": 300, "c": 50, "agg": 200}
	updates := map[string]*model.Model{}
	for site, d := range delta {
		u := basis.Clone()
		k := 0
		for _, t := range u.Tensors {
			for i := range t.Data {
				t.Data[i] += float32(d(k))
				k++
			}
		}
		updates[site] = u
	}
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Model: basis, Streamed: true}); held.Err != nil {
		t.Fatal(held.Err)
	}
	sites := []string{"a", "b", "c", "agg"}
	if o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 3, Expect: sites}); o.Err != nil || len(o.Manifest) != 0 {
		t.Fatalf("begun %+v, want nothing offered", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, site := range []string{"a", "b", "c"} {
		data, key, err := swarm.EncryptModel(updates[site])
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(data[:64], le(updates[site].Tensors[0].Data[:16]...)) {
			t.Fatal("the stream is not encrypted")
		}
		if site == "c" {
			_, key, _ = swarm.EncryptModel(basis) // another stream's key
		}
		out, err := mgrs[site].OfferBytes(ctx, "agg", data)
		if err != nil {
			t.Fatal(err)
		}
		fold := &aggregator.FoldStream{Round: 3, Site: site, Manifest: out.Manifest, Key: key, Weight: weight[site]}
		if got := ask[*aggregator.StreamTaken](h, fold); got.Refused != "" {
			t.Fatalf("%s refused: %s", site, got.Refused)
		}
	}
	if got := ask[*aggregator.StreamTaken](h, &aggregator.FoldStream{Round: 3, Site: "agg", Update: updates["agg"], Weight: weight["agg"]}); got.Refused != "" {
		t.Fatalf("the site's own update refused: %s", got.Refused)
	}
	pulled := map[string]*aggregator.StreamPulled{}
	for range sites {
		p := ask[*aggregator.StreamPulled](h, nil)
		pulled[p.Site] = p
	}
	for _, site := range []string{"a", "b", "agg"} {
		if p := pulled[site]; p == nil || p.Err != nil || p.Stats.Bytes != 4*n {
			t.Fatalf("%s pulled %+v", site, p)
		}
	}
	if p := pulled["c"]; p == nil || p.Err == nil || !strings.Contains(p.Err.Error(), "chunk 0 holds") {
		t.Fatalf("c, under the wrong key, pulled %+v; want refused at its first chunk", p)
	}
	if d := pulled["a"].Decrypted; d.Wall <= 0 || d.CPU <= 0 || d.CPU > 2*d.Wall || pulled["agg"].Decrypted != (swarm.SealTime{}) {
		t.Fatalf("decryption time %v for a stream, %v for the site's own update", pulled["a"].Decrypted, pulled["agg"].Decrypted)
	}
	c := ask[*aggregator.Closed](h, &aggregator.Close{Round: 3, WantMean: true})
	if c.Err != nil {
		t.Fatal(c.Err)
	}
	if strings.Join(c.Sites, ",") != "a,agg,b" || len(c.Clipped) != 0 {
		t.Fatalf("aggregated %v (clipped %v), want a, agg and b unclipped", c.Sites, c.Clipped)
	}
	if err := basis.SameLayout(c.Mean); err != nil {
		t.Fatal(err)
	}
	total := weight["a"] + weight["b"] + weight["agg"]
	k := 0
	for ti, tensor := range c.Mean.Tensors {
		for i, got := range tensor.Data {
			want := float64(basis.Tensors[ti].Data[i]) + (weight["a"]*delta["a"](k)+weight["b"]*delta["b"](k)+weight["agg"]*delta["agg"](k))/total
			if math.Abs(float64(got)-want) > 1e-5 {
				t.Fatalf("mean value %d is %v, want %v", k, got, want)
			}
			k++
		}
	}
	if basis.Tensors[0].Data[0] != 1 || basis.Tensors[0].Data[n-11] != 1 {
		t.Fatal("the round was summed into the basis the site holds")
	}
	o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 4, Expect: sites})
	if heap { // handed over: held no more
		if o.Err == nil || !strings.Contains(o.Err.Error(), "holds no global model") {
			t.Fatalf("a round begun after the mean was handed over: %v, want no model held", o.Err)
		}
		return
	}
	// The mean is the requester's own copy: the aggregator's held model is
	// not it.
	c.Mean.Tensors[0].Data[0] = 42
	if o.Err != nil {
		t.Fatal(o.Err)
	}
}

// What a swarm round's aggregator refuses before folding anything: a
// stream key of the wrong size or of zeros, an update both in memory and streamed, an
// update in memory of another layout, a stream cut in chunks of another
// size than the round's sum takes.
func TestSwarmRoundRefuses(t *testing.T) {
	mgrs := streamManagers(t, "agg", "a")
	h := newHolder(t, aggregator.Config{Streams: mgrs["agg"], ChunkBytes: 1024})
	basis := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{1024}, Data: make([]float32, 1024)}}}
	if held := ask[*aggregator.Held](h, &aggregator.Hold{Model: basis, Streamed: true}); held.Err != nil {
		t.Fatal(held.Err)
	}
	if o := ask[*aggregator.Offered](h, &aggregator.Begin{Round: 1, Expect: []string{"a", "b", "c"}}); o.Err != nil {
		t.Fatal(o.Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, _, err := swarm.EncryptModel(basis)
	if err != nil {
		t.Fatal(err)
	}
	out, err := mgrs["a"].OfferBytes(ctx, "agg", data)
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes cut in chunks of 2 KiB, where the round's sum takes
	// chunks of 1 KiB.
	halves, err := mgrs["a"].OfferBytesChunks(ctx, "agg", data, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := &model.Model{Tensors: []model.Tensor{{Name: "v", Shape: []int{1024}, Data: make([]float32, 1024)}}}
	for _, tc := range []struct {
		name string
		fold *aggregator.FoldStream
		want string
	}{
		{"a short key", &aggregator.FoldStream{Round: 1, Site: "a", Manifest: out.Manifest, Key: []byte("short"), Weight: 1}, "stream key of 5 bytes"},
		{"in memory and streamed", &aggregator.FoldStream{Round: 1, Site: "b", Manifest: out.Manifest, Update: basis, Weight: 1}, "both in memory and streamed"},
		{"another layout", &aggregator.FoldStream{Round: 1, Site: "c", Update: other, Weight: 1}, "tensor 0 is v"},
		{"a key of zeros (a sealfree build's)", &aggregator.FoldStream{Round: 1, Site: "a", Manifest: out.Manifest, Key: make([]byte, swarm.StreamKeySize), Weight: 1}, "stream key of zeros"},
		{"chunks of another size", &aggregator.FoldStream{Round: 1, Site: "d", Manifest: halves.Manifest, Key: bytes.Repeat([]byte{7}, swarm.StreamKeySize), Weight: 1},
			"chunks of 2048 bytes, the round's are 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ask[*aggregator.StreamTaken](h, tc.fold); !strings.Contains(got.Refused, tc.want) {
				t.Fatalf("refused %q, want %q", got.Refused, tc.want)
			}
		})
	}
}
