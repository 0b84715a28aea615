package he

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Party is one site's side of the protocol: its secret shares and the
// steps it takes. Its lifecycle:
//
//  1. NewParty draws the party's secret s_i, makes its public key share
//     and its n-1 outgoing ThresholdShares, then forgets s_i (the shares
//     and the party's own Shamir evaluation are all that remain of it).
//  2. The party publishes its Commitment (signed by its site). Once it
//     holds every party's commitment, PublicKeyShare reveals its share,
//     for the aggregator. It sends each ThresholdShare, sealed, to its
//     recipient and passes every share it receives to AddThresholdShare.
//  3. It takes the n public key shares (each signed by its party) and
//     checks the collective key itself with PublicKey, against the
//     commitments it revealed after. Once it holds all n-1 threshold
//     shares and the key, Ready is true.
//  4. For each round the job decrypts, it answers DecryptionShare with the
//     round's per-site ciphertexts, at most one sum per round.
//
// A Party holds secrets (it prints redacted) and scratch buffers: it is not
// safe for concurrent use.
type Party struct {
	params   Params
	index    int
	n, t     int
	seed     [SeedSize]byte
	setup    SetupID
	pkShare  *PublicKeyShare
	outgoing []*ThresholdShare
	// tsk accumulates the party's share of the collective secret: the sum
	// of every party's Shamir polynomial at this party's point.
	tsk      []uint64
	received []bool
	missing  int
	points   []multiparty.ShamirPublicPoint
	combiner multiparty.Combiner
	cks      multiparty.KeySwitchProtocol
	pk       *PublicKey // once checked by PublicKey
	// commitment is the party's own; commitments, every party's, recorded
	// when the party revealed its share (nil until then).
	commitment  Commitment
	commitments []Commitment
	// minContributors is the fewest distinct sites whose ciphertexts a sum
	// must add up for the party to decrypt it.
	minContributors int
	// rounds holds the digest of the one sum decrypted in each round, and
	// shares the share made for each active set of it: asked again, the
	// party answers the same share (no fresh noise to average away), and
	// it makes shares for at most n-t+1 active sets of a round.
	rounds map[RoundID][sha256.Size]byte
	shares map[RoundID]map[string]*DecryptionShare
}

// RoundID names one decryption of a job (its round number, say). A party
// decrypts one sum per RoundID: the caller must bind it to the round's
// signed ciphertexts, so that the same ciphertexts are not offered again
// under another RoundID.
type RoundID uint64

// PartyOption sets an optional parameter of NewParty; NewParty refuses an
// invalid one.
type PartyOption func(*Party) error

// MinContributors sets the fewest distinct sites (at least 2, at most n)
// whose ciphertexts a sum must add up for the party to produce a
// decryption share of it; the default is t. The larger it is, the more
// sites must collude with the aggregator to isolate one site's update.
func MinContributors(m int) PartyOption {
	return func(p *Party) error {
		if m < 2 || m > p.n {
			return fmt.Errorf("he: minimum of %d contributing sites, want 2 to %d (the number of parties): %w", m, p.n, ErrInvalid)
		}
		p.minContributors = m
		return nil
	}
}

// point is party i's public Shamir evaluation point (never zero, where the
// polynomials hold the secrets).
func point(i int) multiparty.ShamirPublicPoint { return multiparty.ShamirPublicPoint(i + 1) }

