//go:build !unix

package plugins_test

import "testing"

// platformRefusals has no cases beyond the common ones here.
func platformRefusals(*testing.T, string) []refusal { return nil }
