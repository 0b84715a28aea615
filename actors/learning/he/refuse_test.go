package he

import (
	"errors"
	"math"
	"math/rand/v2"
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
	if _, err := ps[0].DecryptionShare(nil, []int{0, 1}); !errors.Is(err, ErrSetupIncomplete) {
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
		shares = append(shares, p.PublicKeyShare())
		o, err := NewParty(params, i, 3, 3, testSeed(1)) // same seed, other t
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		others = append(others, o.PublicKeyShare())
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

func TestDecryptionShareRefuses(t *testing.T) {
	params := testParams(t)
	parties, pk := setup(t, params, 4, 3, testSeed(1))
	_, otherPK := setup(t, params, 4, 3, testSeed(2))
	rng := rand.New(rand.NewPCG(1, 1))
	ups, weights := updates(rng, 4, 100)
	sum, _ := encryptAll(t, params, pk, ups, weights)
	otherSum, _ := encryptAll(t, params, otherPK, ups, weights)
	tests := []struct {
		name   string
		ct     *Ciphertext
		active []int
		want   error
	}{
		{name: "ciphertext under another key", ct: otherSum, active: []int{0, 1, 2}, want: ErrMismatch},
		{name: "active set smaller than t", ct: sum, active: []int{0, 1}, want: ErrActiveSet},
		{name: "active set larger than t", ct: sum, active: []int{0, 1, 2, 3}, want: ErrActiveSet},
		{name: "party not in the active set", ct: sum, active: []int{1, 2, 3}, want: ErrActiveSet},
		{name: "repeated index", ct: sum, active: []int{0, 0, 1}, want: ErrActiveSet},
		{name: "not increasing", ct: sum, active: []int{0, 2, 1}, want: ErrActiveSet},
		{name: "index out of range", ct: sum, active: []int{0, 1, 4}, want: ErrActiveSet},
		{name: "nil ciphertext", active: []int{0, 1, 2}, want: ErrInvalid},
		{name: "zero ciphertext", ct: &Ciphertext{}, active: []int{0, 1, 2}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parties[0].DecryptionShare(tt.ct, tt.active); !errors.Is(err, tt.want) {
				t.Fatalf("DecryptionShare: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestPartyPublicKeyRefuses: a party takes only a key that has its own
// share in it, so an aggregator cannot hand the sites a key of its own.
func TestPartyPublicKeyRefuses(t *testing.T) {
	params := testParams(t)
	var parties []*Party
	var shares, impostor []*PublicKeyShare
	for i := range 3 {
		p, err := NewParty(params, i, 3, 2, testSeed(1))
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		parties = append(parties, p)
		shares = append(shares, p.PublicKeyShare())
		// The aggregator runs a setup of its own with the job's public
		// values: same seed, n and t, secrets it knows.
		q, err := NewParty(params, i, 3, 2, testSeed(1))
		if err != nil {
			t.Fatalf("NewParty: %v", err)
		}
		impostor = append(impostor, q.PublicKeyShare())
	}
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parties[0].PublicKey(tt.shares); !errors.Is(err, tt.want) {
				t.Fatalf("PublicKey: %v, want %v", err, tt.want)
			}
			if parties[0].pk != nil {
				t.Fatal("party holds a key after refusing it")
			}
		})
	}
	if _, err := parties[0].PublicKey(shares); err != nil {
		t.Fatalf("PublicKey with the real shares: %v", err)
	}
	if _, err := parties[0].PublicKey([]*PublicKeyShare{shares[0], impostor[1], impostor[2]}); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a second, different key: %v, want ErrMismatch", err)
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
	good := decryptionShares(t, parties, sum, active)
	ofSite0 := decryptionShares(t, parties, cts[0], active)
	otherSet := decryptionShares(t, parties, sum, []int{1, 2, 3})
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
