package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// MinPerSite is the fewest samples DirichletSplit gives any site.
const MinPerSite = 10

// maxDraws is how many times DirichletSplit draws fresh proportions before
// it rebalances the last draw to give every site MinPerSite samples.
const maxDraws = 50

// newRand returns the package's seeded generator: PCG, so that a seed
// gives the same stream on every platform and Go release.
func newRand(seed int64) *rand.Rand {
	return rand.New(newSource(seed))
}

func newSource(seed int64) *rand.PCG {
	return rand.NewPCG(uint64(seed), 0x853c49e6748fea9b)
}

// DirichletSplit partitions s across the given number of sites with label
// skew, the usual simulation of non-IID federated data: for each class, the
// shares of the sites are drawn from a symmetric Dirichlet(alpha), and the
// class's samples (in seeded random order) are dealt out in those shares,
// rounded by largest remainder. Small alpha gives each site few classes;
// large alpha approaches an IID split.
//
// Every site gets at least MinPerSite samples: a draw that leaves a site
// short is redrawn, up to 50 times; after that the last draw is rebalanced
// by moving samples, one at a time, from the largest site (lowest index on
// ties) to the smallest. The result is a function of (s, sites, alpha,
// seed) alone; every sample of s lands at exactly one site, and each site
// keeps s's row order, Name, Classes and Features.
//
// It is an error if s is malformed, sites < 1, alpha is not a finite
// positive number, or s has fewer than sites*MinPerSite samples.
func DirichletSplit(s *Set, sites int, alpha float64, seed int64) ([]*Set, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("dirichlet split: %w", err)
	}
	if sites < 1 {
		return nil, fmt.Errorf("dirichlet split: %d sites, need at least 1", sites)
	}
	if math.IsNaN(alpha) || math.IsInf(alpha, 0) || alpha <= 0 {
		return nil, fmt.Errorf("dirichlet split: alpha %v is not a finite positive number", alpha)
	}
	if sites > s.Rows()/MinPerSite {
		return nil, fmt.Errorf("dirichlet split: %d samples cannot give %d sites %d each", s.Rows(), sites, MinPerSite)
	}
	src := newSource(seed)
	r := rand.New(src)
	gamma := distuv.Gamma{Alpha: alpha, Beta: 1, Src: src}
	byClass := make([][]int, s.Classes)
	for i, y := range s.Y {
		byClass[y] = append(byClass[y], i)
	}
	var assign [][]int
	for range maxDraws {
		assign = drawShares(r, gamma, byClass, sites)
		if smallest(assign) >= MinPerSite {
			break
		}
	}
	rebalance(assign)
	out := make([]*Set, sites)
	for k, idx := range assign {
		slices.Sort(idx)
		out[k] = s.subset(idx)
	}
	return out, nil
}

// drawShares deals every class's samples out to the sites in shares drawn
// from the Dirichlet distribution whose Gamma components gamma draws.
func drawShares(r *rand.Rand, gamma distuv.Gamma, byClass [][]int, sites int) [][]int {
	assign := make([][]int, sites)
	p := make([]float64, sites)
	for _, members := range byClass {
		idx := slices.Clone(members)
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		sum := 0.0
		for k := range p {
			p[k] = gamma.Rand()
			sum += p[k]
		}
		if sum == 0 || math.IsNaN(sum) || math.IsInf(sum, 0) {
			// Every component underflowed (tiny alpha): the limit of the
			// Dirichlet is one site holding the whole class.
			clear(p)
			p[r.IntN(sites)], sum = 1, 1
		}
		next := 0
		for k, n := range largestRemainder(p, sum, len(idx)) {
			assign[k] = append(assign[k], idx[next:next+n]...)
			next += n
		}
	}
	return assign
}

// largestRemainder splits total into integer counts proportional to
// p[k]/sum that add up to total exactly; leftover units go to the largest
// fractional parts, lowest index first on ties.
func largestRemainder(p []float64, sum float64, total int) []int {
	counts := make([]int, len(p))
	frac := make([]float64, len(p))
	given := 0
	for k, v := range p {
		exact := v / sum * float64(total)
		counts[k] = int(math.Floor(exact))
		frac[k] = exact - float64(counts[k])
		given += counts[k]
	}
	order := make([]int, len(p))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case frac[a] > frac[b]:
			return -1
		case frac[a] < frac[b]:
			return 1
		}
		return 0
	})
	for i := 0; given < total; i++ {
		counts[order[i%len(order)]]++
		given++
	}
	return counts
}

// smallest is the size of the smallest site.
func smallest(assign [][]int) int {
	m := math.MaxInt
	for _, idx := range assign {
		m = min(m, len(idx))
	}
	return m
}

// rebalance moves samples from the largest site to the smallest until every
// site holds MinPerSite. The caller ensures there are enough samples.
func rebalance(assign [][]int) {
	for {
		lo, hi := 0, 0
		for k, idx := range assign {
			if len(idx) < len(assign[lo]) {
				lo = k
			}
			if len(idx) > len(assign[hi]) {
				hi = k
			}
		}
		if len(assign[lo]) >= MinPerSite || len(assign[hi]) <= MinPerSite {
			return
		}
		last := len(assign[hi]) - 1
		assign[lo] = append(assign[lo], assign[hi][last])
		assign[hi] = assign[hi][:last]
	}
}

// LabelSkew measures how far the label distributions of the parts are from
// their pooled distribution: the mean, over parts, of the total variation
// distance between a part's label distribution and the pooled one. It is 0
// when every part has the pooled class mix and approaches 1 when each part
// holds classes no other part has. Empty and nil parts are skipped.
func LabelSkew(parts []*Set) float64 {
	var pooled []float64
	total := 0
	for _, p := range parts {
		if p == nil {
			continue
		}
		for c, n := range p.ClassCounts() {
			if c >= len(pooled) {
				pooled = append(pooled, make([]float64, c+1-len(pooled))...)
			}
			pooled[c] += float64(n)
			total += n
		}
	}
	if total == 0 {
		return 0
	}
	sumTV, used := 0.0, 0
	for _, p := range parts {
		if p == nil {
			continue
		}
		counts := p.ClassCounts()
		rows := 0
		for _, n := range counts {
			rows += n
		}
		if rows == 0 {
			continue
		}
		tv := 0.0
		for c, n := range pooled {
			local := 0.0
			if c < len(counts) {
				local = float64(counts[c]) / float64(rows)
			}
			tv += math.Abs(local - n/float64(total))
		}
		sumTV += tv / 2
		used++
	}
	if used == 0 {
		return 0
	}
	return sumTV / float64(used)
}
