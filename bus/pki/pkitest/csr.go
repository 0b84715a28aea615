package pkitest

import (
	"bytes"
	"encoding/pem"
	"testing"
)

// AlterSignedCSR replaces from with to (of the same length) once in the
// DER of a PEM certificate request, leaving its signature as it was: a
// request changed after signing, which pki.ParseCSR must refuse.
func AlterSignedCSR(t testing.TB, csrPEM []byte, from, to string) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	if block == nil || len(from) != len(to) || bytes.Count(block.Bytes, []byte(from)) != 1 {
		t.Fatalf("cannot replace %q by %q once in the request", from, to)
	}
	block.Bytes = bytes.Replace(block.Bytes, []byte(from), []byte(to), 1)
	return pem.EncodeToMemory(block)
}
