//go:build unix

package trainer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// region is one shared memory file the host made and keeps mapped: the
// file in the host's private folder and its mapping, read and write.
type region struct {
	path string
	f    *os.File
	data []byte
}

// createRegion makes a new file of size bytes in dir (the host's private
// folder) and maps it shared, read and write.
func createRegion(dir, name string, size int64) (*region, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trainer: shared memory: %w", err)
	}
	r := &region{path: path, f: f}
	if err := f.Truncate(size); err != nil {
		r.close()
		return nil, fmt.Errorf("trainer: shared memory of %d bytes: %w", size, err)
	}
	if r.data, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		r.close()
		return nil, fmt.Errorf("trainer: map shared memory of %d bytes: %w", size, err)
	}
	return r, nil
}

// close unmaps the region and removes its file.
func (r *region) close() error {
	var errs []error
	if r.data != nil {
		errs = append(errs, unix.Munmap(r.data))
		r.data = nil
	}
	errs = append(errs, r.f.Close(), os.Remove(r.path))
	return errors.Join(errs...)
}

// mapping is a file the plugin side mapped for one call.
type mapping struct{ data []byte }

// mapFile maps the first size bytes of the file at path: read-only, or
// read and write. The file must be a regular file at least size bytes
// long, so that no access beyond it faults.
func mapFile(path string, size int64, writable bool) (*mapping, error) {
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
		return &mapping{}, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shared memory %q: map: %w", path, err)
	}
	return &mapping{data: data}, nil
}

// unmap releases the mapping.
func (m *mapping) unmap() error {
	if m == nil || m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	return err
}

// floats is b (whose length is a multiple of 4, at an address aligned to
// 4: a mapping's start plus a multiple of 4) as float32 values, no copy.
func floats(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
