package auditor

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Verify reads a whole log and checks, line by line, that each line is a
// record in the canonical encoding, written by the same participant as the
// first, with the next sequence number and a matching event id, linked to
// the previous record's hash, with an event id whose hex part is the first
// 16 hex digits of that hash (record 1 excepted), with a hash matching its
// content and a
// signature that verifies with pub. It returns the records; on failure it
// returns those before the first bad line and a *VerifyError naming that
// line, wrapping ErrTampered, or ErrTornTail when the only problem is a
// final line without its newline. I/O errors are returned as they are.
func Verify(r io.Reader, pub ed25519.PublicKey) ([]Record, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit log: public key is %d bytes, want an Ed25519 key (%d)", len(pub), ed25519.PublicKeySize)
	}
	var recs []Record
	_, err := walk(r, pub, "", func(rec Record) { recs = append(recs, rec) })
	return recs, err
}

// walk verifies a log, calling visit with each good record in order. If
// participant is "", the first record sets it. It returns the byte offset
// just after the last good line.
func walk(rd io.Reader, pub ed25519.PublicKey, participant string, visit func(Record)) (int64, error) {
	br := bufio.NewReaderSize(rd, 64<<10)
	var (
		end  int64
		prev string // hash of the previous record
		n    int    // line number
	)
	tampered := func(kind Problem, format string, args ...any) error {
		return &VerifyError{Line: n, Problem: kind, Reason: fmt.Sprintf(format, args...), Err: ErrTampered}
	}
	for {
		b, complete, err := readLine(br)
		if err == io.EOF {
			return end, nil
		}
		n++
		switch {
		case errors.Is(err, errTooLong):
			return end, tampered(ProblemChanged, "longer than %d bytes", MaxRecordBytes)
		case err != nil:
			return end, fmt.Errorf("audit log line %d: %w", n, err)
		case !complete:
			return end, &VerifyError{Line: n, Problem: ProblemTorn, Err: ErrTornTail, Reason: fmt.Sprintf(
				"final line is torn (%d bytes without a newline), as an interrupted write leaves it; see Repair", len(b))}
		}
		r, reason := decode(b[:len(b)-1])
		if reason != "" {
			return end, tampered(ProblemChanged, "%s", reason)
		}
		if participant == "" {
			participant = r.Participant
		}
		want := uint64(n)
		switch {
		case r.Participant != participant && n == 1:
			return end, tampered(ProblemForeign, "log written by %q, not %q", r.Participant, participant)
		case r.Participant != participant:
			return end, tampered(ProblemChanged, "record written by %q in a log of %q", r.Participant, participant)
		case r.Seq > want:
			if next, ok := peekSeq(br); ok && next < r.Seq {
				return end, tampered(ProblemReordered, "records out of order: seq %d where %d was expected, followed by seq %d", r.Seq, want, next)
			}
			return end, tampered(ProblemRemoved, "seq %d where %d was expected: %d record(s) missing before this line", r.Seq, want, r.Seq-want)
		case r.Seq < want:
			return end, tampered(ProblemReordered, "seq %d where %d was expected: a record repeated or moved back", r.Seq, want)
		case r.Action == "":
			return end, tampered(ProblemChanged, "record has no action")
		}
		if p, s, err := ParseID(r.ID); err != nil || p != r.Participant || s != r.Seq {
			return end, tampered(ProblemChanged, "event id %q does not name participant %q and seq %d", r.ID, r.Participant, r.Seq)
		}
		if r.Prev != prev {
			return end, tampered(ProblemChanged, "prev does not match the hash of the record before it (chain broken)")
		}
		if !idCommits(r.ID, r.Prev) {
			return end, tampered(ProblemChanged, "event id %q does not commit to its prev hash (want hex %.16s)", r.ID, r.Prev)
		}
		if reason, badSig := check(&r, pub); badSig && n == 1 {
			return end, tampered(ProblemForeign, "signature does not verify with the given public key, and no line before it did: the log was signed by another key")
		} else if badSig {
			return end, tampered(ProblemChanged, "signature does not verify with the public key that verified lines 1-%d: a forged record", n-1)
		} else if reason != "" {
			return end, tampered(ProblemChanged, "%s", reason)
		}
		visit(r)
		prev = r.Hash
		end += int64(len(b))
	}
}

// errTooLong is a line longer than MaxRecordBytes.
var errTooLong = errors.New("line too long")

// readLine reads one line with its newline. complete is false for a final
// line without one; io.EOF means no more data at all.
func readLine(br *bufio.Reader) (b []byte, complete bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if len(b)+len(frag) > MaxRecordBytes {
			return nil, false, errTooLong
		}
		b = append(b, frag...)
		switch {
		case err == nil:
			return b, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(b) > 0:
			return b, false, nil
		default:
			return nil, false, err
		}
	}
}

// peekSeq reads the next line's sequence number, to tell a gap from a
// reordering. It consumes the line; only use it when stopping.
func peekSeq(br *bufio.Reader) (uint64, bool) {
	b, _, err := readLine(br)
	if err != nil {
		return 0, false
	}
	var l struct {
		Seq uint64 `json:"seq"`
	}
	if json.Unmarshal(b, &l) != nil {
		return 0, false
	}
	return l.Seq, true
}

// Repair makes a log that ends in a torn line usable again, deliberately:
// it verifies every complete line with pub, copies the torn bytes to
// "<path>.torn" (created 0600; Repair refuses if it exists, so earlier
// evidence is never overwritten), and truncates the log after the last good
// line. It returns the number of bytes removed: 0 for a log that needed no
// repair. It refuses a log that fails verification in any other way.
func Repair(path string, pub ed25519.PublicKey) (removed int64, err error) {
	if len(pub) != ed25519.PublicKeySize {
		return 0, fmt.Errorf("audit log %s: public key is %d bytes, want an Ed25519 key (%d)", path, len(pub), ed25519.PublicKeySize)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return 0, fmt.Errorf("audit log %s is in use by another process or Log: %w", path, err)
	}
	end, err := walk(f, pub, "", func(Record) {})
	if err == nil || !errors.Is(err, ErrTornTail) {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	torn := make([]byte, fi.Size()-end)
	if _, err := f.ReadAt(torn, end); err != nil {
		return 0, fmt.Errorf("audit log %s: read torn line: %w", path, err)
	}
	if err := saveTorn(path+".torn", torn); err != nil {
		return 0, err
	}
	if err := f.Truncate(end); err != nil {
		return 0, fmt.Errorf("audit log %s: truncate: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("audit log %s: %w", path, err)
	}
	return int64(len(torn)), nil
}

// saveTorn writes the torn bytes to a new file, durably.
func saveTorn(name string, torn []byte) error {
	t, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: keep torn line: %w", err)
	}
	if _, err := t.Write(torn); err != nil {
		t.Close()
		return fmt.Errorf("audit log: keep torn line: %w", err)
	}
	if err := t.Sync(); err != nil {
		t.Close()
		return fmt.Errorf("audit log: keep torn line: %w", err)
	}
	return t.Close()
}
