package aggregator_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
)

// ruleSum is a lockstep sum over a model of n floats in chunks of
// chunkFloats, from global, in a buffer of its own.
func ruleSum(t *testing.T, global []float32, chunkFloats int, rule aggregator.Rule, sites ...string) (*aggregator.StreamSum, *model.Flat) {
	t.Helper()
	layout := []model.TensorShape{{Name: "w", Shape: []int{len(global)}}}
	g, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	copy(g.Data, global)
	acc, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := aggregator.NewRuleSum(acc, g, 4*chunkFloats, rule, sites)
	if err != nil {
		t.Fatal(err)
	}
	return sum, g
}

// writeChunks writes update into sink chunk by chunk, stopping before chunk
// stop (len(update) for all), and returns the first error.
func writeChunks(sink *aggregator.SiteSink, update []float32, chunkFloats, stop int) error {
	for c := 0; c*chunkFloats < len(update) && c < stop; c++ {
		part := update[c*chunkFloats : min((c+1)*chunkFloats, len(update))]
		if err := sink.WriteChunk(c, int64(4*c*chunkFloats), le(part...)); err != nil {
			return err
		}
	}
	return nil
}

// runSites streams each site's update concurrently, as the pulls do, and
// ends each with Done; it fails the test if they do not all end within a
// few seconds (a stalled assembler). It returns each site's verdict.
func runSites(t *testing.T, sum *aggregator.StreamSum, chunkFloats int, sites []site, stops map[string]int) map[string]error {
	t.Helper()
	var mu sync.Mutex
	verdicts := map[string]error{}
	var wg sync.WaitGroup
	for _, s := range sites {
		sink := sum.Site(s.name, s.weight)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop, cut := stops[s.name]
			if !cut {
				stop = len(s.update)
			}
			err := writeChunks(sink, s.update, chunkFloats, stop)
			if err == nil && cut {
				err = errors.New("the stream broke off")
			}
			v := sum.Done(s.name, err)
			mu.Lock()
			verdicts[s.name] = v
			mu.Unlock()
		}()
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		sum.Abort()
		t.Fatal("the sites' streams did not end: the assembler stalled")
	}
	return verdicts
}

func names(sites []site) []string {
	out := make([]string, len(sites))
	for i, s := range sites {
		out[i] = s.name
	}
	return out
}

// Chunk by chunk, the lockstep sum computes what the inline aggregator
// computes on whole models.
func TestRuleSumMatchesInline(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, chunk = 37, 4 // the last chunk is short
	global := make([]float32, n)
	for i := range global {
		global[i] = float32(r.NormFloat64())
	}
	var sites []site
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		u := make([]float32, n)
		for i := range u {
			u[i] = global[i] + float32(r.NormFloat64())
		}
		sites = append(sites, site{name, u, float64(1 + r.IntN(100))})
	}
	for _, rule := range []aggregator.Rule{
		// Streamed rounds are not screened (Rule.Screen): the inline ones
		// compared here are not either.
		{NormBound: 1e6, Screen: aggregator.ScreenNone}, {Method: aggregator.Median, Unbounded: true}, {Method: aggregator.TrimmedMean, Trim: 1, Unbounded: true},
		{Method: aggregator.TrimmedMean, TrimFraction: 0.4, NormBound: 1e6, Screen: aggregator.ScreenNone},
	} {
		t.Run(string(rule.Method), func(t *testing.T) {
			want := aggregate(t, rule, global, sites...)
			if want.Err != nil {
				t.Fatal(want.Err)
			}
			sum, _ := ruleSum(t, global, chunk, rule, names(sites)...)
			for s, v := range runSites(t, sum, chunk, sites, nil) {
				if v != nil {
					t.Fatalf("%s: %v", s, v)
				}
			}
			got, err := sum.Mean()
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if !near(got.Data, want.Mean.Tensors[0].Data, 1e-5) {
				t.Fatalf("streamed %v\ninline %v", got.Data, want.Mean.Tensors[0].Data)
			}
		})
	}
}

