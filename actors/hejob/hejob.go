// Package hejob wires threshold homomorphic encryption (actors/learning/he)
// into FedAvg jobs, for the server's coordinator and the sites alike: who
// the job's parties are and in which order, the setup's public seed, the
// decryption threshold, each site's aggregation weight, the statements one
// site signs for the others to check (the server relays them and must not
// be able to change them: commitments, public key shares, encrypted
// updates), and the bounds on what travels.
//
// The flow, one message at a time (schemas/hearth/v1/he.proto):
//
//  1. Once the sites have joined, the server sends each party HESetup: the
//     parties in name order, t, and their sealing keys (bound for the job,
//     with the certificates that check what the parties sign). Each site
//     checks them against the signed job, makes its he.Party from the
//     job's seed, and answers its signed commitment (HECommitted), which
//     carries its committed training samples too: every party computes
//     every party's weight from them, so that the server cannot make the
//     other sites' weights vanish and leave one site's update alone in a
//     sum.
//  2. HEKeyExchange hands each party all n signed commitments. Each site
//     checks the signatures, sends every other party its threshold share
//     sealed to that party's key (site to site, HEThresholdShare), and once
//     all were taken answers its signed public key share (HEShared).
//  3. HEKeys hands each party all n signed shares: each site checks them
//     against the commitments, makes the collective key and answers
//     HEReady with its id, which must be the same everywhere.
//  4. Each round a site encrypts weight*update under the key and first
//     sends only its signed commitment to it (the weight and the
//     ciphertext's SHA-256, TrainResult.encrypted). Once the round's
//     commitments are in, the server hands them to every contributor
//     (HEReveal), which reveals its ciphertext signed and bound to that
//     set (HERevealed): no site can make its ciphertext from another's
//     (the negation of one, to cancel it out of a sum), for it committed
//     before any was revealed, and it reveals again only for a subset of
//     the set it first revealed against (a site that did not reveal is
//     left out). The server checks signatures, weights and hashes, adds
//     the ciphertexts, and sends t parties HEDecrypt with the round's
//     commitments and revealed updates; each checks every signature and
//     hash, adds them up itself and answers its decryption share of that
//     sum only (HEDecryptionShare). The server combines the t shares and
//     divides by the contributors' weights: the new global model.
package hejob

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// The kinds of statement a site signs in an HE job.
const (
	KindCommitment       = "commitment"
	KindKeyShare         = "key_share"
	KindUpdateCommitment = "update_commitment"
	KindUpdate           = "update"
	KindDecryptionShare  = "decryption_share"
)

// Purpose is the signing purpose of HE statements (envelope.Signer.SignFor).
const Purpose = "hearth.he.v1"

// MinThreshold is the smallest decryption threshold: with t = 1 any one
// site could decrypt whatever it is handed.
const MinThreshold = 2

// Threshold is the decryption threshold for n parties: want (the job's
// he.threshold) when set, else a majority of the parties, n/2+1. It
// refuses a threshold below MinThreshold or above n, one that is no
// majority of the parties (two disjoint groups of t could each decrypt a
// different sum of one round, each site only one, and the difference of
// the two is a site's update), and more parties than he.MaxParties.
func Threshold(want, n int) (int, error) {
	t := want
	if t == 0 {
		t = n/2 + 1
	}
	switch {
	case n > he.MaxParties:
		return 0, fmt.Errorf("%d sites: homomorphic encryption is shared among at most %d", n, he.MaxParties)
	case t < MinThreshold:
		return 0, fmt.Errorf("decryption threshold %d: at least %d sites must decrypt together (with %d sites)", t, MinThreshold, n)
	case t > n:
		return 0, fmt.Errorf("decryption threshold %d: more than the %d sites taking part", t, n)
	case 2*t <= n:
		return 0, fmt.Errorf("decryption threshold %d: no majority of the %d sites taking part (two groups of %d could decrypt two sums of one round)", t, n, t)
	}
	return t, nil
}

// SaltSize is the size of a setup's salt (HESetup.salt).
const SaltSize = 16

// Seed is the setup's public seed: SHA-256 of the signed job's nonce, the
// setup's salt, the parties in order and t, so that every setup (another
// set of parties, a setup redone, a re-join) makes another common
// reference string and has its own id.
func Seed(nonce, salt []byte, parties []string, t int) [he.SeedSize]byte {
	h := sha256.New()
	h.Write([]byte("hearth.he.seed.v1\x00"))
	h.Write(nonce)
	h.Write(salt)
	for _, p := range parties {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(t)))
	var out [he.SeedSize]byte
	h.Sum(out[:0])
	return out
}

