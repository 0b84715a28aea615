//go:build sealfree

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestSealfreeBuildRunsOnlyBench: the build that sends models unencrypted
// (`go test -tags sealfree`, run by .ci/run) refuses
// every command but bench, saying why, and lets a server or site run only
// when a bench started it.
func TestSealfreeBuildRunsOnlyBench(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		bench string // HEARTH_SEALFREE_BENCH
		ok    bool
	}{
		{[]string{"poc"}, "", false},
		{[]string{"server", "--kit", "nowhere"}, "", false},
		{[]string{"site", "--kit", "nowhere"}, "", false},
		{[]string{"admin", "list"}, "1", false},
		{[]string{"poc"}, "1", false},
		{[]string{"site", "--kit", "nowhere"}, "1", true},
		{[]string{"bench", "--help"}, "", true},
	} {
		var out, errOut bytes.Buffer
		c := &cli{stdout: &out, stderr: &errOut, getenv: func(k string) string {
			if k == sealfreeBench {
				return tc.bench
			}
			return ""
		}}
		err := run(context.Background(), c, tc.args)
		refused := err != nil && strings.Contains(err.Error(), "built with -tags sealfree")
		if refused == tc.ok {
			t.Errorf("%v (%s=%q): %v; want refused %v", tc.args, sealfreeBench, tc.bench, err, !tc.ok)
		}
	}
}
