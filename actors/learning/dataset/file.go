package dataset

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// The set file format, all integers little-endian:
//
//	magic     8 bytes  "HEARTHDS"
//	version   uint16   1
//	name_len  uint16   at most 255
//	name      name_len bytes
//	classes   uint32   2..65536
//	features  uint32   1..1<<20
//	rows      uint32   1.., rows*features at most 1<<28
//	labels    rows x uint32, each below classes
//	x         rows*features x float32 (IEEE 754 bits), row-major, finite
//	checksum  32 bytes, SHA-256 of every byte above
//
// and nothing after. Read refuses any deviation with an error wrapping
// ErrInvalid, and allocates memory only as the data actually arrives, so
// a forged header cannot make it reserve more than the input holds.
const (
	fileMagic   = "HEARTHDS"
	fileVersion = 1
	maxNameLen  = 255
	maxClasses  = 1 << 16
	maxFeatures = 1 << 20
	maxValues   = 1 << 28
	// readChunk bounds each allocation Read makes ahead of the data.
	readChunk = 1 << 20
)

// Write stores s in the set file format described above. It refuses a
// malformed set (see Validate) and one beyond the format's limits.
func (s *Set) Write(w io.Writer) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("write set: %w", err)
	}
	if err := checkLimits(len(s.Name), s.Classes, s.Features, s.Rows()); err != nil {
		return fmt.Errorf("write set: %w", err)
	}
	h := sha256.New()
	bw := bufio.NewWriter(w)
	out := io.MultiWriter(bw, h)
	var buf []byte
	buf = append(buf, fileMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, fileVersion)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(s.Name)))
	buf = append(buf, s.Name...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(s.Classes))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(s.Features))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(s.Rows()))
	for _, y := range s.Y {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(y))
	}
	if _, err := out.Write(buf); err != nil {
		return fmt.Errorf("write set: %w", err)
	}
	buf = buf[:0]
	for i, v := range s.X {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) >= readChunk || i == len(s.X)-1 {
			if _, err := out.Write(buf); err != nil {
				return fmt.Errorf("write set: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write set: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write set: %w", err)
	}
	return nil
}

// checkLimits refuses header values outside the file format's bounds.
func checkLimits(nameLen, classes, features, rows int) error {
	switch {
	case nameLen > maxNameLen:
		return fmt.Errorf("%w: name of %d bytes, at most %d", ErrInvalid, nameLen, maxNameLen)
	case classes < 2 || classes > maxClasses:
		return fmt.Errorf("%w: %d classes, want 2..%d", ErrInvalid, classes, maxClasses)
	case features < 1 || features > maxFeatures:
		return fmt.Errorf("%w: %d features, want 1..%d", ErrInvalid, features, maxFeatures)
	case rows < 1 || rows > maxValues/features:
		return fmt.Errorf("%w: %d rows of %d features, want 1..%d values", ErrInvalid, rows, features, maxValues)
	}
	return nil
}

// Read parses one set file written by Write. It is strict: a wrong magic or
// version, a header beyond the limits, a short input, a checksum that does
// not match, a label out of range, a NaN or infinite value, or any byte
// after the checksum is an error wrapping ErrInvalid (or the reader's own
// error). It never panics on any input.
func Read(r io.Reader) (*Set, error) {
	s, err := readSet(r)
	if err != nil {
		return nil, fmt.Errorf("read set: %w", err)
	}
	return s, nil
}

func readSet(r io.Reader) (*Set, error) {
	br := bufio.NewReader(r)
	h := sha256.New()
	in := io.TeeReader(br, h)

	head := make([]byte, len(fileMagic)+4)
	if err := readFull(in, head, "header"); err != nil {
		return nil, err
	}
	if string(head[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("%w: not a set file (bad magic)", ErrInvalid)
	}
	if v := binary.LittleEndian.Uint16(head[len(fileMagic):]); v != fileVersion {
		return nil, fmt.Errorf("%w: set file version %d, want %d", ErrInvalid, v, fileVersion)
	}
	nameLen := int(binary.LittleEndian.Uint16(head[len(fileMagic)+2:]))
	if nameLen > maxNameLen {
		return nil, fmt.Errorf("%w: name of %d bytes, at most %d", ErrInvalid, nameLen, maxNameLen)
	}
	rest := make([]byte, nameLen+12)
	if err := readFull(in, rest, "header"); err != nil {
		return nil, err
	}
	s := &Set{Name: string(rest[:nameLen])}
	dims := rest[nameLen:]
	classes := binary.LittleEndian.Uint32(dims)
	features := binary.LittleEndian.Uint32(dims[4:])
	rows := binary.LittleEndian.Uint32(dims[8:])
	if classes > maxClasses || features > maxFeatures || rows > maxValues {
		return nil, fmt.Errorf("%w: header claims %d classes, %d features, %d rows", ErrInvalid, classes, features, rows)
	}
	s.Classes, s.Features = int(classes), int(features)
	if err := checkLimits(nameLen, s.Classes, s.Features, int(rows)); err != nil {
		return nil, err
	}

	labels, err := readChunked(in, 4*int(rows), "labels")
	if err != nil {
		return nil, err
	}
	values, err := readChunked(in, 4*int(rows)*s.Features, "features")
	if err != nil {
		return nil, err
	}
	sum := make([]byte, sha256.Size)
	if err := readFull(br, sum, "checksum"); err != nil {
		return nil, err
	}
	if !bytes.Equal(sum, h.Sum(nil)) {
		return nil, fmt.Errorf("%w: checksum mismatch (file corrupted)", ErrInvalid)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: data after the checksum (wrong size)", ErrInvalid)
	}

	s.Y = make([]int, rows)
	for i := range s.Y {
		s.Y[i] = int(binary.LittleEndian.Uint32(labels[4*i:]))
	}
	s.X = make([]float32, len(values)/4)
	for i := range s.X {
		s.X[i] = math.Float32frombits(binary.LittleEndian.Uint32(values[4*i:]))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// readFull fills buf, reporting a short input as a truncated file.
func readFull(r io.Reader, buf []byte, what string) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated in the %s", ErrInvalid, what)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// readChunked reads exactly n bytes, growing its buffer a chunk at a time so
// that a short input fails before much memory is reserved.
func readChunked(r io.Reader, n int, what string) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		k := min(n-len(buf), readChunk)
		buf = append(buf, make([]byte, k)...)
		if err := readFull(r, buf[len(buf)-k:], what); err != nil {
			return nil, err
		}
	}
	return buf, nil
}