// CheckParties checks a setup's parties: in strictly increasing name
// order (so each site's index is the same everywhere), at least
// MinThreshold, at most he.MaxParties, and each allowed (in the signed
// job). It returns self's index.
func CheckParties(parties []string, self string, allowed func(string) bool) (int, error) {
	if len(parties) < MinThreshold || len(parties) > he.MaxParties {
		return 0, fmt.Errorf("%d parties: want %d to %d", len(parties), MinThreshold, he.MaxParties)
	}
	for i, p := range parties {
		if i > 0 && p <= parties[i-1] {
			return 0, fmt.Errorf("parties not in strictly increasing name order at %q", envelope.Clip(p, 64))
		}
		if !allowed(p) {
			return 0, fmt.Errorf("party %q is not one of the job's sites", envelope.Clip(p, 64))
		}
	}
	i := slices.Index(parties, self)
	if i < 0 {
		return 0, errors.New("this site is not one of the setup's parties")
	}
	return i, nil
}

// Weights are the parties' aggregation weights from their committed
// training samples, capped as FedAvg's are (aggregator.CappedWeights at
// maxShare), as fractions of their total: a site encrypts its update times
// its fraction, so that every value stays within he.MaxAbsValue.
func Weights(samples map[string]int64, maxShare float64) map[string]float64 {
	w := aggregator.CappedWeights(samples, maxShare)
	total := 0.0
	for _, p := range slices.Sorted(maps.Keys(w)) {
		total += w[p]
	}
	out := make(map[string]float64, len(w))
	for p, v := range w {
		out[p] = v / total
	}
	return out
}

// SameWeight says whether a weight a site claims is the one computed here
// (both from the same commitments; they may differ in the last bits).
func SameWeight(claimed, want float64) bool {
	return claimed > 0 && math.Abs(claimed-want) <= 1e-9*want
}

// maxSamples bounds a committed sample count (as the coordinator's).
const maxSamples = 1 << 50

// CommitmentPayload is a commitment statement's payload.
func CommitmentPayload(c he.Commitment, samples int64) []byte {
	return binary.BigEndian.AppendUint64(c[:len(c):len(c)], uint64(samples))
}

// ParseCommitment reads a commitment statement's payload.
func ParseCommitment(payload []byte) (he.Commitment, int64, error) {
	var c he.Commitment
	if len(payload) != len(c)+8 {
		return c, 0, fmt.Errorf("a commitment of %d bytes, want %d", len(payload), len(c)+8)
	}
	copy(c[:], payload)
	n := int64(binary.BigEndian.Uint64(payload[len(c):]))
	if n < 1 || n > maxSamples {
		return c, 0, fmt.Errorf("committed %d training samples: want 1..%d", n, int64(maxSamples))
	}
	return c, n, nil
}

// UpdateCommitmentPayload is an update commitment's payload: the weight,
// then the SHA-256 of the ciphertext's encoding.
func UpdateCommitmentPayload(weight float64, ct []byte) []byte {
	sum := sha256.Sum256(ct)
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sum)), math.Float64bits(weight)), sum[:]...)
}

// ParseUpdateCommitment reads an update commitment's payload: its weight
// (in (0, 1]) and its ciphertext's SHA-256.
func ParseUpdateCommitment(payload []byte) (float64, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(payload) != 8+len(sum) {
		return 0, sum, fmt.Errorf("an update commitment of %d bytes, want %d", len(payload), 8+len(sum))
	}
	w, err := parseWeight(payload)
	copy(sum[:], payload[8:])
	return w, sum, err
}

func parseWeight(payload []byte) (float64, error) {
	w := math.Float64frombits(binary.BigEndian.Uint64(payload))
	if !(w > 0 && w <= 1) {
		return 0, fmt.Errorf("an update of weight %g, want a fraction in (0, 1]", w)
	}
	return w, nil
}

// CommitmentsDigest is what a revealed update is bound to: the SHA-256 of
// the round's update commitments, in the order given (each site's name and
// payload).
func CommitmentsDigest(commitments []*hearthv1.HESigned) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range commitments {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(c.GetSite()))))
		h.Write([]byte(c.GetSite()))
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(c.GetPayload()))))
		h.Write(c.GetPayload())
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// UpdatePayload is a revealed update's payload: the weight, the digest of
// the commitments it is revealed against, then the ciphertext's encoding.
func UpdatePayload(weight float64, commitments [sha256.Size]byte, ct []byte) []byte {
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(commitments)+len(ct)), math.Float64bits(weight))
	return append(append(out, commitments[:]...), ct...)
}

// Update is a revealed update, parsed.
type Update struct {
	Weight      float64
	Commitments [sha256.Size]byte // the digest of the set it was revealed against
	Hash        [sha256.Size]byte // of the ciphertext's encoding, as its commitment has it
	Ciphertext  *he.Ciphertext
}

// ParseUpdate reads a revealed update's payload.
func ParseUpdate(payload []byte) (*Update, error) {
	if len(payload) < 8+sha256.Size {
		return nil, fmt.Errorf("an update of %d bytes", len(payload))
	}
	w, err := parseWeight(payload)
	if err != nil {
		return nil, err
	}
	u := &Update{Weight: w, Hash: sha256.Sum256(payload[8+sha256.Size:]), Ciphertext: new(he.Ciphertext)}
	copy(u.Commitments[:], payload[8:])
	if err := u.Ciphertext.UnmarshalBinary(payload[8+sha256.Size:]); err != nil {
		return nil, err
	}
	return u, nil
}

