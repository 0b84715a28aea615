package model

import (
	"slices"
	"sync"
)

// Spare keeps one flat model buffer between uses, so that a job of many
// rounds allocates its large buffers once rather than every round. Fresh
// memory is expensive: the kernel faults and zeroes every page on first
// touch, and on a virtual machine that hands freed memory back to its host
// (virtio-balloon free page reporting) the host faults it in again too, at
// about 2 s of CPU per GiB on the machines Hearth is benchmarked on.
type Spare struct {
	mu     sync.Mutex
	kept   *Flat
	closed bool
}

// Take returns the kept buffer when it has this layout and the same
// placement (in memory, or spilled when spillDir is set), else a new
// buffer as NewFlat makes it. A kept buffer holds what its last user left
// in it: overwrite or clear it.
func (s *Spare) Take(layout []TensorShape, spillDir string) (*Flat, error) {
	s.mu.Lock()
	f := s.kept
	s.kept = nil
	s.mu.Unlock()
	if f != nil {
		if (f.file != nil) == (spillDir != "") && slices.EqualFunc(f.Layout, layout, sameShape) {
			return f, nil
		}
		f.Close()
	}
	return NewFlat(layout, spillDir)
}

// Put keeps f for the next Take, releasing the buffer kept before; once
// the Spare is closed it releases f instead. f must not be used after.
func (s *Spare) Put(f *Flat) {
	if f == nil {
		return
	}
	s.mu.Lock()
	old := s.kept
	if s.closed {
		old = f
	} else {
		s.kept = f
	}
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// Close releases the kept buffer; buffers Put later are released at once.
func (s *Spare) Close() {
	s.mu.Lock()
	f := s.kept
	s.kept, s.closed = nil, true
	s.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

func sameShape(a, b TensorShape) bool { return a.Name == b.Name && slices.Equal(a.Shape, b.Shape) }
