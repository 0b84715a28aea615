// Package swarm holds what both ends of a swarm job compute and check
// alike: the rotation that names each round's aggregator (so that no
// aggregator picks its successor and every site can check the pick), the
// model's digest, and the encryption of streamed models. Sealing keys are
// bound to certificates by actors/sealing.
//
// The rotation is a permutation of the eligible sites fixed by the signed
// job's nonce: sites are ordered by SHA-256(nonce || name). Round r's
// attempt a is aggregated by order[(r-1+a) mod n]: consecutive rounds move
// to the next site, and a failover (attempt a+1) moves on too. Nobody
// chooses the order: the submitter's console draws the nonce at random
// before any site has joined, and the nonce is signed with the manifest.
package swarm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
)

// Rotation is the order in which eligible sites aggregate a job's rounds.
type Rotation []string

// NewRotation orders eligible (duplicates dropped) by SHA-256(nonce ||
// name).
func NewRotation(nonce []byte, eligible []string) Rotation {
	sites := slices.Clone(eligible)
	slices.Sort(sites)
	sites = slices.Compact(sites)
	rank := func(s string) []byte {
		h := sha256.Sum256(append(append(slices.Clone(nonce), 0), s...))
		return h[:]
	}
	slices.SortFunc(sites, func(a, b string) int { return bytes.Compare(rank(a), rank(b)) })
	return Rotation(sites)
}

// Aggregator names the aggregator of a round's attempt, "" for a round
// below 1, a negative attempt or an empty rotation.
func (r Rotation) Aggregator(round, attempt int64) string {
	if len(r) == 0 || round < 1 || attempt < 0 {
		return ""
	}
	return r[(round-1+attempt)%int64(len(r))]
}

// Check says why aggregator may not aggregate a round's attempt, nil if it
// is the rotation's pick. Attempts are bounded by the rotation's length: by
// then every eligible site has had its turn at the round.
func (r Rotation) Check(round, attempt int64, aggregator string) error {
	switch {
	case len(r) == 0:
		return errors.New("no site is eligible to aggregate")
	case attempt < 0 || attempt >= int64(len(r)):
		return fmt.Errorf("attempt %d of round %d: want 0..%d (one for each eligible site)", attempt, round, len(r)-1)
	}
	if want := r.Aggregator(round, attempt); want != aggregator {
		return fmt.Errorf("round %d attempt %d is %s's to aggregate, not %s's", round, attempt, want, aggregator)
	}
	return nil
}
