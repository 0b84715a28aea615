//go:build !unix

package shm

import "errors"

// ErrUnsupported: shared memory by mmap needs a Unix host.
var ErrUnsupported = errors.New("plugins need a Unix host (shared memory)")

type Region struct {
	Path string
	Data []byte
}

func Create(dir, name string, size int64) (*Region, error) { return nil, ErrUnsupported }

func (r *Region) Close() error { return nil }

type Mapping struct{ Data []byte }

func Map(path string, size int64, writable bool) (*Mapping, error) { return nil, ErrUnsupported }

func (m *Mapping) Unmap() error { return nil }

func Floats(b []byte) []float32 { return nil }
