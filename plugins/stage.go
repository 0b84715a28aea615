package plugins

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// staged is a verified private copy of a pinned binary: the only file a
// Process ever executes.
type staged struct {
	dir string // the private folder (0700), removed by remove
	bin string // the copy (0500) inside it
}

// stage checks the pinned binary and copies it into a private folder
// under workDir, hashing the bytes as they are written; it returns the
// copy only when their hash is the pinned one. The checks, in order: the
// path names a regular file (symbolic links are followed: the hash pins
// the content, wherever it lies) that is executable by someone and no
// larger than maxSize; the file opened is the file checked; its bytes
// hash to the pin. The copy lies in a folder that only this user can
// enter, so nothing can change it between this check and its execution.
func stage(kind string, pin Pin, maxSize int64, workDir string) (*staged, error) {
	fail := func(reason, cause error, detail string) error {
		return &Error{Kind: kind, Path: pin.Path, Reason: reason, Cause: cause, Detail: detail}
	}
	// Stat before opening: opening a FIFO for reading would block.
	fi, err := os.Stat(pin.Path)
	if err != nil {
		return nil, fail(ErrUnreadable, err, "")
	}
	if err := checkMode(fi, maxSize); err != nil {
		return nil, fail(err, nil, describe(fi))
	}
	f, err := openNoBlock(pin.Path)
	if err != nil {
		return nil, fail(ErrUnreadable, err, "")
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, fail(ErrUnreadable, err, "")
	}
	if !os.SameFile(fi, opened) {
		return nil, fail(ErrUnreadable, nil, "the file changed while it was opened")
	}
	if err := checkMode(opened, maxSize); err != nil {
		return nil, fail(err, nil, describe(opened))
	}

	if err := checkWorkDir(workDir); err != nil {
		return nil, fail(ErrWorkDir, err, "")
	}
	dir, err := os.MkdirTemp(workDir, "hearth-plugin-"+kind+"-")
	if err != nil {
		return nil, fail(ErrWorkDir, err, "")
	}
	s := &staged{dir: dir, bin: filepath.Join(dir, filepath.Base(pin.Path))}
	sum, n, err := copyHashed(s.bin, f, maxSize)
	if err == nil && n > maxSize {
		err = fail(ErrTooLarge, nil, fmt.Sprintf("more than %d bytes", maxSize))
	}
	if err == nil && subtle.ConstantTimeCompare(sum, pin.SHA256[:]) != 1 {
		err = fail(ErrChecksum, nil, "found "+hex.EncodeToString(sum))
	}
	if err == nil {
		err = os.Chmod(s.bin, 0o500)
	}
	if err != nil {
		s.remove()
		var pe *Error
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fail(ErrUnreadable, fmt.Errorf("private copy: %w", err), "")
	}
	return s, nil
}

// checkMode refuses what is not a regular, executable file within the
// size bound.
func checkMode(fi os.FileInfo, maxSize int64) error {
	switch {
	case !fi.Mode().IsRegular():
		return ErrNotRegular
	case fi.Mode().Perm()&0o111 == 0:
		return ErrNotExecutable
	case fi.Size() > maxSize:
		return ErrTooLarge
	}
	return nil
}

// describe is a file's mode and size, for a refusal's detail.
func describe(fi os.FileInfo) string {
	return fmt.Sprintf("mode %v, %d bytes", fi.Mode(), fi.Size())
}

// copyHashed writes at most maxSize+1 bytes of r to a new file at path
// and returns their SHA-256 and count; a count above maxSize means r was
// longer than the bound.
func copyHashed(path string, r io.Reader, maxSize int64) ([]byte, int64, error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return nil, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, maxSize+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, n, err
	}
	return h.Sum(nil), n, nil
}

// remove deletes the private folder and the copy in it.
func (s *staged) remove() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("plugins: remove private copy: %w", err)
	}
	return nil
}
