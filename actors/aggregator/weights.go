package aggregator

import "sort"

// CappedWeights are the sites' FedAvg weights for a job: each site's
// committed training samples, with the largest lowered (water-filling) so
// that no site holds more than maxShare (in (0, 1]) of the total; a
// maxShare below 1/n gives every site the same weight. The same counts give
// the same weights, bit for bit, wherever they are computed: the server and
// the sites of a job under homomorphic encryption compute them apart.
func CappedWeights(committed map[string]int64, maxShare float64) map[string]float64 {
	n := len(committed)
	sites := make([]string, 0, n)
	for s := range committed {
		sites = append(sites, s)
	}
	sort.Slice(sites, func(i, j int) bool { return committed[sites[i]] > committed[sites[j]] })
	out := make(map[string]float64, n)
	total := 0.0
	for _, s := range sites {
		out[s] = float64(committed[s])
		total += out[s]
	}
	if n == 0 || maxShare >= 1 {
		return out
	}
	// Cap the k largest at t = maxShare*(k*t + rest), i.e.
	// t = maxShare*rest/(1 - k*maxShare), for the smallest k at which the
	// next site is already below t.
	rest := total
	for k := 1; k <= n; k++ {
		rest -= float64(committed[sites[k-1]])
		if 1-float64(k)*maxShare <= 0 || rest <= 0 {
			break // every site at the cap: equal weights
		}
		t := maxShare * rest / (1 - float64(k)*maxShare)
		if k == n || float64(committed[sites[k]]) <= t {
			if t >= float64(committed[sites[0]]) {
				return out // nobody is over the cap
			}
			for _, s := range sites[:k] {
				out[s] = t
			}
			return out
		}
	}
	for _, s := range sites {
		out[s] = 1
	}
	return out
}