// NewParty sets up party index (0 to n-1) of n in a t-out-of-n threshold
// key: t (at least 2, at most n) parties together decrypt, t-1 learn
// nothing. seed is the job's public 32-byte seed; every party of the job
// must be given the same seed, n and t. opts (MinContributors) are applied
// in order.
func NewParty(params Params, index, n, t int, seed [SeedSize]byte, opts ...PartyOption) (*Party, error) {
	if err := params.check(); err != nil {
		return nil, err
	}
	if err := checkSetup(seed, n, t); err != nil {
		return nil, err
	}
	if index < 0 || index >= n {
		return nil, fmt.Errorf("he: party index %d of %d: %w", index, n, ErrInvalid)
	}
	p := &Party{
		params: params, index: index, n: n, t: t, seed: seed,
		setup:    newSetupID(params.id, seed, n, t),
		received: make([]bool, n),
		missing:  n - 1,
		rounds:   map[RoundID][sha256.Size]byte{},
		shares:   map[RoundID]map[string]*DecryptionShare{},
		// t, so that a sum the party decrypts holds at least as many
		// sites' updates as there are parties needed to decrypt.
		minContributors: t,
	}
	for _, opt := range opts {
		if err := opt(p); err != nil {
			return nil, err
		}
	}
	for i := range n {
		p.points = append(p.points, point(i))
	}
	p.received[index] = true

	sk := rlwe.NewKeyGenerator(params.ckks).GenSecretKeyNew()
	defer clear(sk.Value.Q.Coeffs[0])

	crs, err := sampling.NewKeyedPRNG(crsKey(seed))
	if err != nil {
		return nil, fmt.Errorf("he: party: common reference string: %w", err)
	}
	ckg := multiparty.NewPublicKeyGenProtocol(params.ckks)
	crp := ckg.SampleCRP(crs)
	share := ckg.AllocateShare()
	ckg.GenShare(sk, crp, &share)
	p.pkShare = &PublicKeyShare{
		params: params.id, seed: seed, n: n, t: t, from: index,
		value: share.Value.Q.Coeffs[0],
	}
	reduce(p.pkShare.value)
	p.commitment = commit(p.pkShare)

	thr := multiparty.NewThresholdizer(params.ckks)
	poly, err := thr.GenShamirPolynomial(t, sk)
	if err != nil {
		return nil, fmt.Errorf("he: party: shamir polynomial: %w", err)
	}
	defer func() {
		for _, c := range poly.Value {
			clear(c.Q.Coeffs[0])
		}
	}()
	for i := range n {
		eval := thr.AllocateThresholdSecretShare()
		thr.GenShamirSecretShare(point(i), poly, &eval)
		v := eval.Q.Coeffs[0]
		reduce(v)
		if i == index {
			p.tsk = v
			continue
		}
		p.outgoing = append(p.outgoing, &ThresholdShare{params: params.id, setup: p.setup, from: index, to: i, value: v})
	}

	p.combiner = multiparty.NewCombiner(*params.ckks.GetRLWEParameters(), point(index), p.points, t)
	p.cks, err = multiparty.NewKeySwitchProtocol(params.ckks, ring.DiscreteGaussian{Sigma: FloodSigma, Bound: 6 * FloodSigma})
	if err != nil {
		return nil, fmt.Errorf("he: party: decryption protocol: %w", err)
	}
	return p, nil
}

// Index returns the party's index.
func (p *Party) Index() int { return p.index }

// Setup returns the setup the party belongs to.
func (p *Party) Setup() SetupID { return p.setup }

// String prints the party's place in the setup, never its secrets.
func (p *Party) String() string {
	return fmt.Sprintf("he.Party{setup: %s, index: %d, n: %d, t: %d, secrets: REDACTED}", p.setup, p.index, p.n, p.t)
}

// GoString is String, so %#v does not print secrets either.
func (p *Party) GoString() string { return p.String() }

// Commitment returns the party's commitment to its public key share, to
// publish (signed by the site) before any party reveals its share.
func (p *Party) Commitment() Commitment { return p.commitment }

