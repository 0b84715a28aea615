//go:build !unix

package auditor

import "os"

// lockFile does nothing where flock is missing: the caller must make sure
// that one Log at a time has a file open.
func lockFile(*os.File) error { return nil }
