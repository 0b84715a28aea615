package kit

import "errors"

// ErrTampered is wrapped by every manifest failure: a kit file changed,
// missing or added since the root CA signed the kit, or a manifest whose
// signature does not verify. Test for it with errors.Is.
var ErrTampered = errors.New("startup kit failed verification")

// ErrRootChanged is wrapped by PinRoot's refusal: the kit's rootCA.pem is
// not the project root expected (given by the operator or recorded at the
// first start).
var ErrRootChanged = errors.New("the kit's root CA is not the pinned project root")

// ErrCRLRollback is wrapped by CheckCRLNumber's refusal: the kit's
// revocation list is older than one this participant installed before, or
// missing.
var ErrCRLRollback = errors.New("revocation list older than one seen before")

// TamperError is a manifest failure: which kit, which file, and why.
// Reason is one of "changed since provisioning", "missing",
// "not in the signed manifest", "is not a regular file" or
// "manifest signature does not verify against rootCA.pem".
type TamperError struct {
	Kit    string // the kit folder
	File   string // slash-separated path inside the kit, e.g. "local/authorization.json"
	Reason string
}

// Reasons a TamperError gives.
const (
	reasonChanged      = "changed since provisioning"
	reasonMissing      = "missing"
	reasonExtra        = "not in the signed manifest"
	reasonNotRegular   = "is not a regular file"
	reasonBadSignature = "manifest signature does not verify against " + RootFile
)

// Error says `startup kit DIR failed verification: FILE REASON`.
func (e *TamperError) Error() string {
	return "startup kit " + e.Kit + " failed verification: " + e.File + " " + e.Reason
}

// Unwrap returns ErrTampered.
func (e *TamperError) Unwrap() error { return ErrTampered }