// PublicKeyShare reveals the party's contribution to the collective public
// key, for the aggregator (it holds no secret), once every party has
// committed: commitments holds the n parties' commitments, indexed by party
// (each signed by its site, the caller's to check). It refuses a missing
// commitment (ErrMissingCommitment), a set whose entry for this party is
// not its own commitment (ErrCommitmentMismatch), and a second call with
// other commitments (ErrMismatch). The party records the commitments;
// PublicKey accepts only the same ones.
func (p *Party) PublicKeyShare(commitments []Commitment) (*PublicKeyShare, error) {
	if err := checkCommitments(commitments, p.n); err != nil {
		return nil, fmt.Errorf("he: reveal public key share: %w", err)
	}
	if commitments[p.index] != p.commitment {
		return nil, fmt.Errorf("he: reveal public key share: the commitment of party %d is not its own: %w", p.index, ErrCommitmentMismatch)
	}
	if p.commitments != nil && !slices.Equal(p.commitments, commitments) {
		return nil, fmt.Errorf("he: reveal public key share: party %d revealed its share after other commitments: %w", p.index, ErrMismatch)
	}
	p.commitments = slices.Clone(commitments)
	return p.pkShare, nil
}

// ThresholdShares returns the party's n-1 outgoing setup shares, one per
// other party in index order (To names the recipient). They are secret:
// each must be sealed to its recipient, and none may reach anyone else.
func (p *Party) ThresholdShares() []*ThresholdShare { return slices.Clone(p.outgoing) }

// AddThresholdShare takes the setup share another party sent to this one.
// It refuses a share of another setup, one addressed to another party, one
// from this party or out of range, and a second share from the same sender;
// p is unchanged on error.
func (p *Party) AddThresholdShare(s *ThresholdShare) error {
	switch {
	case s == nil || len(s.value) != N:
		return fmt.Errorf("he: threshold share not made by this package: %w", ErrInvalid)
	case s.params != p.params.id:
		return fmt.Errorf("he: threshold share of parameter set %d: %w", s.params, ErrParams)
	case s.setup != p.setup:
		return fmt.Errorf("he: threshold share of setup %s, this party is in %s: %w", s.setup, p.setup, ErrMismatch)
	case s.to != p.index:
		return fmt.Errorf("he: threshold share for party %d received by party %d: %w", s.to, p.index, ErrWrongRecipient)
	case s.from < 0 || s.from >= p.n || s.from == p.index:
		return fmt.Errorf("he: threshold share from party %d of %d: %w", s.from, p.n, ErrInvalid)
	case p.received[s.from]:
		return fmt.Errorf("he: second threshold share from party %d: %w", s.from, ErrDuplicate)
	}
	addMod(p.tsk, s.value)
	p.received[s.from] = true
	p.missing--
	return nil
}

// PublicKey is the party's own check of the collective key: it aggregates
// the n public key shares itself (AggregatePublicKey) and refuses them if
// its own share is missing or altered, for a key without the party's secret
// in it could be one whose secret someone else holds, and if any share
// does not match its party's commitment (VerifyShares), for a share chosen
// after seeing the others could cancel them (the rogue-key attack).
// commitments must be those the party revealed its share after
// (PublicKeyShare); PublicKey refuses before the party has revealed
// (ErrSetupIncomplete) and other commitments (ErrMismatch). The party then
// decrypts only under this key. A site must encrypt only under a key it
// obtained this way (or whose ID equals it), never under a key merely
// handed to it: a key the aggregator made alone would let the aggregator
// read every update. The authenticity of the other shares and commitments
// (each signed by its party) is the caller's to check.
func (p *Party) PublicKey(commitments []Commitment, shares []*PublicKeyShare) (*PublicKey, error) {
	if p.commitments == nil {
		return nil, fmt.Errorf("he: public key: party %d has not revealed its share: %w", p.index, ErrSetupIncomplete)
	}
	if !slices.Equal(p.commitments, commitments) {
		return nil, fmt.Errorf("he: public key: not the commitments party %d revealed its share after: %w", p.index, ErrMismatch)
	}
	own := slices.IndexFunc(shares, func(s *PublicKeyShare) bool { return s != nil && s.from == p.index })
	if own < 0 || !p.pkShare.equal(shares[own]) {
		return nil, fmt.Errorf("he: public key: party %d's own share is missing or altered: %w", p.index, ErrMismatch)
	}
	if err := VerifyShares(commitments, shares); err != nil {
		return nil, fmt.Errorf("he: public key: %w", err)
	}
	pk, err := AggregatePublicKey(shares)
	if err != nil {
		return nil, err
	}
	if p.pk != nil && p.pk.id != pk.id {
		return nil, fmt.Errorf("he: public key: party %d already holds key %s, not %s: %w", p.index, p.pk.id, pk.id, ErrMismatch)
	}
	p.pk = pk
	return pk, nil
}