// A site whose stream breaks off mid-way does not stall the others: the
// chunks of it combined before count, the rest are the others' median.
func TestRuleSumSiteFailingMidStream(t *testing.T) {
	sites := []site{{"a", []float32{1, 1, 1, 1}, 1}, {"b", []float32{3, 3, 3, 3}, 1}, {"c", []float32{8, 8, 8, 8}, 1}}
	sum, _ := ruleSum(t, make([]float32, 4), 1, aggregator.Rule{Method: aggregator.Median, Unbounded: true}, names(sites)...)
	sinks := map[string]*aggregator.SiteSink{}
	for _, s := range sites { // chunk 0 from every site: combined
		sinks[s.name] = sum.Site(s.name, 1)
		if err := sinks[s.name].WriteChunk(0, 0, le(s.update[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := sinks["c"].WriteChunk(1, 4, le(8)); err != nil { // held, never combined
		t.Fatal(err)
	}
	// a and b run ahead; they must not wait for c once c's stream fails.
	ended := make(chan error, 2)
	for _, s := range sites[:2] {
		go func() {
			for c := 1; c < 4; c++ {
				if err := sinks[s.name].WriteChunk(c, int64(4*c), le(s.update[c])); err != nil {
					ended <- err
					return
				}
			}
			ended <- sum.Done(s.name, nil)
		}()
	}
	if v := sum.Done("c", errors.New("the stream broke off")); v == nil || !strings.Contains(v.Error(), "broke off") {
		t.Fatalf("c's verdict: %v", v)
	}
	for range 2 {
		select {
		case err := <-ended:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the others stalled after c's stream failed")
		}
	}
	got, err := sum.Mean()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if want := []float32{3, 2, 2, 2}; !near(got.Data, want, 0) {
		t.Fatalf("aggregate %v, want %v", got.Data, want)
	}
}

// A site a window ahead of the slowest blocks until the slowest delivers.
func TestRuleSumHoldsAFastSiteBack(t *testing.T) {
	n := aggregator.LockstepWindow + 2
	sum, _ := ruleSum(t, make([]float32, n), 1, aggregator.Rule{Method: aggregator.Median}, "fast", "slow")
	fast, slow := sum.Site("fast", 1), sum.Site("slow", 1)
	defer sum.Close()
	for c := range aggregator.LockstepWindow {
		if err := fast.WriteChunk(c, int64(4*c), le(1)); err != nil {
			t.Fatal(err)
		}
	}
	wrote := make(chan error, 1)
	go func() { wrote <- fast.WriteChunk(aggregator.LockstepWindow, int64(4*aggregator.LockstepWindow), le(1)) }()
	select {
	case err := <-wrote:
		t.Fatalf("a chunk a window ahead was taken at once (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := slow.WriteChunk(0, 0, le(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fast site stayed blocked after the slow one caught up")
	}
}

// A boosted update streamed: clipped by default, refused on request, and
// the honest sites' aggregate stands.
func TestRuleSumBoundsBoostedUpdate(t *testing.T) {
	zero := make([]float32, 4)
	tests := []struct {
		name string
		rule aggregator.Rule
		want string // in e's clip reason or refusal
	}{
		{"default clips", aggregator.Rule{}, "clipped"},
		{"absolute bound clips", aggregator.Rule{NormBound: 3}, "norm_bound 3"},
		{"refuse", aggregator.Rule{OnViolation: aggregator.Refuse}, "exceeds the bound"},
		{"median, refuse", aggregator.Rule{Method: aggregator.Median, OnViolation: aggregator.Refuse}, "exceeds the bound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sites := append(honest(), site{"e", scaled(-30), 100})
			sum, _ := ruleSum(t, zero, 2, tt.rule, names(sites)...)
			v := runSites(t, sum, 2, sites, nil)
			clipped := sum.Clipped()
			got, err := sum.Mean()
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			reason := clipped["e"]
			if tt.rule.OnViolation == aggregator.Refuse {
				if v["e"] == nil {
					t.Fatal("the boosted update was not refused")
				}
				reason = v["e"].Error()
			}
			if !strings.Contains(reason, tt.want) {
				t.Fatalf("e: %q, want %q", reason, tt.want)
			}
			for _, s := range []string{"a", "b", "c", "d"} {
				if v[s] != nil || clipped[s] != "" {
					t.Fatalf("honest %s: %v, clipped %q", s, v[s], clipped[s])
				}
			}
			if got.Data[0] < 0 || got.Data[0] > 1.1 {
				t.Fatalf("aggregate %v: the sign-flipped boosted update steered it", got.Data)
			}
		})
	}
}

// Huge finite values with huge weights never make a non-finite aggregate,
// streamed, defences off included (a running mean cannot overflow).
func TestStreamSumsStayFinite(t *testing.T) {
	const huge = math.MaxFloat32
	sites := []site{
		{"a", []float32{huge, -huge, huge, huge}, 1e12}, {"b", []float32{huge, huge, -huge, huge}, 1e12},
		{"c", []float32{-huge, huge, huge, huge}, 3e38}, {"d", []float32{huge, huge, huge, huge}, 1},
	}
	for _, rule := range []aggregator.Rule{{Unbounded: true}, {}, {Method: aggregator.Median, Unbounded: true}} {
		t.Run(string(rule.Method)+map[bool]string{true: " unbounded"}[rule.Unbounded], func(t *testing.T) {
			var sum *aggregator.StreamSum
			if rule.Lockstep() {
				sum, _ = ruleSum(t, make([]float32, 4), 2, rule, names(sites)...)
			} else {
				var err error
				if sum, err = newSum([]model.TensorShape{{Name: "w", Shape: []int{4}}}, 8); err != nil {
					t.Fatal(err)
				}
			}
			runSites(t, sum, 2, sites, nil)
			got, err := sum.Mean()
			if err != nil {
				if !strings.Contains(err.Error(), "finite") {
					t.Fatalf("refused without saying why: %v", err)
				}
				return
			}
			defer got.Close()
			for i, x := range got.Data {
				if x-x != 0 {
					t.Fatalf("value %d is %v", i, x)
				}
			}
		})
	}
}

func TestRuleSumRefusals(t *testing.T) {
	sum, _ := ruleSum(t, make([]float32, 6), 2, aggregator.Rule{}, "a")
	defer sum.Close()
	if err := sum.Site("stranger", 1).WriteChunk(0, 0, le(1, 1)); err == nil || !strings.Contains(err.Error(), "not a site") {
		t.Fatalf("a site the sum was not made for: %v", err)
	}
	a := sum.Site("a", 1)
	if err := sum.Site("a", 1).WriteChunk(0, 0, le(1, 1)); err == nil {
		t.Fatal("a second sink for one site was taken")
	}
	if err := a.WriteChunk(0, 0, le(1)); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Fatalf("a short chunk that is not the last: %v", err)
	}
	if err := a.WriteChunk(0, 0, le(1, float32(math.Inf(1)))); err == nil || !strings.Contains(err.Error(), "+Inf") {
		t.Fatalf("an infinite value: %v", err)
	}
	if _, err := aggregator.NewRuleSum(mustFlat(t, 4), mustFlat(t, 4), 8, aggregator.Rule{Method: aggregator.Krum}, []string{"a"}); err == nil ||
		!strings.Contains(err.Error(), "streamed") {
		t.Fatalf("krum for a streamed model: %v", err)
	}
}

func mustFlat(t *testing.T, n int) *model.Flat {
	t.Helper()
	f, err := model.NewFlat([]model.TensorShape{{Name: "w", Shape: []int{n}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// BenchmarkRuleSum streams 4 sites' updates of a 16 MiB and a 64 MiB model
// through a lockstep sum in 1 MiB chunks, as the pulls do, and reports the
// heap the round allocated (the model buffers are mappings outside the
// heap): the chunks held, which do not grow with the model.
func BenchmarkRuleSum(b *testing.B) {
	const chunk = 1 << 20
	for _, tc := range []struct {
		rule   aggregator.Rule
		floats int
	}{
		{aggregator.Rule{}, 4 << 20}, {aggregator.Rule{}, 16 << 20},
		{aggregator.Rule{Method: aggregator.Median}, 4 << 20}, {aggregator.Rule{Method: aggregator.Median}, 16 << 20},
		{aggregator.Rule{Method: aggregator.TrimmedMean}, 16 << 20},
	} {
		rule, floats := tc.rule, tc.floats
		name := string(rule.Method)
		if name == "" {
			name = "fedavg"
		}
		b.Run(fmt.Sprintf("%s/%dMiB", name, 4*floats>>20), func(b *testing.B) {
			layout := []model.TensorShape{{Name: "w", Shape: []int{floats}}}
			g, err := model.NewFlat(layout, "")
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			vals := make([]float32, chunk/4)
			for i := range vals {
				vals[i] = float32(i%1000) * 1e-3
			}
			data := le(vals...)
			sites := []string{"a", "b", "c", "d"}
			var before, after runtime.MemStats
			b.SetBytes(int64(len(sites)) * 4 * int64(floats))
			b.ResetTimer()
			var heap uint64
			for range b.N {
				acc, err := model.NewFlat(layout, "")
				if err != nil {
					b.Fatal(err)
				}
				runtime.ReadMemStats(&before)
				sum, err := aggregator.NewRuleSum(acc, g, chunk, rule, sites)
				if err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				for _, s := range sites {
					sink := sum.Site(s, 1)
					wg.Add(1)
					go func() {
						defer wg.Done()
						for c := range 4 * floats / chunk {
							if err := sink.WriteChunk(c, int64(c)*chunk, data); err != nil {
								b.Error(err)
								return
							}
						}
						if err := sum.Done(s, nil); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				runtime.ReadMemStats(&after)
				heap += after.TotalAlloc - before.TotalAlloc
				m, err := sum.Mean()
				if err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
			b.ReportMetric(float64(heap)/float64(b.N)/(1<<20), "heap-MiB/round")
		})
	}
}
