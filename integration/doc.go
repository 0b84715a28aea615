// Package integration holds Hearth's end-to-end tests: they build the
// hearth binary once and run a real hub and leaf sites as separate
// processes on loopback. Package integration/cluster is the harness (also
// used by `hearth poc`).
package integration
