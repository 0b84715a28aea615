package he

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Commitment binds a party to its PublicKeyShare before anyone reveals a
// share: the SHA-256 of the share's encoding (MarshalBinary), then the
// setup id (16 bytes), then the party's index (2 bytes, big-endian). The
// share is a high-entropy RLWE sample, so the commitment hides it; SHA-256
// binds it. Commit-then-reveal stops the rogue-key attack, where the last
// party to speak picks b_j = -s_j*a + e_j - sum_{i!=j} b_i so that the
// collective key becomes one whose secret is s_j alone: a party that has
// committed before seeing any other share can no longer choose its share
// as a function of theirs. The caller publishes each party's commitment
// signed by its site; it is public.
type Commitment [sha256.Size]byte

// String returns the commitment in hex.
func (c Commitment) String() string { return hex.EncodeToString(c[:]) }

// commit returns the commitment to s, which must be well formed.
func commit(s *PublicKeyShare) Commitment {
	b, _ := s.MarshalBinary()
	h := sha256.New()
	h.Write(b)
	setup := s.Setup()
	h.Write(setup[:])
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(s.from)))
	var c Commitment
	h.Sum(c[:0])
	return c
}

// checkCommitments validates a full set of commitments for n parties,
// indexed by party: exactly n, none missing (a zero Commitment).
func checkCommitments(commitments []Commitment, n int) error {
	if len(commitments) != n {
		return fmt.Errorf("%d commitments for %d parties: %w", len(commitments), n, ErrMissingCommitment)
	}
	for i, c := range commitments {
		if c == (Commitment{}) {
			return fmt.Errorf("party %d has no commitment: %w", i, ErrMissingCommitment)
		}
	}
	return nil
}

// VerifyShares checks each revealed public key share against its party's
// commitment. commitments is indexed by party (commitments[i] is party
// i's, a zero Commitment is a missing one) and must hold one for each of
// the setup's n parties. It refuses, naming the party, a share whose party
// has no commitment (ErrMissingCommitment) and a share that does not match
// its commitment (ErrCommitmentMismatch): a share chosen after its party
// saw the others. It does not check that every party's share is present;
// AggregatePublicKey does. Party.PublicKey calls it; an aggregator that
// aggregates the key for itself should call it too.
func VerifyShares(commitments []Commitment, shares []*PublicKeyShare) error {
	for _, s := range shares {
		if err := s.check(); err != nil {
			return fmt.Errorf("he: verify shares: %w", err)
		}
		if len(commitments) != s.n {
			return fmt.Errorf("he: verify shares: %d commitments, party %d's share is of a setup of %d parties: %w", len(commitments), s.from, s.n, ErrMissingCommitment)
		}
		if commitments[s.from] == (Commitment{}) {
			return fmt.Errorf("he: verify shares: party %d's share has no commitment: %w", s.from, ErrMissingCommitment)
		}
		if commit(s) != commitments[s.from] {
			return fmt.Errorf("he: verify shares: party %d's share does not match its commitment: %w", s.from, ErrCommitmentMismatch)
		}
	}
	return nil
}
