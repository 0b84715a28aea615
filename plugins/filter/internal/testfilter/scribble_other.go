//go:build !unix

package testfilter

import "time"

// scribble needs a Unix host (mmap); plugins do too.
func scribble(string, time.Duration, string) {}
