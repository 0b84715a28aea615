package aggregator_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/aggregator"
)

// site is one site's update in a test round.
type site struct {
	name   string
	update []float32
	weight float64
}

// aggregate runs one round of the real actor under rule, from global.
func aggregate(t *testing.T, rule aggregator.Rule, global []float32, sites ...site) *aggregator.Closed {
	t.Helper()
	system := actor.NewActorSystem()
	defer system.Shutdown()
	pid := system.Root.Spawn(aggregator.Props())
	system.Root.Send(pid, &aggregator.Begin{Round: 1, Layout: weights(global...), Rule: rule})
	for _, s := range sites {
		system.Root.Send(pid, &aggregator.Fold{Round: 1, Site: s.name, Update: weights(s.update...), Weight: s.weight})
	}
	return closeRound(t, system, pid, 1)
}

func near(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol {
			return false
		}
	}
	return true
}

// Each rule, exact on five updates, one of them far off (e).
func TestRulesExact(t *testing.T) {
	sites := []site{
		{"a", []float32{1, 10}, 1}, {"b", []float32{2, 20}, 1}, {"c", []float32{6, 60}, 1},
		{"d", []float32{7, 70}, 1}, {"e", []float32{100, -1000}, 1},
	}
	tests := []struct {
		name  string
		rule  aggregator.Rule
		want  []float32
		sites []string
	}{
		{"fedavg", aggregator.Rule{Unbounded: true}, []float32{23.2, -168}, nil},
		{"median", aggregator.Rule{Method: aggregator.Median, Unbounded: true}, []float32{6, 20}, nil},
		{"trimmed mean, one a side", aggregator.Rule{Method: aggregator.TrimmedMean, Trim: 1, Unbounded: true}, []float32{5, 30}, nil},
		{"trimmed mean, a fifth a side", aggregator.Rule{Method: aggregator.TrimmedMean, TrimFraction: 0.2, Unbounded: true}, []float32{5, 30}, nil},
		// Squared distances: a-b 101, c-d 101, b-c 1616, a-c and b-d 2525,
		// a-d 3636, e far; with 2 neighbours b and c score 1717, a and d 2626.
		{"krum", aggregator.Rule{Method: aggregator.Krum, KrumF: 1, Unbounded: true}, []float32{2, 20}, []string{"a", "b", "c", "d", "e"}},
		{"multi-krum, two", aggregator.Rule{Method: aggregator.MultiKrum, KrumM: 2, Unbounded: true}, []float32{4, 40}, nil},
		{"multi-krum, n-f", aggregator.Rule{Method: aggregator.MultiKrum, Unbounded: true}, []float32{4, 40}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := aggregate(t, tt.rule, []float32{0, 0}, sites...)
			if c.Err != nil {
				t.Fatal(c.Err)
			}
			if got := c.Mean.Tensors[0].Data; !near(got, tt.want, 1e-4) {
				t.Fatalf("aggregate %v, want %v", got, tt.want)
			}
			if len(c.Sites) != 5 || len(c.Refused) != 0 || len(c.Clipped) != 0 {
				t.Fatalf("sites %v, refused %v, clipped %v", c.Sites, c.Refused, c.Clipped)
			}
		})
	}
}

// honest are four updates a distance of about 2 from the global model 0.
func honest() []site {
	return []site{
		{"a", []float32{1.1, 1, 1, 1}, 100}, {"b", []float32{1, 1.1, 1, 1}, 100},
		{"c", []float32{1, 1, 1.1, 1}, 100}, {"d", []float32{1, 1, 1, 1.1}, 100},
	}
}

func scaled(k float32) []float32 { return []float32{k, k, k, k} }

