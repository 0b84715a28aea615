package participant

import (
	"errors"
	"fmt"
	"testing"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestFailureOfNamesTheReason: a model that could not be received is
// answered with the code of its reason, however deeply wrapped, and with
// internal for any other error.
func TestFailureOfNamesTheReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want hearthv1.FailureCode
	}{
		{"no streams", fmt.Errorf("global model: %w: here", errNoStreams), hearthv1.FailureCode_FAILURE_CODE_NO_STREAMS},
		{"bad model", fmt.Errorf("final model: %w", fmt.Errorf("%w: layout", errBadModel)), hearthv1.FailureCode_FAILURE_CODE_BAD_MODEL},
		{"no memory", fmt.Errorf("%w: mmap", errNoMemory), hearthv1.FailureCode_FAILURE_CODE_NO_MEMORY},
		{"stream", fmt.Errorf("%w: stalled", errStream), hearthv1.FailureCode_FAILURE_CODE_STREAM_FAILED},
		{"anything else", errors.New("disk on fire"), hearthv1.FailureCode_FAILURE_CODE_INTERNAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := failureOf(tc.err)
			if f.Kind != tc.want || f.Message != tc.err.Error() {
				t.Fatalf("failureOf(%v) = %v %q, want %v and the error's text", tc.err, f.Kind, f.Message, tc.want)
			}
		})
	}
}
