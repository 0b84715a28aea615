package he

import "errors"

// Reasons a step of the protocol refuses. Every error this package returns
// wraps one of them (errors.Is tells them apart); the list only grows.
var (
	// ErrMalformed: wire bytes that do not decode (wrong magic, version or
	// kind, a field out of range, a coefficient not below Q, a length that
	// does not match the header, trailing bytes).
	ErrMalformed = errors.New("malformed encoding")
	// ErrTooLarge: a length beyond this package's limits (MaxValues,
	// MaxParties), refused before anything is allocated for it.
	ErrTooLarge = errors.New("beyond the size limit")
	// ErrParams: an unknown parameter set, or objects of different sets.
	ErrParams = errors.New("parameter set mismatch")
	// ErrInvalid: an argument out of its domain (party index, n, t, seed).
	ErrInvalid = errors.New("invalid argument")
	// ErrMismatch: objects of different setups, keys, ciphertexts or
	// lengths mixed together.
	ErrMismatch = errors.New("objects do not belong together")
	// ErrValueOutOfRange: a value to encrypt that is not finite or whose
	// magnitude (times the weight) exceeds MaxAbsValue.
	ErrValueOutOfRange = errors.New("value outside the encryptable range")
	// ErrTooManySummands: a sum of more than MaxSummands ciphertexts, whose
	// decryption would no longer be guaranteed to be accurate.
	ErrTooManySummands = errors.New("too many summands")
	// ErrWrongRecipient: a threshold setup share addressed to another party.
	ErrWrongRecipient = errors.New("addressed to another party")
	// ErrDuplicate: a share received twice from the same party.
	ErrDuplicate = errors.New("duplicate share")
	// ErrMissingShares: key generation without every party's share.
	ErrMissingShares = errors.New("missing shares")
	// ErrSetupIncomplete: a party asked to decrypt before it has received
	// the threshold setup share of every other party.
	ErrSetupIncomplete = errors.New("threshold setup incomplete")
	// ErrActiveSet: an active set that is not t distinct, sorted party
	// indices, or that does not include the party asked to decrypt.
	ErrActiveSet = errors.New("invalid active set")
	// ErrTooFewShares: fewer than t decryption shares to combine.
	ErrTooFewShares = errors.New("fewer decryption shares than the threshold")
	// ErrImplausible: the combined decryption gives values outside the range
	// any honest sum can have (wrong shares, or shares of fewer than t
	// parties summed by hand): the result is garbage and is not returned.
	ErrImplausible = errors.New("decryption does not verify")
	// ErrMissingCommitment: a public key share revealed, or asked for,
	// without every party's commitment in (see Commitment).
	ErrMissingCommitment = errors.New("missing commitment")
	// ErrCommitmentMismatch: a public key share that does not match its
	// party's commitment (a share chosen after its party saw the others').
	ErrCommitmentMismatch = errors.New("share does not match its commitment")
	// ErrTooFewContributors: a decryption asked for a sum of fewer distinct
	// sites' ciphertexts than the party's minimum.
	ErrTooFewContributors = errors.New("too few contributing sites")
	// ErrRoundDecrypted: a decryption asked for a round the party has
	// already decrypted a different sum for.
	ErrRoundDecrypted = errors.New("round already decrypted for another sum")
)