// CheckReveal checks a revealed update against the site's commitment
// (already verified, of the same round): the same weight and ciphertext,
// revealed against commitments (the digest of the set it belongs to).
func CheckReveal(u *Update, commitment *hearthv1.HESigned, commitments [sha256.Size]byte) error {
	w, sum, err := ParseUpdateCommitment(commitment.GetPayload())
	switch {
	case err != nil:
		return err
	case u.Weight != w:
		return fmt.Errorf("revealed at weight %g, committed at %g", u.Weight, w)
	case u.Hash != sum:
		return errors.New("revealed a ciphertext other than the one it committed to")
	case u.Commitments != commitments:
		return errors.New("revealed against another set of the round's commitments")
	}
	return nil
}

// MaxDecryptBytes bounds the ciphertexts of one round and their t
// decryption shares, which an HEDecrypt (and the next round's HEProof)
// carries to each site in one envelope: well below the bus's envelope
// bound (4 MiB less 64 KiB), for the signatures and the rest.
const MaxDecryptBytes = 3 << 20

// CheckModel says whether a model of values values can be aggregated under
// homomorphic encryption among parties sites with threshold t: its
// ciphertexts travel inline, all of a round's (and their decryption
// shares) in one message.
func CheckModel(values, parties, t int) error {
	if values < 1 || values > he.MaxValues {
		return fmt.Errorf("a model of %d values: homomorphic encryption takes 1..%d", values, he.MaxValues)
	}
	total := int64(parties)*int64(he.CiphertextSize(values)) + int64(t)*int64(he.DecryptionShareSize(values, t))
	if total > MaxDecryptBytes {
		return fmt.Errorf("a model of %d values encrypts to %d bytes a site, %d bytes a round for %d sites with their decryption shares: more than the %d one message carries (streamed ciphertexts are not built yet)",
			values, he.CiphertextSize(values), total, parties, MaxDecryptBytes)
	}
	return nil
}

// SameMean says whether a global model's values are the decrypted mean,
// exactly as the server makes it: each value the float32 of the decrypted
// float64 over the sum of the contributors' weights, in their order.
func SameMean(global []float32, sum []float64, weight float64) error {
	if len(global) != len(sum) {
		return fmt.Errorf("a global model of %d values for a sum of %d", len(global), len(sum))
	}
	for i, g := range global {
		if want := float32(sum[i] / weight); g != want {
			return fmt.Errorf("value %d of the global model is %g; the decrypted mean is %g", i, g, want)
		}
	}
	return nil
}

// Signer signs on a site's certificate key; *envelope.Signer is one.
type Signer interface {
	SignFor(purpose string, msg []byte) ([]byte, error)
	Identity() pki.Identity
}

func message(jobID, site, kind string, round int64, setup, payload []byte) []byte {
	sum := sha256.Sum256(payload)
	msg := make([]byte, 0, len(jobID)+len(site)+len(kind)+3+8+len(setup)+len(sum))
	msg = append(append(msg, jobID...), 0)
	msg = append(append(msg, site...), 0)
	msg = append(append(msg, kind...), 0)
	msg = binary.BigEndian.AppendUint64(msg, uint64(round))
	msg = append(msg, setup...)
	return append(msg, sum[:]...)
}

// Sign makes the signer's statement of kind for the job's setup (round 0
// for the setup's statements).
func Sign(s Signer, jobID, kind string, round int64, setup he.SetupID, payload []byte) (*hearthv1.HESigned, error) {
	site := s.Identity().Name
	sig, err := s.SignFor(Purpose, message(jobID, site, kind, round, setup[:], payload))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", kind, err)
	}
	return &hearthv1.HESigned{Site: site, Kind: kind, Round: round, Setup: setup[:], Payload: payload, Signature: sig}, nil
}

// Expect is what a statement must be: whose, which kind, for which round
// of which setup of which job.
type Expect struct {
	JobID string
	Site  string
	Kind  string
	Round int64
	Setup he.SetupID
}

// Verify checks a statement: it is what want says, and it is signed by
// want.Site's certificate (certDER, from its sealing-key binding), current
// under trust at now. The payload is the caller's to parse.
func Verify(st *hearthv1.HESigned, want Expect, certDER []byte, trust *pki.Trust, now time.Time) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s of %s: "+format, append([]any{want.Kind, want.Site}, a...)...)
	}
	switch {
	case st == nil:
		return fail("none")
	case st.Site != want.Site || st.Kind != want.Kind:
		return fail("a %q of %q instead", envelope.Clip(st.Kind, 32), envelope.Clip(st.Site, 64))
	case st.Round != want.Round:
		return fail("for round %d, not %d", st.Round, want.Round)
	case string(st.Setup) != string(want.Setup[:]):
		return fail("for another setup of the key")
	}
	if err := sealing.VerifySigned(certDER, st.Signature, Purpose, message(want.JobID, st.Site, st.Kind, st.Round, st.Setup, st.Payload), trust, want.Site, now); err != nil {
		return fail("%v", err)
	}
	return nil
}
