package he

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestNewPartyRefuses(t *testing.T) {
	params := testParams(t)
	tests := []struct {
		name         string
		params       Params
		index, n, th int
		seed         [SeedSize]byte
		want         error
	}{
		{name: "threshold 1 lets one site decrypt", params: params, index: 0, n: 3, th: 1, seed: testSeed(1), want: ErrInvalid},
		{name: "threshold above n", params: params, index: 0, n: 3, th: 4, seed: testSeed(1), want: ErrInvalid},
		{name: "one party", params: params, index: 0, n: 1, th: 1, seed: testSeed(1), want: ErrInvalid},
		{name: "more than MaxParties", params: params, index: 0, n: MaxParties + 1, th: 2, seed: testSeed(1), want: ErrInvalid},
		{name: "negative index", params: params, index: -1, n: 3, th: 2, seed: testSeed(1), want: ErrInvalid},
		{name: "index n", params: params, index: 3, n: 3, th: 2, seed: testSeed(1), want: ErrInvalid},
		{name: "all-zero seed", params: params, index: 0, n: 3, th: 2, want: ErrInvalid},
		{name: "zero Params", index: 0, n: 3, th: 2, seed: testSeed(1), want: ErrParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewParty(tt.params, tt.index, tt.n, tt.th, tt.seed); !errors.Is(err, tt.want) {
				t.Fatalf("NewParty: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAddThresholdShareRefuses(t *testing.T) {
	params := testParams(t)
	fresh := func(seed byte) []*Party {
		var ps []*Party
		for i := range 3 {
			p, err := NewParty(params, i, 3, 2, testSeed(seed))
			if err != nil {
				t.Fatalf("NewParty: %v", err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	ps, others := fresh(1), fresh(2)
	// share returns party from's share for party to.
	share := func(ps []*Party, from, to int) *ThresholdShare {
		for _, s := range ps[from].ThresholdShares() {
			if s.To() == to {
				return s
			}
		}
		t.Fatalf("party %d has no share for %d", from, to)
		return nil
	}
	if err := ps[0].AddThresholdShare(share(ps, 1, 0)); err != nil {
		t.Fatalf("first share: %v", err)
	}
	forged := *share(ps, 2, 0)
	forged.from = 0
	tests := []struct {
		name  string
		share *ThresholdShare
		want  error
	}{
		{name: "addressed to another party", share: share(ps, 1, 2), want: ErrWrongRecipient},
		{name: "second share from the same sender", share: share(ps, 1, 0), want: ErrDuplicate},
		{name: "another setup's share", share: share(others, 2, 0), want: ErrMismatch},
		{name: "from the recipient itself", share: &forged, want: ErrInvalid},
		{name: "nil", want: ErrInvalid},
		{name: "zero value", share: &ThresholdShare{}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ps[0].AddThresholdShare(tt.share); !errors.Is(err, tt.want) {
				t.Fatalf("AddThresholdShare: %v, want %v", err, tt.want)
			}
			if ps[0].Ready() {
				t.Fatal("party ready after a refused share")
			}
		})
	}
	if _, err := ps[0].DecryptionShare(1, nil, []int{0, 1}); !errors.Is(err, ErrSetupIncomplete) {
		t.Fatalf("DecryptionShare before setup completes: %v, want ErrSetupIncomplete", err)
	}
}

func TestAggregatePublicKeyRefuses(t *testing.T) {
	params := testParams(t)
	var shares, others []*PublicKeyShare
	for i := range 3 {
		p, err := NewParty(params, i, 3, 2, testSeed(1))
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		shares = append(shares, p.pkShare)
		o, err := NewParty(params, i, 3, 3, testSeed(1)) // same seed, other t
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		others = append(others, o.pkShare)
	}
	tests := []struct {
		name   string
		shares []*PublicKeyShare
		want   error
	}{
		{name: "none", want: ErrMissingShares},
		{name: "one party missing", shares: shares[:2], want: ErrMissingShares},
		{name: "a party twice", shares: []*PublicKeyShare{shares[0], shares[1], shares[1]}, want: ErrDuplicate},
		{name: "more than n", shares: append(shares[:3:3], shares[0]), want: ErrDuplicate},
		{name: "another setup", shares: []*PublicKeyShare{shares[0], shares[1], others[2]}, want: ErrMismatch},
		{name: "nil share", shares: []*PublicKeyShare{shares[0], nil, shares[2]}, want: ErrInvalid},
		{name: "zero share", shares: []*PublicKeyShare{{}}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := AggregatePublicKey(tt.shares); !errors.Is(err, tt.want) {
				t.Fatalf("AggregatePublicKey: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncryptRefuses(t *testing.T) {
	params := testParams(t)
	_, pk := setup(t, params, 2, 2, testSeed(1))
	enc, err := NewEncryptor(params, pk)
	if err != nil {
		t.Fatalf("NewEncryptor: %v", err)
	}
	tests := []struct {
		name   string
		update []float32
		weight float64
		want   error
	}{
		{name: "empty", update: nil, weight: 1, want: ErrInvalid},
		{name: "NaN", update: []float32{0, float32(math.NaN())}, weight: 1, want: ErrValueOutOfRange},
		{name: "infinity", update: []float32{float32(math.Inf(-1))}, weight: 1, want: ErrValueOutOfRange},
		{name: "value above the bound", update: []float32{MaxAbsValue + 0.01}, weight: 1, want: ErrValueOutOfRange},
		{name: "weight takes it above the bound", update: []float32{0.6}, weight: 2 * MaxAbsValue, want: ErrValueOutOfRange},
		{name: "NaN weight", update: []float32{0.5}, weight: math.NaN(), want: ErrValueOutOfRange},
		{name: "more than MaxValues", update: make([]float32, MaxValues+1), weight: 1, want: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := enc.Encrypt(tt.update, tt.weight); !errors.Is(err, tt.want) {
				t.Fatalf("Encrypt: %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := enc.Encrypt([]float32{-MaxAbsValue, MaxAbsValue}, 1); err != nil {
		t.Fatalf("Encrypt at the bound: %v", err)
	}
	if _, err := NewEncryptor(Params{}, pk); !errors.Is(err, ErrParams) {
		t.Fatalf("NewEncryptor with zero Params: %v, want ErrParams", err)
	}
	if _, err := NewEncryptor(params, &PublicKey{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewEncryptor with a zero key: %v, want ErrInvalid", err)
	}
}

func TestSumRefuses(t *testing.T) {
	params := testParams(t)
	_, pk := setup(t, params, 2, 2, testSeed(1))
	_, otherPK := setup(t, params, 2, 2, testSeed(2))
	encrypt := func(pk *PublicKey, length int) *Ciphertext {
		enc, err := NewEncryptor(params, pk)
		if err != nil {
			t.Fatalf("NewEncryptor: %v", err)
		}
		ct, err := enc.Encrypt(make([]float32, length), 1)
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		return ct
	}
	a, b := encrypt(pk, 10), encrypt(pk, 10)
	full := encrypt(pk, 10)
	for full.Summands() < MaxSummands { // doubling: 1, 2, ..., 64
		if err := full.Add(full); err != nil {
			t.Fatalf("doubling: %v", err)
		}
	}
	tests := []struct {
		name string
		cts  []*Ciphertext
		want error
	}{
		{name: "nothing", want: ErrInvalid},
		{name: "another key", cts: []*Ciphertext{a, encrypt(otherPK, 10)}, want: ErrMismatch},
		{name: "another length", cts: []*Ciphertext{a, encrypt(pk, 11)}, want: ErrMismatch},
		{name: "more than MaxSummands", cts: []*Ciphertext{full, b}, want: ErrTooManySummands},
		{name: "zero ciphertext", cts: []*Ciphertext{a, {}}, want: ErrInvalid},
		{name: "nil", cts: []*Ciphertext{nil, a}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.Digest()
			if _, err := Sum(tt.cts...); !errors.Is(err, tt.want) {
				t.Fatalf("Sum: %v, want %v", err, tt.want)
			}
			if a.Digest() != before || a.Summands() != 1 {
				t.Fatal("Sum changed its input")
			}
		})
	}
}

// TestDecryptionShareRefuses: a party decrypts only a sum it computed
// itself from enough sites' ciphertexts, one sum per round.
func TestDecryptionShareRefuses(t *testing.T) {
	params := testParams(t)
	parties, pk := setup(t, params, 4, 3, testSeed(1))
	_, otherPK := setup(t, params, 4, 3, testSeed(2))
	rng := rand.New(rand.NewPCG(1, 1))
	ups, weights := updates(rng, 4, 100)
	sum, cts := encryptAll(t, params, pk, ups, weights)
	_, otherCts := encryptAll(t, params, otherPK, ups, weights)
	longer, _ := encryptAll(t, params, pk, [][]float32{make([]float32, 101)}, []float64{1})
	three := map[int]*Ciphertext{0: cts[0], 1: cts[1], 2: cts[2]}
	with := func(i int, ct *Ciphertext) map[int]*Ciphertext {
		m := map[int]*Ciphertext{0: cts[0], 1: cts[1], 2: cts[2]}
		m[i] = ct
		return m
	}
	tests := []struct {
		name   string
		cts    map[int]*Ciphertext
		active []int
		want   error
	}{
		{name: "one site's ciphertext only", cts: map[int]*Ciphertext{0: cts[0]}, active: []int{0, 1, 2}, want: ErrTooFewContributors},
		{name: "t-1 sites", cts: map[int]*Ciphertext{0: cts[0], 3: cts[3]}, active: []int{0, 1, 2}, want: ErrTooFewContributors},
		{name: "no ciphertexts", active: []int{0, 1, 2}, want: ErrTooFewContributors},
		{name: "a sum passed as one site's", cts: with(0, sum), active: []int{0, 1, 2}, want: ErrInvalid},
		{name: "site index n", cts: with(4, cts[3]), active: []int{0, 1, 2}, want: ErrInvalid},
		{name: "negative site index", cts: with(-1, cts[3]), active: []int{0, 1, 2}, want: ErrInvalid},
		{name: "a ciphertext under another key", cts: with(1, otherCts[1]), active: []int{0, 1, 2}, want: ErrMismatch},
		{name: "a ciphertext of another length", cts: with(3, longer), active: []int{0, 1, 2}, want: ErrMismatch},
		{name: "nil ciphertext", cts: with(1, nil), active: []int{0, 1, 2}, want: ErrInvalid},
		{name: "zero ciphertext", cts: with(1, &Ciphertext{}), active: []int{0, 1, 2}, want: ErrInvalid},
		{name: "active set smaller than t", cts: three, active: []int{0, 1}, want: ErrActiveSet},
		{name: "active set larger than t", cts: three, active: []int{0, 1, 2, 3}, want: ErrActiveSet},
		{name: "party not in the active set", cts: three, active: []int{1, 2, 3}, want: ErrActiveSet},
		{name: "repeated index", cts: three, active: []int{0, 0, 1}, want: ErrActiveSet},
		{name: "not increasing", cts: three, active: []int{0, 2, 1}, want: ErrActiveSet},
		{name: "index out of range", cts: three, active: []int{0, 1, 4}, want: ErrActiveSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parties[0].DecryptionShare(1, tt.cts, tt.active); !errors.Is(err, tt.want) {
				t.Fatalf("DecryptionShare: %v, want %v", err, tt.want)
			}
			if len(parties[0].rounds) != 0 {
				t.Fatal("a refused request recorded its round")
			}
		})
	}

	t.Run("a second sum in the same round", func(t *testing.T) {
		p := parties[1]
		all := contributions(cts)
		if _, err := p.DecryptionShare(7, all, []int{0, 1, 2}); err != nil {
			t.Fatalf("first request of round 7: %v", err)
		}
		// The same sum again, for another active set (a site dropped out):
		// nothing new is revealed.
		if _, err := p.DecryptionShare(7, all, []int{1, 2, 3}); err != nil {
			t.Fatalf("the same sum again in round 7: %v", err)
		}
		// Asked again for an active set it answered: the very share, not
		// one with fresh noise (averaging many would wear the noise down).
		first, _ := p.DecryptionShare(7, all, []int{0, 1, 2})
		again, err := p.DecryptionShare(7, all, []int{0, 1, 2})
		a, _ := first.MarshalBinary()
		b, _ := again.MarshalBinary()
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("the same request twice: %v, same share %v", err, bytes.Equal(a, b))
		}
		// n-t+1 = 2 active sets a round, no more.
		if _, err := p.DecryptionShare(7, all, []int{0, 1, 3}); !errors.Is(err, ErrActiveSet) {
			t.Fatalf("a third active set in round 7: %v, want ErrActiveSet", err)
		}
		// Sites 0-3, then 1-3: the two plaintexts would give site 0's update.
		delete(all, 0)
		if _, err := p.DecryptionShare(7, all, []int{1, 2, 3}); !errors.Is(err, ErrRoundDecrypted) {
			t.Fatalf("another sum in round 7: %v, want ErrRoundDecrypted", err)
		}
		if _, err := p.DecryptionShare(8, all, []int{1, 2, 3}); err != nil {
			t.Fatalf("that sum in round 8: %v", err)
		}
	})

	t.Run("minimum of contributing sites", func(t *testing.T) {
		for _, m := range []int{1, 0, 5} {
			if _, err := NewParty(params, 0, 4, 3, testSeed(1), MinContributors(m)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewParty with MinContributors(%d) of 4: %v, want ErrInvalid", m, err)
			}
		}
		q, err := NewParty(params, 0, 4, 3, testSeed(1), MinContributors(4))
		if err != nil || q.minContributors != 4 {
			t.Fatalf("NewParty with MinContributors(4): %v, minimum %d", err, q.minContributors)
		}
		if d, _ := NewParty(params, 0, 4, 3, testSeed(1)); d.minContributors != 3 {
			t.Fatalf("default minimum %d, want t = 3", d.minContributors)
		}
		p := parties[2]
		p.minContributors = 4
		defer func() { p.minContributors = 3 }()
		if _, err := p.DecryptionShare(1, three, []int{0, 1, 2}); !errors.Is(err, ErrTooFewContributors) {
			t.Fatalf("3 sites with a minimum of 4: %v, want ErrTooFewContributors", err)
		}
		if _, err := p.DecryptionShare(1, contributions(cts), []int{0, 1, 2}); err != nil {
			t.Fatalf("4 sites with a minimum of 4: %v", err)
		}
	})
}

// TestCraftedCiphertextNeverDecrypted: whatever ciphertext the aggregator
// means to decrypt (one site's update, or one whose c1 is the constant 1,
// whose decryption shares would add up to the collective secret), the
// parties decrypt only the sum they compute from the round's ciphertexts:
// the shares do not fit the crafted ciphertext and give nothing of it, and
// a crafted contribution only turns the sum into garbage, which Combine
// refuses.
func TestCraftedCiphertextNeverDecrypted(t *testing.T) {
	params := testParams(t)
	parties, pk := setup(t, params, 4, 3, testSeed(5))
	ups, weights := updates(rand.New(rand.NewPCG(8, 8)), 4, Slots)
	sum, cts := encryptAll(t, params, pk, ups, weights)
	constC1, err := Sum(cts[0])
	if err != nil {
		t.Fatalf("Sum: %v", err)
	}
	for i := range N {
		constC1.coeffs[N+i] = 1 // the polynomial 1 in the NTT domain
	}
	site0 := weightedSum(ups[:1], weights[:1])
	tests := []struct {
		name    string
		crafted *Ciphertext
		cts     map[int]*Ciphertext
		want    []float64 // what decrypting the crafted ciphertext would give away
		sumErr  error     // what combining the parties' own sum gives
	}{
		{name: "one site's update", crafted: cts[0], cts: contributions(cts), want: site0},
		{name: "c1 constant, offered as a contribution", crafted: constC1, cts: map[int]*Ciphertext{0: constC1, 1: cts[1], 2: cts[2]}, sumErr: ErrImplausible},
		{name: "c1 constant, with the real round", crafted: constC1, cts: contributions(cts)},
	}
	active := []int{0, 1, 3}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			round := RoundID(100 + i)
			var shares []*DecryptionShare
			for _, a := range active {
				s, err := parties[a].DecryptionShare(round, tt.cts, active)
				if err != nil {
					t.Fatalf("party %d DecryptionShare: %v", a, err)
				}
				shares = append(shares, s)
			}
			recomputed, err := Sum(slices.Collect(maps.Values(tt.cts))...)
			if err != nil {
				t.Fatalf("Sum: %v", err)
			}
			for _, s := range shares {
				if s.ct != recomputed.Digest() || s.ct == tt.crafted.Digest() {
					t.Fatalf("party %d's share is not of the sum of the round's ciphertexts", s.From())
				}
			}
			if _, err := Combine(params, pk, tt.crafted, shares); !errors.Is(err, ErrMismatch) {
				t.Fatalf("Combine with the crafted ciphertext: %v, want ErrMismatch", err)
			}
			if tt.want != nil {
				raw, err := combine(params, tt.crafted, shares)
				if err != nil {
					t.Fatalf("combine by hand: %v", err)
				}
				if e := maxAbsErr(raw[:tt.crafted.Len()], tt.want); e < 1000 {
					t.Fatalf("the shares decrypt the crafted ciphertext to within %g", e)
				}
			}
			if _, err := Combine(params, pk, recomputed, shares); !errors.Is(err, tt.sumErr) {
				t.Fatalf("Combine with the sum the parties computed: %v, want %v", err, tt.sumErr)
			}
		})
	}
	if sum.Summands() != 4 {
		t.Fatalf("the round's sum has %d summands, want 4", sum.Summands())
	}
}

// TestRogueKeyShareRefused: the rogue-key attack. Party 1, seeing the
// others' shares before sending its own, sends b_1 = -s*a + e - b_0 - b_2
// for a secret s of its own, so that the collective key would be (-s*a + e,
// a), a key only it can decrypt. Its share cannot match the commitment it
// had to publish before any share was revealed, and the parties refuse it.
func TestRogueKeyShareRefused(t *testing.T) {
	params := testParams(t)
	seed := testSeed(6)
	var parties []*Party
	for i := range 3 {
		p, err := NewParty(params, i, 3, 2, seed)
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		parties = append(parties, p)
	}
	commitments := commitAll(parties)
	shares := reveal(t, parties, commitments)
	// The attacker's own key pair, with the job's public values.
	attacker, err := NewParty(params, 1, 3, 2, seed)
	if err != nil {
		t.Fatalf("NewParty: %v", err)
	}
	rogue := *attacker.pkShare
	rogue.value = slices.Clone(attacker.pkShare.value)
	for _, other := range []*PublicKeyShare{shares[0], shares[2]} {
		for k, v := range other.value {
			rogue.value[k] = (rogue.value[k] + Q - v) % Q
		}
	}
	rogueShares := []*PublicKeyShare{shares[0], viaWire(t, &rogue, &PublicKeyShare{}), shares[2]}

	// Without the commitments the attack works: the key is the attacker's.
	key, err := AggregatePublicKey(rogueShares)
	if err != nil {
		t.Fatalf("AggregatePublicKey: %v", err)
	}
	if !slices.Equal(key.value, attacker.pkShare.value) {
		t.Fatal("the rogue share does not make the attacker's key; the test shows nothing")
	}

	if err := VerifyShares(commitments, rogueShares); !errors.Is(err, ErrCommitmentMismatch) || !strings.Contains(err.Error(), "party 1") {
		t.Fatalf("VerifyShares with the rogue share: %v, want ErrCommitmentMismatch naming party 1", err)
	}
	for _, i := range []int{0, 2} {
		if _, err := parties[i].PublicKey(commitments, rogueShares); !errors.Is(err, ErrCommitmentMismatch) {
			t.Fatalf("party %d takes the rogue key: %v, want ErrCommitmentMismatch", i, err)
		}
		if parties[i].pk != nil {
			t.Fatalf("party %d holds a key after refusing it", i)
		}
	}
	// Committing to the rogue share would have meant knowing the others'
	// shares before committing: they are not revealed until every
	// commitment is in.
	late := slices.Clone(commitments)
	late[1] = Commitment{}
	fresh, err := NewParty(params, 0, 3, 2, seed)
	if err != nil {
		t.Fatalf("NewParty: %v", err)
	}
	if _, err := fresh.PublicKeyShare(late); !errors.Is(err, ErrMissingCommitment) || !strings.Contains(err.Error(), "party 1") {
		t.Fatalf("revealing before party 1 committed: %v, want ErrMissingCommitment naming party 1", err)
	}
	for _, p := range parties {
		if _, err := p.PublicKey(commitments, shares); err != nil {
			t.Fatalf("party %d with the honest shares: %v", p.Index(), err)
		}
	}
}

// TestCommitmentsRefuse: a share is revealed only once every commitment is
// in, and taken only against the commitments it was revealed after.
func TestCommitmentsRefuse(t *testing.T) {
	params := testParams(t)
	seed := testSeed(7)
	var parties []*Party
	for i := range 3 {
		p, err := NewParty(params, i, 3, 2, seed)
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		parties = append(parties, p)
	}
	commitments := commitAll(parties)
	other, err := NewParty(params, 0, 3, 2, seed)
	if err != nil {
		t.Fatalf("NewParty: %v", err)
	}
	hole := slices.Clone(commitments)
	hole[2] = Commitment{}
	notOwn := slices.Clone(commitments)
	notOwn[0] = other.Commitment()
	t.Run("reveal", func(t *testing.T) {
		tests := []struct {
			name        string
			commitments []Commitment
			want        error
		}{
			{name: "none", want: ErrMissingCommitment},
			{name: "one missing", commitments: commitments[:2], want: ErrMissingCommitment},
			{name: "one zero", commitments: hole, want: ErrMissingCommitment},
			{name: "more than n", commitments: append(slices.Clone(commitments), commitments[0]), want: ErrMissingCommitment},
			{name: "not its own commitment", commitments: notOwn, want: ErrCommitmentMismatch},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if s, err := parties[0].PublicKeyShare(tt.commitments); !errors.Is(err, tt.want) || s != nil {
					t.Fatalf("PublicKeyShare: %v, want %v and no share", err, tt.want)
				}
			})
		}
	})
	if _, err := parties[0].PublicKey(commitments, nil); !errors.Is(err, ErrSetupIncomplete) {
		t.Fatalf("PublicKey before revealing: %v, want ErrSetupIncomplete", err)
	}
	shares := reveal(t, parties, commitments)
	if _, err := parties[0].PublicKeyShare(notOwn); !errors.Is(err, ErrCommitmentMismatch) {
		t.Fatalf("revealing again after other commitments: %v, want ErrCommitmentMismatch", err)
	}
	swapped := slices.Clone(commitments)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	if _, err := parties[0].PublicKeyShare(swapped); !errors.Is(err, ErrMismatch) {
		t.Fatalf("revealing again after other commitments: %v, want ErrMismatch", err)
	}
	t.Run("verify", func(t *testing.T) {
		tests := []struct {
			name        string
			commitments []Commitment
			shares      []*PublicKeyShare
			want        error
		}{
			{name: "a share missing its commitment", commitments: hole, shares: shares, want: ErrMissingCommitment},
			{name: "commitments of fewer parties", commitments: commitments[:2], shares: shares, want: ErrMissingCommitment},
			{name: "commitments swapped", commitments: swapped, shares: shares, want: ErrCommitmentMismatch},
			{name: "another setup's share", commitments: commitments, shares: []*PublicKeyShare{other.pkShare}, want: ErrCommitmentMismatch},
			{name: "nil share", commitments: commitments, shares: []*PublicKeyShare{nil}, want: ErrInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := VerifyShares(tt.commitments, tt.shares); !errors.Is(err, tt.want) {
					t.Fatalf("VerifyShares: %v, want %v", err, tt.want)
				}
				if _, err := parties[1].PublicKey(tt.commitments, tt.shares); err == nil {
					t.Fatal("PublicKey takes them")
				}
			})
		}
	})
	if err := VerifyShares(commitments, shares); err != nil {
		t.Fatalf("VerifyShares with the honest shares: %v", err)
	}
	if _, err := parties[1].PublicKey(hole, shares); !errors.Is(err, ErrMismatch) {
		t.Fatalf("PublicKey with commitments other than those revealed after: %v, want ErrMismatch", err)
	}
	if _, err := parties[1].PublicKey(commitments, shares); err != nil {
		t.Fatalf("PublicKey with the honest shares: %v", err)
	}
}

// TestPartyPublicKeyRefuses: a party takes only a key that has its own
// share in it, so an aggregator cannot hand the sites a key of its own.
func TestPartyPublicKeyRefuses(t *testing.T) {
	params := testParams(t)
	var parties []*Party
	var impostor []*PublicKeyShare
	for i := range 3 {
		p, err := NewParty(params, i, 3, 2, testSeed(1))
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		parties = append(parties, p)
		// The aggregator runs a setup of its own with the job's public
		// values: same seed, n and t, secrets it knows.
		q, err := NewParty(params, i, 3, 2, testSeed(1))
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		impostor = append(impostor, q.pkShare)
	}
	commitments := commitAll(parties)
	shares := reveal(t, parties, commitments)
	altered := *shares[0]
	altered.value = append([]uint64(nil), shares[0].value...)
	altered.value[0] = (altered.value[0] + 1) % Q
	tests := []struct {
		name   string
		shares []*PublicKeyShare
		want   error
	}{
		{name: "the aggregator's own key", shares: impostor, want: ErrMismatch},
		{name: "own share replaced", shares: []*PublicKeyShare{impostor[0], shares[1], shares[2]}, want: ErrMismatch},
		{name: "own share altered", shares: []*PublicKeyShare{&altered, shares[1], shares[2]}, want: ErrMismatch},
		{name: "own share missing", shares: shares[1:], want: ErrMismatch},
		{name: "another party's share missing", shares: shares[:2], want: ErrMissingShares},
		{name: "another party's share replaced", shares: []*PublicKeyShare{shares[0], impostor[1], impostor[2]}, want: ErrCommitmentMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parties[0].PublicKey(commitments, tt.shares); !errors.Is(err, tt.want) {
				t.Fatalf("PublicKey: %v, want %v", err, tt.want)
			}
			if parties[0].pk != nil {
				t.Fatal("party holds a key after refusing it")
			}
		})
	}
	if _, err := parties[0].PublicKey(commitments, shares); err != nil {
		t.Fatalf("PublicKey with the real shares: %v", err)
	}
}

func TestCombineRefuses(t *testing.T) {
	params := testParams(t)
	parties, pk := setup(t, params, 4, 3, testSeed(1))
	_, otherPK := setup(t, params, 4, 3, testSeed(2))
	rng := rand.New(rand.NewPCG(2, 2))
	ups, weights := updates(rng, 4, 100)
	sum, cts := encryptAll(t, params, pk, ups, weights)
	otherSum, _ := encryptAll(t, params, otherPK, ups, weights)
	active := []int{0, 1, 2}
	good := decryptionShares(t, parties, 1, cts, active)
	ofSite0 := rawDecryptionShares(t, parties, cts[0], active)
	otherSet := decryptionShares(t, parties, 1, cts, []int{1, 2, 3})
	tests := []struct {
		name   string
		pk     *PublicKey
		ct     *Ciphertext
		shares []*DecryptionShare
		want   error
	}{
		{name: "no shares", pk: pk, ct: sum, want: ErrTooFewShares},
		{name: "t-1 shares", pk: pk, ct: sum, shares: good[:2], want: ErrTooFewShares},
		{name: "more than t shares", pk: pk, ct: sum, shares: append(good[:3:3], otherSet[2]), want: ErrActiveSet},
		{name: "a party twice", pk: pk, ct: sum, shares: []*DecryptionShare{good[0], good[1], good[1]}, want: ErrDuplicate},
		{name: "a share of another ciphertext", pk: pk, ct: sum, shares: []*DecryptionShare{good[0], good[1], ofSite0[2]}, want: ErrMismatch},
		{name: "shares of two active sets", pk: pk, ct: sum, shares: []*DecryptionShare{good[0], good[1], otherSet[0]}, want: ErrActiveSet},
		{name: "ciphertext under another key", pk: pk, ct: otherSum, shares: good, want: ErrMismatch},
		{name: "another key", pk: otherPK, ct: sum, shares: good, want: ErrMismatch},
		{name: "nil share", pk: pk, ct: sum, shares: []*DecryptionShare{good[0], nil, good[2]}, want: ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Combine(params, tt.pk, tt.ct, tt.shares); !errors.Is(err, tt.want) {
				t.Fatalf("Combine: %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("a wrong share decrypts to garbage, refused", func(t *testing.T) {
		bad := *good[2]
		bad.coeffs = append([]uint64(nil), good[2].coeffs...)
		bad.coeffs[7] = (bad.coeffs[7] + Q/3) % Q
		if _, err := Combine(params, pk, sum, []*DecryptionShare{good[0], good[1], &bad}); !errors.Is(err, ErrImplausible) {
			t.Fatalf("Combine with a corrupted share: %v, want ErrImplausible", err)
		}
	})
	if _, err := Combine(params, pk, sum, good); err != nil {
		t.Fatalf("Combine after the refusals: %v", err)
	}
}
