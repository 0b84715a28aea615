//go:build !unix

package trainer

import "errors"

// errNoShm: trainer plugins need a Unix host (shared memory by mmap).
var errNoShm = errors.New("trainer: trainer plugins need a Unix host (shared memory)")

type region struct {
	path string
	data []byte
}

func createRegion(dir, name string, size int64) (*region, error) { return nil, errNoShm }

func (r *region) close() error { return nil }

type mapping struct{ data []byte }

func mapFile(path string, size int64, writable bool) (*mapping, error) { return nil, errNoShm }

func (m *mapping) unmap() error { return nil }

func floats(b []byte) []float32 { return nil }
