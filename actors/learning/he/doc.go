// Package he is threshold homomorphic encryption of model updates: the
// job's sites encrypt their weighted updates under a key whose secret no one
// holds, the aggregator adds the ciphertexts with no key at all, and the sum
// is decrypted only when at least t of the n sites contribute decryption
// shares. No single site can decrypt another's update, and neither can the
// aggregator. It is built on Lattigo v6: CKKS (approximate arithmetic on real
// values) and its multiparty package (Mouchet et al., "Multiparty
// homomorphic encryption from ring-learning-with-errors", PETS 2021, and "An
// efficient threshold access-structure for RLWE-based multiparty
// homomorphic encryption", 2022).
//
// The package is the protocol's steps as plain functions and types, each
// with a bounded wire encoding (MarshalBinary, UnmarshalBinary); who sends
// what over which subject is the job's business. Parties are numbered 0 to
// n-1 within a job.
//
// # Protocol
//
// Setup, at job start, given the job's public 32-byte seed, n and t:
//
//  1. Each site i calls NewParty(params, i, n, t, seed). It draws a
//     ternary secret s_i, which never leaves it and which it forgets as soon
//     as the two next values are made.
//  2. Collective public key (CKG), commit then reveal: the common
//     reference polynomial a is derived from the seed, so every site has
//     the same one. Site i's share is b_i = -s_i*a + e_i (an RLWE sample,
//     public). First each site publishes its Commitment (Party.Commitment:
//     SHA-256 of the share's encoding, the setup id and i), signed. Only
//     once it holds all n commitments does a site reveal its share
//     (Party.PublicKeyShare(commitments) refuses earlier) to the
//     aggregator. AggregatePublicKey sums all n into the collective key
//     pk = (sum b_i, a), whose secret is s = sum s_i: a value no party
//     holds. Each site checks the key itself from the n shares
//     (Party.PublicKey(commitments, shares): its own share must be in it,
//     and every share must match its commitment, VerifyShares) and
//     encrypts and decrypts under no other key. Without the commitments, a
//     site that saw the others' shares first could send
//     b_j = -s_j*a + e_j - sum_{i!=j} b_i and make a key only it can
//     decrypt (the rogue-key attack); committed before any share is out,
//     it can no longer choose its share as a function of the others'.
//  3. Threshold setup (Shamir): site i holds a random polynomial of degree
//     t-1 whose constant term is s_i and sends, point to point, its value at
//     site j's point to each site j (ThresholdShares: n-1 per-recipient
//     secrets that must travel sealed to their recipient). Site j sums the n
//     values it holds (AddThresholdShare) into its share of s. Any t shares
//     determine s; t-1 reveal nothing.
//
// Each round:
//
//  4. Each site encrypts its weighted update w_i*x_i (Encryptor.Encrypt)
//     under pk and sends the ciphertext to the aggregator.
//  5. The aggregator sums the ciphertexts (Sum, or Ciphertext.Add as they
//     arrive) with no key.
//  6. Threshold decryption: the aggregator picks an active set of exactly t
//     online sites and asks each for its DecryptionShare of round r,
//     handing it the round's per-site ciphertexts (each signed by its
//     site), keyed by site. The party refuses fewer than MinContributors
//     distinct sites (t by default), a ciphertext that is already a sum,
//     and a round it has already decrypted another sum for; it adds the
//     ciphertexts up itself (Sum) and decrypts only that sum, never a
//     ciphertext handed to it. It turns its Shamir share into an additive
//     share of s for the active set (Lagrange coefficients) and returns
//     c1*s'_i + e_i for the sum, with flooding noise
//     e_i of standard deviation FloodSigma (the collective key switch to
//     the zero key, "CKS", of the multiparty package). Combine adds the t
//     shares to c0 and decodes the plaintext sum. Up to n-t sites may be
//     offline. Combine refuses fewer than t shares, and a result outside
//     the range an honest sum can have (what t-1 shares summed by hand, or
//     a wrong share, give).
//
// What the caller must add: the Commitments and PublicKeyShares signed by
// their sites, the same set passed to every site (sites given different
// sets compute different keys, and ciphertexts under different keys do not
// add up); the ThresholdShares sealed and signed end to end; each site's
// ciphertext signed by its site for its round, and the signatures checked
// before the ciphertexts reach DecryptionShare, with the RoundID bound to
// what was signed: the party can count distinct sites and recompute their
// sum, but only the signatures tell it that the ciphertexts are the sites'
// (an aggregator that could make up contributions could make them cancel
// out). Whoever gathers t decryption shares of a ciphertext learns its
// plaintext, which is why a party decrypts only sums it computed, one per
// round. The protocol assumes honest-but-curious parties beyond that: a
// site that sends a wrong decryption share is caught only if the result
// becomes implausible.
//
// # Parameters
//
// One set, ParamsV1 (see Params): ring degree N = 2^12, one 60-bit prime
// modulus Q (a single level: sums need no multiplication, so no rescaling
// and no evaluation keys), scale 2^45, uniform ternary secrets, error sigma
// 3.2, flooding sigma 2^20. It is 128-bit secure (indeed 192-bit) by the
// HomomorphicEncryption.org standard's tables. Values encrypted must be
// within +-MaxAbsValue (10); sums of up to MaxSummands (64) updates,
// decrypted by up to MaxParties (64) parties, are within 1e-4 of the exact
// sum. A ciphertext is 30 bytes per value: 7.5 times the float32 update.
//
// The flooding noise must be sized against the CKKS scale, not copied from
// BGV examples: its contribution to each decrypted value is about
// sqrt(t)*FloodSigma*sqrt(N/2)/2^LogScale, so sigma 2^30 at this scale would
// give errors near 1e-2.
package he
