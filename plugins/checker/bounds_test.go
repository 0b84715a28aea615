package checker_test

import (
	"testing"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/plugins/checker"
)

// TestBoundsAreTheJobs: the contract's bounds are actors/job's, so that
// every job a site accepts fits (the kind declares its own so that a
// checker binary does not link actors/job and all it imports).
func TestBoundsAreTheJobs(t *testing.T) {
	if checker.MaxManifestBytes != job.MaxManifestBytes || checker.MaxCodeBytes != job.MaxCodeBytes {
		t.Fatalf("checker bounds the manifest to %d and the code to %d bytes; actors/job to %d and %d",
			checker.MaxManifestBytes, checker.MaxCodeBytes, job.MaxManifestBytes, job.MaxCodeBytes)
	}
}