// A boosted (x30) update, sign-flipped or not, is clipped by default and
// refused on request, with the reason; with the defences off it drags the
// model far away.
func TestNormBoundContainsBoostedUpdates(t *testing.T) {
	zero := make([]float32, 4)
	tests := []struct {
		name        string
		rule        aggregator.Rule
		attack      []float32
		lo, hi      float32 // the aggregate's first value
		clipped     string  // a fragment of e's clip reason, or ""
		refused     string  // a fragment of e's refusal, or ""
		withinSites int
	}{
		{"boosted, default: clipped to 3x the median distance", aggregator.Rule{Screen: aggregator.ScreenNone}, scaled(30), 1, 2, "relative_norm_bound 3", "", 5},
		{"sign-flipped boosted, default: clipped", aggregator.Rule{Screen: aggregator.ScreenNone}, scaled(-30), 0, 1, "clipped to", "", 5},
		{"boosted, absolute bound: clipped", aggregator.Rule{NormBound: 3, Screen: aggregator.ScreenNone}, scaled(30), 1, 1.5, "norm_bound 3", "", 5},
		{"boosted, refuse", aggregator.Rule{OnViolation: aggregator.Refuse, Screen: aggregator.ScreenNone}, scaled(30), 1, 1.1, "", "exceeds the bound", 4},
		{"sign-flipped boosted, refuse", aggregator.Rule{OnViolation: aggregator.Refuse, Screen: aggregator.ScreenNone}, scaled(-30), 1, 1.1, "", "exceeds the bound", 4},
		{"boosted, median", aggregator.Rule{Method: aggregator.Median, Screen: aggregator.ScreenNone}, scaled(30), 1, 1.01, "clipped", "", 5},
		{"sign-flipped, median", aggregator.Rule{Method: aggregator.Median, Screen: aggregator.ScreenNone}, scaled(-1), 1, 1.01, "", "", 5},
		{"sign-flipped, krum", aggregator.Rule{Method: aggregator.Krum}, scaled(-1), 1, 1.1, "", "", 5},
		{"boosted, defences off: the damage", aggregator.Rule{Unbounded: true}, scaled(30), 6.5, 7, "", "", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := aggregate(t, tt.rule, zero, append(honest(), site{"e", tt.attack, 100})...)
			if c.Err != nil {
				t.Fatal(c.Err)
			}
			if got := c.Mean.Tensors[0].Data[0]; got < tt.lo || got > tt.hi {
				t.Fatalf("aggregate %v, want its first value in [%v, %v]", c.Mean.Tensors[0].Data, tt.lo, tt.hi)
			}
			if got := c.Clipped["e"]; (tt.clipped == "") != (got == "") || !strings.Contains(got, tt.clipped) {
				t.Fatalf("e clipped: %q, want %q", got, tt.clipped)
			}
			if got := c.Refused["e"]; (tt.refused == "") != (got == "") || !strings.Contains(got, tt.refused) {
				t.Fatalf("e refused: %q, want %q", got, tt.refused)
			}
			for _, s := range []string{"a", "b", "c", "d"} {
				if c.Clipped[s] != "" || c.Refused[s] != "" {
					t.Fatalf("honest %s clipped %q, refused %q", s, c.Clipped[s], c.Refused[s])
				}
			}
			if len(c.Sites) != tt.withinSites {
				t.Fatalf("aggregated %v", c.Sites)
			}
		})
	}
}

// The default Krum screen leaves out an update that pulls against the
// others without being larger than them (a reversed update, which no norm
// bound sees), and only that one; five honest updates keep all five, and
// below 2f+3 updates it screens nothing.
func TestKrumScreenLeavesOutAReversedUpdate(t *testing.T) {
	zero := make([]float32, 4)
	for _, rule := range []aggregator.Rule{{}, {Method: aggregator.Median}, {Method: aggregator.TrimmedMean}} {
		c := aggregate(t, rule, zero, append(honest(), site{"e", scaled(-1), 100})...)
		if c.Err != nil {
			t.Fatal(c.Err)
		}
		if got := c.Mean.Tensors[0].Data[0]; got < 1 || got > 1.1 {
			t.Fatalf("%s: aggregate %v, want the honest sites' (about 1)", rule.Method, c.Mean.Tensors[0].Data)
		}
		if len(c.Screened) != 1 || !strings.Contains(c.Screened["e"], "Krum screen") || len(c.Sites) != 4 || slices.Contains(c.Sites, "e") {
			t.Fatalf("%s: screened %v, aggregated %v", rule.Method, c.Screened, c.Sites)
		}
	}
	c := aggregate(t, aggregator.Rule{Screen: aggregator.ScreenNone}, zero, append(honest(), site{"e", scaled(-1), 100})...)
	if len(c.Screened) != 0 || c.Mean.Tensors[0].Data[0] > 0.9 {
		t.Fatalf("screen none: screened %v, aggregate %v", c.Screened, c.Mean.Tensors[0].Data)
	}
	c = aggregate(t, aggregator.Rule{}, zero, honest()...)
	if len(c.Screened) != 0 || len(c.Sites) != 4 {
		t.Fatalf("four updates (below 2f+3): screened %v", c.Screened)
	}
	c = aggregate(t, aggregator.Rule{}, zero, append(honest(), site{"e", []float32{1, 1, 1.05, 1.05}, 100})...)
	if len(c.Screened) != 0 || len(c.Sites) != 5 {
		t.Fatalf("five honest updates: screened %v", c.Screened)
	}
}