// Ready reports whether the party holds every other party's setup share
// and has checked the collective key, so that it can take part in
// decryption.
func (p *Party) Ready() bool { return p.missing == 0 && p.pk != nil }

// checkActive validates an active set: exactly t distinct party indices in
// increasing order, all below n.
func checkActive(active []int, n, t int) error {
	if len(active) != t {
		return fmt.Errorf("%d parties, the threshold is %d: %w", len(active), t, ErrActiveSet)
	}
	for i, a := range active {
		if a < 0 || a >= n || (i > 0 && a <= active[i-1]) {
			return fmt.Errorf("%v is not increasing party indices below %d: %w", active, n, ErrActiveSet)
		}
	}
	return nil
}

// DecryptionShare makes the party's share of the decryption of one round's
// sum: contributions holds the round's per-site ciphertexts keyed by the
// index of the site that sent each (each signed by its site, the caller's
// to check), and the party sums them itself (Sum) and produces a share of
// that sum only, never of a ciphertext handed to it. active is the t
// parties (this one among them) whose shares will be combined; the
// aggregator combines the shares with the same Sum of contributions.
//
// It refuses, before anything is decrypted: a party not Ready; fewer
// contributions than the party's minimum of distinct sites
// (MinContributors, t by default: ErrTooFewContributors); a contribution
// from outside the setup, one that is already a sum of several updates,
// one under another key or of another length; an invalid active set; and a
// round for which it has already produced a share of a different sum
// (ErrRoundDecrypted), for two sums of overlapping sets of sites would
// give away their difference. The same sum may be asked for again in its
// round, for another active set when a site drops out, up to n-t+1 active
// sets (ErrActiveSet past them); asked again for the same active set, the
// party answers the share it made, with the same noise, so that repeated
// requests average nothing away. The party remembers every round it
// decrypted for its lifetime.
func (p *Party) DecryptionShare(round RoundID, contributions map[int]*Ciphertext, active []int) (*DecryptionShare, error) {
	if !p.Ready() {
		return nil, fmt.Errorf("he: decryption share: %d setup shares missing, key checked: %t: %w", p.missing, p.pk != nil, ErrSetupIncomplete)
	}
	if len(contributions) < p.minContributors {
		return nil, fmt.Errorf("he: decryption share: round %d: ciphertexts of %d sites, at least %d needed: %w", round, len(contributions), p.minContributors, ErrTooFewContributors)
	}
	from := slices.Sorted(maps.Keys(contributions))
	cts := make([]*Ciphertext, len(from))
	for k, i := range from {
		ct := contributions[i]
		if i < 0 || i >= p.n {
			return nil, fmt.Errorf("he: decryption share: round %d: ciphertext of site %d of %d: %w", round, i, p.n, ErrInvalid)
		}
		if err := ct.check(); err != nil {
			return nil, fmt.Errorf("he: decryption share: round %d: ciphertext of site %d: %w", round, i, err)
		}
		if ct.summands != 1 {
			return nil, fmt.Errorf("he: decryption share: round %d: ciphertext of site %d is a sum of %d updates, not one site's: %w", round, i, ct.summands, ErrInvalid)
		}
		if ct.key != p.pk.id {
			return nil, fmt.Errorf("he: decryption share: round %d: ciphertext of site %d under key %s, not %s: %w", round, i, ct.key, p.pk.id, ErrMismatch)
		}
		cts[k] = ct
	}
	sum, err := Sum(cts...)
	if err != nil {
		return nil, fmt.Errorf("he: decryption share: round %d: %w", round, err)
	}
	digest := sum.Digest()
	if prev, ok := p.rounds[round]; ok && prev != digest {
		return nil, fmt.Errorf("he: decryption share: party %d already decrypted another sum in round %d: %w", p.index, round, ErrRoundDecrypted)
	}
	key := fmt.Sprint(active)
	if made := p.shares[round][key]; made != nil {
		return made, nil
	}
	if len(p.shares[round]) >= p.n-p.t+1 {
		return nil, fmt.Errorf("he: decryption share: party %d made shares for %d active sets of round %d already, the most: %w", p.index, len(p.shares[round]), round, ErrActiveSet)
	}
	share, err := p.decryptionShare(sum, active)
	if err != nil {
		return nil, err
	}
	p.rounds[round] = digest
	if p.shares[round] == nil {
		p.shares[round] = map[string]*DecryptionShare{}
	}
	p.shares[round][key] = share
	return share, nil
}

