package auditor

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// Log is one participant's audit log file, open for appending. It is safe
// for concurrent use. Only one Log (in any process) may have a file open at
// a time: Open takes an exclusive lock on it where the platform has flock.
type Log struct {
	path        string
	headPath    string // HeadPath(path)
	hw          *headWriter
	participant string
	key         ed25519.PrivateKey
	now         func() time.Time
	f           *os.File

	mu   sync.Mutex // guards the fields below and the end of the file
	seq  uint64     // last record written
	head string     // its hash
	err  error      // once set (ErrClosed, ErrBroken), Append refuses

	syncMu  sync.Mutex // held while syncing; taken before mu, never after
	synced  uint64     // last record known to be on disk
	headSeq uint64     // last record the head file holds
	syncErr error      // a failed fsync: nothing after it is trusted
}

// Open opens the log at path for participant, creating it (mode 0600) if it
// does not exist, and continues it. It first verifies the whole existing
// log with key's public half and refuses to append to a log that fails
// (the error wraps a *VerifyError naming the first bad line), to one
// written by another participant, to one ending in a torn line (see
// Repair), and to a file readable by group or others. It then checks the
// log against its head file (HeadPath) and refuses a log shorter than the
// head or missing while the head remains (ErrTruncated), one whose record
// at the head's sequence number is not the head's (ErrTampered), a
// non-empty log without a head (ErrNoHead), and a head that is malformed
// or not signed by key. It refuses before creating or changing anything.
// now supplies record times; nil means time.Now.
func Open(path string, participant string, key ed25519.PrivateKey, now func() time.Time) (*Log, error) {
	if err := pki.ValidName(participant); err != nil {
		return nil, fmt.Errorf("audit log %s: participant: %w", path, err)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit log %s: signing key is %d bytes, want an Ed25519 private key (%d)", path, len(key), ed25519.PrivateKeySize)
	}
	if now == nil {
		now = time.Now
	}
	headPath := HeadPath(path)
	head, slot, hasHead, err := readHead(headPath, key.Public().(ed25519.PublicKey))
	switch {
	case err != nil:
		return nil, fmt.Errorf("audit log %s: refusing to append: %w: %w", path, ErrTampered, err)
	case hasHead && head.Participant != participant:
		return nil, fmt.Errorf("audit log %s: refusing to append: %w: head file %s is of %q, not %q", path, ErrTampered, headPath, head.Participant, participant)
	case hasHead && head.Seq > 0:
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("audit log %s is missing, but its head file %s says %d record(s) were written: the log was deleted: %w",
				path, headPath, head.Seq, ErrTruncated)
		}
	}
	f, created, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := &Log{path: path, headPath: headPath, participant: participant, key: key, now: now, f: f}
	if err := l.load(created, head, slot, hasHead); err != nil {
		f.Close()
		if l.hw != nil {
			l.hw.close()
		}
		return nil, err
	}
	return l, nil
}

// openFile opens path for reading and appending, creating it if needed.
func openFile(path string) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("audit log: %w", err)
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, false, fmt.Errorf("audit log: %w", err)
	}
	return f, false, nil
}

// load checks the file, locks it, verifies it, reads its head, checks it
// against the head file's (head, in slot, if hasHead) and opens the head
// file for writing.
func (l *Log) load(created bool, head Head, slot int, hasHead bool) error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit log %s is not a regular file", l.path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return fmt.Errorf("audit log %s is readable by group or others (mode %#o): run chmod 600 %s", l.path, perm, l.path)
	}
	if err := lockFile(l.f); err != nil {
		return fmt.Errorf("audit log %s is in use by another process or Log: %w", l.path, err)
	}
	var atHead string // hash of the record at head.Seq
	if !created {
		pub := l.key.Public().(ed25519.PublicKey)
		_, err = walk(l.f, pub, l.participant, func(r Record) {
			l.seq, l.head = r.Seq, r.Hash
			if r.Seq == head.Seq {
				atHead = r.Hash
			}
		})
		if err != nil {
			return fmt.Errorf("audit log %s: refusing to append: %w", l.path, err)
		}
	}
	switch {
	case hasHead && head.Seq > l.seq:
		return fmt.Errorf("audit log %s holds %d record(s), but its head file %s says %d were written: records %d-%d were cut from its end: %w",
			l.path, l.seq, l.headPath, head.Seq, l.seq+1, head.Seq, ErrTruncated)
	case hasHead && head.Seq > 0 && atHead != head.Hash:
		return fmt.Errorf("audit log %s: record %d is not the one its head file %s recorded (hash %.16s, head %.16s): the log was rewritten: %w",
			l.path, head.Seq, l.headPath, atHead, head.Hash, ErrTampered)
	case !hasHead && l.seq > 0:
		return fmt.Errorf("audit log %s holds %d record(s) but has no head file %s: it was deleted, perhaps to hide records cut from the end; "+
			"check the log against its peers (hearth audit verify KIT PEER_KIT...) before writing a new head (hearth audit adopt KIT): %w",
			l.path, l.seq, l.headPath, ErrNoHead)
	}
	l.synced = l.seq
	now := Head{Participant: l.participant, Seq: l.seq, Hash: l.head}
	if !hasHead { // a new log
		if l.hw, err = createHead(l.headPath, now, l.key); err != nil {
			return fmt.Errorf("audit log %s: %w", l.path, err)
		}
		if err := syncDir(filepath.Dir(l.path)); err != nil {
			return fmt.Errorf("audit log %s: %w", l.path, err)
		}
		l.headSeq = l.seq
		return nil
	}
	if l.hw, err = openHead(l.headPath, slot, l.key); err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	if head.Seq != l.seq {
		// The log is longer than its head: a crash came between the
		// log's fsync and the head's. Record the head now.
		if err := l.hw.write(now); err != nil {
			return fmt.Errorf("audit log %s: %w", l.path, err)
		}
	}
	l.headSeq = l.seq
	return nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be fsynced there; NTFS journals entries
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append adds e to the log and returns the record as stored, once it is on
// disk (fsync; concurrent Appends share fsyncs). Invalid UTF-8 in e is
// replaced by U+FFFD. It refuses an event without Action and one whose
// record would exceed MaxRecordBytes; after a failed write or fsync it
// returns an error wrapping ErrBroken, and it does so for every later call:
// the failed record may or may not be in the file. It never rewrites
// earlier lines.
func (l *Log) Append(e Event) (Record, error) {
	r, err := l.write(e)
	if err != nil {
		return Record{}, err
	}
	if err := l.syncTo(r.Seq); err != nil {
		return Record{}, err
	}
	return r, nil
}

