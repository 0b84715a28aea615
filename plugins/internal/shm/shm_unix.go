//go:build unix

// Package shm is the shared memory that plugin kinds pass models in
// (plugins/filter, plugins/trainer): the host makes a file in a private
// folder and keeps it mapped (Region); the plugin maps the file for one
// call (Mapping). No model value crosses gRPC.
package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Region is one shared memory file the host made and keeps mapped: the
// file in the host's private folder and its mapping, read and write.
type Region struct {
	Path string
	Data []byte
	f    *os.File
}

// Create makes a new file of size bytes in dir (the host's private
// folder) and maps it shared, read and write.
func Create(dir, name string, size int64) (*Region, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shared memory: %w", err)
	}
	r := &Region{Path: path, f: f}
	if err := f.Truncate(size); err != nil {
		r.Close()
		return nil, fmt.Errorf("shared memory of %d bytes: %w", size, err)
	}
	if r.Data, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		r.Close()
		return nil, fmt.Errorf("map shared memory of %d bytes: %w", size, err)
	}
	return r, nil
}

// Close unmaps the region and removes its file.
func (r *Region) Close() error {
	var errs []error
	if r.Data != nil {
		errs = append(errs, unix.Munmap(r.Data))
		r.Data = nil
	}
	errs = append(errs, r.f.Close(), os.Remove(r.Path))
	return errors.Join(errs...)
}

// Mapping is a file the plugin side mapped for one call.
type Mapping struct{ Data []byte }

// Map maps the first size bytes of the file at path: read-only, or
// read and write. The file must be a regular file at least size bytes
// long, so that no access beyond it faults.
func Map(path string, size int64, writable bool) (*Mapping, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("shared memory path %q is not absolute", path)
	}
	flag, prot := os.O_RDONLY, unix.PROT_READ
	if writable {
		flag, prot = os.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
	}
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("shared memory: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shared memory: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() < size {
		return nil, fmt.Errorf("shared memory %q: want a regular file of at least %d bytes", path, size)
	}
	if size == 0 {
		return &Mapping{}, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shared memory %q: map: %w", path, err)
	}
	return &Mapping{Data: data}, nil
}

// Unmap releases the mapping.
func (m *Mapping) Unmap() error {
	if m == nil || m.Data == nil {
		return nil
	}
	err := unix.Munmap(m.Data)
	m.Data = nil
	return err
}

// Floats is b (whose length is a multiple of 4, at an address aligned to
// 4: a mapping's start plus a multiple of 4) as float32 values, no copy.
func Floats(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
