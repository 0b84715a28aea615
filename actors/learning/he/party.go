package he

import (
	"fmt"
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
//  1. NewParty draws the party's secret s_i, makes its PublicKeyShare and
//     its n-1 outgoing ThresholdShares, then forgets s_i (the shares and
//     the party's own Shamir evaluation are all that remain of it).
//  2. The party sends PublicKeyShare to the aggregator and each
//     ThresholdShare, sealed, to its recipient; it passes every share it
//     receives to AddThresholdShare.
//  3. It takes the n public key shares (each signed by its party) and
//     checks the collective key itself with PublicKey. Once it holds all
//     n-1 threshold shares and the key, Ready is true.
//  4. For each aggregate the job decrypts, it answers DecryptionShare.
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
}

// point is party i's public Shamir evaluation point (never zero, where the
// polynomials hold the secrets).
func point(i int) multiparty.ShamirPublicPoint { return multiparty.ShamirPublicPoint(i + 1) }

// NewParty sets up party index (0 to n-1) of n in a t-out-of-n threshold
// key: t (at least 2, at most n) parties together decrypt, t-1 learn
// nothing. seed is the job's public 32-byte seed; every party of the job
// must be given the same seed, n and t.
func NewParty(params Params, index, n, t int, seed [SeedSize]byte) (*Party, error) {
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

// PublicKeyShare returns the party's contribution to the collective public
// key, for the aggregator (it holds no secret).
func (p *Party) PublicKeyShare() *PublicKeyShare { return p.pkShare }

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
// in it could be one whose secret someone else holds. The party then
// decrypts only under this key. A site must encrypt only under a key it
// obtained this way (or whose ID equals it), never under a key merely
// handed to it: a key the aggregator made alone would let the aggregator
// read every update. The other shares' authenticity (each signed by its
// party) is the caller's to check.
func (p *Party) PublicKey(shares []*PublicKeyShare) (*PublicKey, error) {
	own := slices.IndexFunc(shares, func(s *PublicKeyShare) bool { return s != nil && s.from == p.index })
	if own < 0 || !p.pkShare.equal(shares[own]) {
		return nil, fmt.Errorf("he: public key: party %d's own share is missing or altered: %w", p.index, ErrMismatch)
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

// DecryptionShare makes the party's share of the decryption of ct, which
// must be under the party's key (see PublicKey), for the given active set:
// the t parties (this one among them) whose shares will be combined. The
// share is c1*s'_i + e_i per chunk, where s'_i is the party's threshold
// secret times its Lagrange coefficient for the active set and e_i is noise
// of standard deviation FloodSigma: by itself, and with fewer than t others,
// it reveals nothing of the plaintext or of the party's secret.
//
// It refuses before the party is Ready, a ciphertext under another key, and
// an invalid active set. Whoever gathers t shares learns the plaintext of
// ct, so the caller must check that ct is what the job is to decrypt (an
// aggregate of enough sites' updates), never one site's update.
func (p *Party) DecryptionShare(ct *Ciphertext, active []int) (*DecryptionShare, error) {
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