// Huge finite values with huge weights never make a non-finite global
// model, whatever the rule, defences off included.
func TestHugeFiniteValuesStayFinite(t *testing.T) {
	const huge = math.MaxFloat32
	sites := []site{
		{"a", []float32{huge, -huge, huge}, 1e12}, {"b", []float32{huge, huge, -huge}, 1e12},
		{"c", []float32{huge, -huge, huge}, 1}, {"d", []float32{-huge, huge, huge}, 1e300}, {"e", []float32{huge, huge, huge}, 1},
	}
	for _, rule := range []aggregator.Rule{
		{Unbounded: true}, {}, {Method: aggregator.Median, Unbounded: true},
		{Method: aggregator.TrimmedMean, Unbounded: true}, {Method: aggregator.MultiKrum, Unbounded: true},
	} {
		t.Run(string(rule.Method)+map[bool]string{true: " unbounded"}[rule.Unbounded], func(t *testing.T) {
			c := aggregate(t, rule, []float32{0, 0, 0}, sites...)
			if c.Err != nil {
				if !strings.Contains(c.Err.Error(), "finite") {
					t.Fatalf("refused without saying why: %v", c.Err)
				}
				return
			}
			if err := c.Mean.Validate(); err != nil {
				t.Fatalf("non-finite global model: %v", err)
			}
		})
	}
}

// A round with fewer updates than a rule's f or trim needs (sites left
// out, or refused) tolerates fewer rather than fail the job: one site's
// silence cannot stop a robust job.
func TestRulesShrinkToFewUpdates(t *testing.T) {
	two := []site{{"a", []float32{1}, 1}, {"b", []float32{2}, 1}}
	four := append(slices.Clone(two), site{"c", []float32{3}, 1}, site{"d", []float32{40}, 1})
	tests := []struct {
		name  string
		rule  aggregator.Rule
		sites []site
		want  float32
	}{
		{"trimmed mean of two: the mean", aggregator.Rule{Method: aggregator.TrimmedMean, Unbounded: true}, two, 1.5},
		{"trimmed mean, a fifth a side of four: trims one", aggregator.Rule{Method: aggregator.TrimmedMean, TrimFraction: 0.2, Unbounded: true}, four, 2.5},
		{"krum of two: both", aggregator.Rule{Method: aggregator.Krum, Unbounded: true}, two, 1.5},
		// f = 0 for four: the update nearest its 2 nearest others, b.
		{"krum of four", aggregator.Rule{Method: aggregator.Krum, Unbounded: true}, four, 2},
		{"multi-krum of four", aggregator.Rule{Method: aggregator.MultiKrum, KrumM: 3, Unbounded: true}, four, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := aggregate(t, tt.rule, []float32{0}, tt.sites...)
			if c.Err != nil || c.Mean.Tensors[0].Data[0] != tt.want {
				t.Fatalf("got %v (mean %v), want %v", c.Err, c.Mean, tt.want)
			}
		})
	}
}

func TestAggregatorRefusesSecondUpdateAndBadWeights(t *testing.T) {
	c := aggregate(t, aggregator.Rule{}, []float32{0},
		site{"a", []float32{1}, 1}, site{"a", []float32{50}, 1}, site{"b", []float32{1}, math.Inf(1)},
		site{"c", []float32{1}, math.NaN()}, site{"d", []float32{1}, 1})
	if c.Err != nil {
		t.Fatal(c.Err)
	}
	if !strings.Contains(c.Refused["a"], "both refused") || !strings.Contains(c.Refused["b"], "weight") ||
		!strings.Contains(c.Refused["c"], "weight") || len(c.Sites) != 1 || c.Sites[0] != "d" || c.Mean.Tensors[0].Data[0] != 1 {
		t.Fatalf("sites %v, refused %v, mean %v", c.Sites, c.Refused, c.Mean.Tensors[0].Data)
	}
}

func TestAggregatorRefusesAMalformedGlobalModel(t *testing.T) {
	nan := float32(math.NaN())
	c := aggregate(t, aggregator.Rule{}, []float32{nan}, site{"a", []float32{1}, 1})
	if c.Err == nil || !strings.Contains(c.Err.Error(), "global model is malformed") || !strings.Contains(c.Refused["a"], "malformed") {
		t.Fatalf("err %v, refused %v", c.Err, c.Refused)
	}
}
