package aggregator_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/stream"
)

// streamManagers starts an embedded NATS server and one real stream
// manager per participant on it.
func streamManagers(t *testing.T, names ...string) map[string]*stream.Manager {
	t.Helper()
	return chunkedStreamManagers(t, 1024, names...)
}

// chunkedStreamManagers is streamManagers with chunks of chunkBytes.
func chunkedStreamManagers(t *testing.T, chunkBytes int, names ...string) map[string]*stream.Manager {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	out := map[string]*stream.Manager{}
	for _, name := range names {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.NewManager(stream.Config{Conn: nc, Self: name, ChunkBytes: chunkBytes, Window: 4,
			StallTimeout: 5 * time.Second, RetryInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); nc.Close() })
		out[name] = m
	}
	return out
}

// failingReader serves data, but fails every read from offset failAt on
// after the first pass (which Offer makes to hash the chunks): a site
// whose upload breaks off mid-stream.
type failingReader struct {
	data   []byte
	failAt int64
	mu     sync.Mutex
	reads  map[int64]int
}

func (r *failingReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads[off]++
	again := r.reads[off] > 1
	r.mu.Unlock()
	if off >= r.failAt && again {
		return 0, errors.New("disk gone")
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Real streams into a lockstep median: three sites upload at once, one of
// them breaks off mid-stream; the others finish, and the aggregate is
// their median from where it broke off.
func TestRuleSumOverRealStreams(t *testing.T) {
	const n = 4096 // 16 chunks of 1 KiB
	mgrs := streamManagers(t, "server", "a", "b", "c")
	values := map[string]float32{"a": 1, "b": 3, "c": 8}
	layout := []model.TensorShape{{Name: "w", Shape: []int{n}}}
	global, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	defer global.Close()
	acc, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := aggregator.NewRuleSum(acc, global, 1024, aggregator.Rule{Method: aggregator.Median}, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	verdicts := make(map[string]error)
	var mu sync.Mutex
	for site, v := range values {
		data := make([]float32, n)
		for i := range data {
			data[i] = v
		}
		src := &failingReader{data: le(data...), failAt: 1 << 40, reads: map[int64]int{}}
		if site == "c" {
			src.failAt = 6 * 1024 // chunk 6 on: never sent
		}
		out, err := mgrs[site].Offer(ctx, "server", src, int64(4*n))
		if err != nil {
			t.Fatal(err)
		}
		sink := sum.Site(site, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := mgrs["server"].Receive(ctx, site, out.Manifest, sink)
			v := sum.Done(site, err)
			mu.Lock()
			verdicts[site] = v
			mu.Unlock()
		}()
	}
	wg.Wait()
	if verdicts["a"] != nil || verdicts["b"] != nil {
		t.Fatalf("honest sites failed: %v", verdicts)
	}
	if verdicts["c"] == nil || !errors.Is(verdicts["c"], stream.ErrAborted) {
		t.Fatalf("c's broken stream: %v", verdicts["c"])
	}
	mean, err := sum.Mean()
	if err != nil {
		t.Fatal(err)
	}
	defer mean.Close()
	// Chunks combined before c broke off are the median of 1, 3, 8; the
	// rest the median of 1 and 3. Which chunks of c were combined depends
	// on the race, but never one past chunk 5, and the values never mix.
	seenTwo := false
	for i, x := range mean.Data {
		switch {
		case x == 3 && !seenTwo && i < 6*256:
		case x == 2:
			seenTwo = true
		default:
			t.Fatalf("value %d is %v (after c broke off: %v)", i, x, seenTwo)
		}
	}
	if !seenTwo {
		t.Fatal("c's chunks past its failure were counted")
	}
}
