package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// TensorShape is a tensor's name and shape: a model's layout without data.
type TensorShape struct {
	Name  string
	Shape []int
}

// LayoutBytes is the size in bytes of a model of layout (float32 values);
// a tensor whose shape does not multiply out counts nothing.
func LayoutBytes(layout []TensorShape) int64 {
	n := int64(0)
	for _, t := range layout {
		size, _ := ShapeSize(t.Shape)
		n += int64(size)
	}
	return 4 * n
}

// LayoutOf returns m's layout.
func LayoutOf(m *Model) []TensorShape {
	out := make([]TensorShape, len(m.Tensors))
	for i, t := range m.Tensors {
		out[i] = TensorShape{Name: t.Name, Shape: append([]int{}, t.Shape...)}
	}
	return out
}

// Flat is a model held as one contiguous float32 buffer, in the order of its
// layout: the form large models take in transit and in aggregation. The
// buffer lives outside the Go heap (an anonymous memory mapping, or a file
// mapping when it spills to disk), so a model of gigabytes neither counts
// towards the garbage collector's pacing nor doubles the heap's growth
// target; Close releases it. (NewHeapFlat's is on the heap: see there.) Its bytes are the tensors' float32 values,
// little-endian.
type Flat struct {
	Layout []TensorShape
	Data   []float32
	mem    []byte
	file   *os.File
	heap   bool // NewHeapFlat's: mem is on the Go heap
}

// ErrBigEndian refuses flat models on big-endian hosts, whose memory layout
// is not the wire's.
var ErrBigEndian = errors.New("flat models need a little-endian host")

// NewFlat allocates a zeroed flat model of the given layout. With spillDir
// set, the buffer is a mapping of a temporary file there, so the kernel can
// page it out instead of the process running out of memory.
func NewFlat(layout []TensorShape, spillDir string) (*Flat, error) {
	n, err := flatValues(layout)
	if err != nil {
		return nil, err
	}
	f := &Flat{Layout: layout}
	size := 4 * n
	if spillDir != "" {
		if f.file, err = os.CreateTemp(spillDir, "model-*.f32"); err != nil {
			return nil, fmt.Errorf("spill file: %w", err)
		}
		os.Remove(f.file.Name()) // unlinked: it goes away with the mapping
		if err = f.file.Truncate(int64(size)); err == nil {
			f.mem, err = syscall.Mmap(int(f.file.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		}
	} else {
		if f.mem, err = syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE); err == nil {
			adviseHugePages(f.mem)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("allocate %d bytes for a flat model: %w", size, err)
	}
	f.Data = unsafe.Slice((*float32)(unsafe.Pointer(&f.mem[0])), n)
	return f, nil
}

// NewHeapFlat allocates a zeroed flat model of the given layout on the Go
// heap instead of in a mapping: for one whose values are handed on as a
// Model (Flat.Model) and kept after the Flat is done with, for the garbage
// collector to free (OnHeap). Close then only forgets the buffer.
func NewHeapFlat(layout []TensorShape) (*Flat, error) {
	n, err := flatValues(layout)
	if err != nil {
		return nil, err
	}
	f := &Flat{Layout: layout, Data: make([]float32, n), heap: true}
	f.mem = unsafe.Slice((*byte)(unsafe.Pointer(&f.Data[0])), 4*n)
	return f, nil
}

// OnHeap reports whether f was made by NewHeapFlat: its values may outlive
// it, in the Model that Model returns.
func (f *Flat) OnHeap() bool { return f.heap }

// flatValues checks a flat model's layout and counts its values.
func flatValues(layout []TensorShape) (int, error) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return 0, ErrBigEndian
	}
	n := 0
	seen := map[string]bool{}
	for _, t := range layout {
		size, err := ShapeSize(t.Shape)
		if err != nil {
			return 0, fmt.Errorf("%w: tensor %q: %v", ErrInvalid, t.Name, err)
		}
		if t.Name == "" || seen[t.Name] {
			return 0, fmt.Errorf("%w: tensor name %q empty or repeated", ErrInvalid, t.Name)
		}
		seen[t.Name] = true
		if n += size; n > maxParams {
			return 0, fmt.Errorf("%w: more than %d parameters", ErrInvalid, maxParams)
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: a flat model needs at least one parameter", ErrInvalid)
	}
	return n, nil
}

// FlatCopy copies m into a new flat model.
func FlatCopy(m *Model, spillDir string) (*Flat, error) {
	f, err := NewFlat(LayoutOf(m), spillDir)
	if err != nil {
		return nil, err
	}
	f.CopyFrom(m)
	return f, nil
}

// CopyFrom copies m's values into f, tensor after tensor; m must have f's
// layout (as for a buffer taken from a Spare with m's layout).
func (f *Flat) CopyFrom(m *Model) {
	off := 0
	for _, t := range m.Tensors {
		off += copy(f.Data[off:], t.Data)
	}
}

// Bytes is the model's byte view (float32, little-endian); no copy.
func (f *Flat) Bytes() []byte { return f.mem }

// Size is the model's size in bytes.
func (f *Flat) Size() int64 { return int64(len(f.mem)) }

// ReadAt implements io.ReaderAt over Bytes, so a flat model can be streamed.
func (f *Flat) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(f.mem)) {
		return 0, fmt.Errorf("read at %d of a %d-byte model", off, len(f.mem))
	}
	n := copy(p, f.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Model is a view of f as a Model whose tensors share f's memory: no copy,
// valid until Close.
func (f *Flat) Model() *Model {
	m := &Model{Tensors: make([]Tensor, len(f.Layout))}
	off := 0
	for i, t := range f.Layout {
		n, _ := ShapeSize(t.Shape)
		m.Tensors[i] = Tensor{Name: t.Name, Shape: t.Shape, Data: f.Data[off : off+n : off+n]}
		off += n
	}
	return m
}

// Close releases the buffer; f must not be used afterwards.
func (f *Flat) Close() error {
	var err error
	if f.heap {
		f.mem, f.Data = nil, nil // the garbage collector's, with any Model of it
		return nil
	}
	if f.mem != nil {
		err = syscall.Munmap(f.mem)
		f.mem, f.Data = nil, nil
	}
	if f.file != nil {
		if cerr := f.file.Close(); err == nil {
			err = cerr
		}
		f.file = nil
	}
	return err
}