// decryptionShare makes the party's share of the decryption of ct, which
// must be under the party's key (see PublicKey), for the given active set:
// the t parties (this one among them) whose shares will be combined. The
// share is c1*s'_i + e_i per chunk, where s'_i is the party's threshold
// secret times its Lagrange coefficient for the active set and e_i is noise
// of standard deviation FloodSigma: by itself, and with fewer than t others,
// it reveals nothing of the plaintext or of the party's secret.
//
// It refuses before the party is Ready, a ciphertext under another key, and
// an invalid active set. Whoever gathers t shares learns the plaintext of
// ct, which is why it is reachable only through DecryptionShare, which
// decrypts nothing but a sum it computed itself.
func (p *Party) decryptionShare(ct *Ciphertext, active []int) (*DecryptionShare, error) {
	if !p.Ready() {
		return nil, fmt.Errorf("he: decryption share: %d setup shares missing, key checked: %t: %w", p.missing, p.pk != nil, ErrSetupIncomplete)
	}
	if err := ct.check(); err != nil {
		return nil, fmt.Errorf("he: decryption share: %w", err)
	}
	if ct.key != p.pk.id {
		return nil, fmt.Errorf("he: decryption share: ciphertext under key %s, not %s: %w", ct.key, p.pk.id, ErrMismatch)
	}
	if err := checkActive(active, p.n, p.t); err != nil {
		return nil, fmt.Errorf("he: decryption share: %w", err)
	}
	if !slices.Contains(active, p.index) {
		return nil, fmt.Errorf("he: decryption share: party %d not in active set %v: %w", p.index, active, ErrActiveSet)
	}

	points := make([]multiparty.ShamirPublicPoint, len(active))
	for i, a := range active {
		points[i] = point(a)
	}
	own := multiparty.ShamirSecretShare{Poly: ringqp.Poly{Q: ring.Poly{Coeffs: [][]uint64{p.tsk}}}}
	additive := rlwe.NewSecretKey(p.params.ckks)
	defer clear(additive.Value.Q.Coeffs[0])
	if err := p.combiner.GenAdditiveShare(points, point(p.index), own, additive); err != nil {
		return nil, fmt.Errorf("he: decryption share: additive share: %w", err)
	}
	zero := rlwe.NewSecretKey(p.params.ckks)

	out := &DecryptionShare{
		params: p.params.id, key: ct.key, ct: ct.Digest(), from: p.index,
		active: slices.Clone(active), coeffs: make([]uint64, N*chunks(ct.length)),
	}
	for j := range chunks(ct.length) {
		share := multiparty.KeySwitchShare{Value: ring.Poly{Coeffs: [][]uint64{out.coeffs[j*N : (j+1)*N : (j+1)*N]}}}
		p.cks.GenShare(additive, zero, ct.chunk(j, p.params.meta), &share)
	}
	reduce(out.coeffs)
	return out, nil
}