// write builds, seals and writes the next record, without syncing.
func (l *Log) write(e Event) (Record, error) {
	e, err := clean(e, l.participant)
	if err != nil {
		return Record{}, fmt.Errorf("audit log %s: %w", l.path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return Record{}, l.err
	}
	seq := l.seq + 1
	id, err := newID(l.participant, seq, l.head)
	if err != nil {
		return Record{}, fmt.Errorf("audit log %s: %w", l.path, err)
	}
	now := l.now().UTC()
	if now.Year() < 1 || now.Year() > 9999 {
		return Record{}, fmt.Errorf("audit log %s: clock reads %v, outside years 1-9999 (RFC 3339)", l.path, now)
	}
	r := Record{Seq: seq, ID: id, Time: now, Participant: l.participant, Event: e, Prev: l.head}
	if err := seal(&r, l.key); err != nil {
		return Record{}, fmt.Errorf("audit log %s: %w", l.path, err)
	}
	b, err := encode(&r)
	if err != nil {
		return Record{}, fmt.Errorf("audit log %s: %w", l.path, err)
	}
	b = append(b, '\n')
	if len(b) > MaxRecordBytes {
		return Record{}, fmt.Errorf("audit log %s: event %s is %d bytes as a record, over the %d-byte limit", l.path, e.Action, len(b), MaxRecordBytes)
	}
	if _, err := l.f.Write(b); err != nil {
		l.err = fmt.Errorf("%w: %s: %v", ErrBroken, l.path, err)
		return Record{}, l.err
	}
	l.seq, l.head = seq, r.Hash
	return r, nil
}

// syncTo returns once record seq is on disk. Whoever holds syncMu syncs
// every line written so far, so waiters behind it usually find their
// record already covered.
func (l *Log) syncTo(seq uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.syncErr != nil {
		return l.syncErr
	}
	if l.synced >= seq {
		return nil
	}
	l.mu.Lock()
	written, hash := l.seq, l.head
	l.mu.Unlock()
	return l.syncLocked(written, hash)
}

// syncLocked fsyncs, records that written (whose hash is hash) is durable,
// and then writes the head file; syncMu is held.
func (l *Log) syncLocked(written uint64, hash string) error {
	fail := func(err error) error {
		l.syncErr = fmt.Errorf("%w: %v", ErrBroken, err)
		l.mu.Lock()
		if l.err == nil {
			l.err = l.syncErr
		}
		l.mu.Unlock()
		return l.syncErr
	}
	if err := l.f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %s: %w", l.path, err))
	}
	l.synced = written
	if written == l.headSeq {
		return nil
	}
	if err := l.hw.write(Head{Participant: l.participant, Seq: written, Hash: hash}); err != nil {
		return fail(err)
	}
	l.headSeq = written
	return nil
}

// Head returns the sequence number and hash of the newest record (0 and ""
// for an empty log), which the head file holds once the record is
// durable: a hash chain alone cannot show that records were cut from its
// end.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

// Close syncs and closes the log, releasing its lock. Append fails with
// ErrClosed afterwards; closing twice returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if errors.Is(l.err, ErrClosed) {
		l.mu.Unlock()
		return nil
	}
	broken := l.err
	l.err = ErrClosed
	written, hash := l.seq, l.head
	l.mu.Unlock()

	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	var err error
	if broken == nil && l.syncErr == nil {
		err = l.syncLocked(written, hash)
	}
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit log %s: %w", l.path, cerr)
	}
	if cerr := l.hw.close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit log %s: %w", l.path, cerr)
	}
	l.mu.Lock()
	l.err = ErrClosed
	l.mu.Unlock()
	return err
}
