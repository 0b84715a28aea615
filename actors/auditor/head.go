package auditor

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearthfl/hearth/bus/pki"
)

// Head is a log's newest record as its head file records it: the
// participant that writes the log, the record's sequence number and hash
// (0 and "" for an empty log).
type Head struct {
	Participant string
	Seq         uint64
	Hash        string
}

// headSigningContext prefixes what a head signature covers, so that it can
// pass neither for a record signature nor for an envelope signature.
const headSigningContext = "hearth.audit.head.v1\x00"

// The head file is two slots of headSlotBytes, each holding one head line
// ('\n'-terminated) followed by zero bytes. Writes alternate between the
// slots and overwrite in place (no rename, no metadata change, so one
// fsync); a write torn by a crash damages only the slot being written, and
// the other one, one fsync older, still holds a valid head. The newest
// valid slot counts.
const (
	headSlotBytes = 512
	headFileBytes = 2 * headSlotBytes
)

// headLine is a head slot's JSON form, one line. As for records, the field
// order is the canonical encoding and the signature covers the line
// without "sig".
type headLine struct {
	Participant string `json:"participant"`
	Seq         uint64 `json:"seq"`
	Hash        string `json:"hash,omitempty"`
	Sig         string `json:"sig,omitempty"`
}

// HeadPath returns the path of the head file kept beside the log at
// logPath: "state/audit.jsonl" -> "state/audit.head".
func HeadPath(logPath string) string {
	return strings.TrimSuffix(logPath, ".jsonl") + ".head"
}

// ReadHead reads and checks the head file at path: 1024 bytes, two slots
// of which at least one holds a head line in the canonical encoding,
// naming a valid participant and a well-formed hash, signed with pub; the
// valid slot with the higher sequence number counts. exists is false, with
// a nil error, when there is no head file. Any other failure is an error
// naming what is wrong.
func ReadHead(path string, pub ed25519.PublicKey) (h Head, exists bool, err error) {
	h, _, exists, err = readHead(path, pub)
	return h, exists, err
}

// readHead is ReadHead that also returns the slot holding the head.
func readHead(path string, pub ed25519.PublicKey) (h Head, slot int, exists bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Head{}, 0, false, nil
	}
	if err != nil {
		return Head{}, 0, false, fmt.Errorf("audit head: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, headFileBytes+1))
	if err != nil {
		return Head{}, 0, true, fmt.Errorf("audit head %s: %w", path, err)
	}
	if len(data) != headFileBytes {
		return Head{}, 0, true, fmt.Errorf("audit head %s: %d bytes, want %d (two slots of %d)", path, len(data), headFileBytes, headSlotBytes)
	}
	var (
		heads   [2]Head
		reasons [2]string
	)
	for i := range heads {
		heads[i], reasons[i] = decodeSlot(data[i*headSlotBytes:(i+1)*headSlotBytes], pub)
	}
	switch {
	case reasons[0] != "" && reasons[1] != "":
		return Head{}, 0, true, fmt.Errorf("audit head %s: no valid slot: slot 1: %s; slot 2: %s", path, reasons[0], reasons[1])
	case reasons[1] != "":
		return heads[0], 0, true, nil
	case reasons[0] != "":
		return heads[1], 1, true, nil
	case heads[0].Participant != heads[1].Participant || heads[0].Seq == heads[1].Seq && heads[0] != heads[1]:
		return Head{}, 0, true, fmt.Errorf("audit head %s: its slots disagree (%+v, %+v)", path, heads[0], heads[1])
	case heads[1].Seq > heads[0].Seq:
		return heads[1], 1, true, nil
	}
	return heads[0], 0, true, nil
}

// decodeSlot parses and checks one head slot, returning a reason on
// failure.
func decodeSlot(slot []byte, pub ed25519.PublicKey) (Head, string) {
	n := bytes.IndexByte(slot, '\n')
	if n < 0 {
		return Head{}, "no head line (torn or edited)"
	}
	if bytes.ContainsFunc(slot[n+1:], func(r rune) bool { return r != 0 }) {
		return Head{}, "bytes after the head line (edited)"
	}
	body := slot[:n]
	var l headLine
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Head{}, "not a valid head: " + err.Error()
	}
	if again, err := json.Marshal(l); err != nil || !bytes.Equal(again, body) {
		return Head{}, "not in the canonical encoding (the file was edited)"
	}
	if err := pki.ValidName(l.Participant); err != nil {
		return Head{}, "participant: " + err.Error()
	}
	if l.Seq == 0 && l.Hash != "" || l.Seq > 0 && !isHash(l.Hash) {
		return Head{}, fmt.Sprintf("seq %d with hash %q: want 64 lowercase hex digits for a non-empty log, none for an empty one", l.Seq, l.Hash)
	}
	sig, err := base64.StdEncoding.DecodeString(l.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Head{}, "signature missing or malformed"
	}
	signed, err := headSigned(l)
	if err != nil {
		return Head{}, "cannot encode: " + err.Error()
	}
	if !ed25519.Verify(pub, signed, sig) {
		return Head{}, "signature does not verify with the log's public key (forged or signed by another key)"
	}
	return Head{Participant: l.Participant, Seq: l.Seq, Hash: l.Hash}, ""
}

// headSigned is what a head signature covers.
func headSigned(l headLine) ([]byte, error) {
	l.Sig = ""
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return append([]byte(headSigningContext), b...), nil
}

// isHash reports whether s is 64 lowercase hex digits.
func isHash(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// encodeSlot makes the signed, zero-padded slot for h.
func encodeSlot(h Head, key ed25519.PrivateKey) ([]byte, error) {
	l := headLine{Participant: h.Participant, Seq: h.Seq, Hash: h.Hash}
	signed, err := headSigned(l)
	if err != nil {
		return nil, err
	}
	l.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signed))
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > headSlotBytes {
		return nil, fmt.Errorf("head line of %d bytes does not fit a %d-byte slot", len(b), headSlotBytes)
	}
	slot := make([]byte, headSlotBytes)
	copy(slot, b)
	slot[len(b)] = '\n'
	return slot, nil
}

// headWriter keeps a log's head file open and overwrites its slots in
// turn; next is the slot the next write goes to.
type headWriter struct {
	f    *os.File
	key  ed25519.PrivateKey
	next int
}

// createHead writes a new head file at path holding h in both slots,
// fsynced, replacing any file there, and returns it open for writing.
func createHead(path string, h Head, key ed25519.PrivateKey) (*headWriter, error) {
	slot, err := encodeSlot(h, key)
	if err != nil {
		return nil, fmt.Errorf("audit head %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	if _, err := f.Write(append(slot, slot...)); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit head %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit head %s: %w", path, err)
	}
	return &headWriter{f: f, key: key}, nil
}

// openHead opens an existing head file whose newest valid slot is
// current, to write the other slot next.
func openHead(path string, current int, key ed25519.PrivateKey) (*headWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	return &headWriter{f: f, key: key, next: 1 - current}, nil
}

// write overwrites the older slot with h and fsyncs.
func (w *headWriter) write(h Head) error {
	slot, err := encodeSlot(h, w.key)
	if err != nil {
		return fmt.Errorf("audit head %s: %w", w.f.Name(), err)
	}
	if _, err := w.f.WriteAt(slot, int64(w.next*headSlotBytes)); err != nil {
		return fmt.Errorf("audit head %s: %w", w.f.Name(), err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("audit head %s: %w", w.f.Name(), err)
	}
	w.next = 1 - w.next
	return nil
}

func (w *headWriter) close() error { return w.f.Close() }

// AdoptHead writes a head file for the log at path, of participant, signed
// with key, when the log has none: the way back for a log that Open
// refuses with ErrNoHead, after the operator has checked it against its
// peers' anchors (CrossCheck). It verifies the whole log first, holds the
// log's lock while it works, and refuses a log that fails verification and
// one that already has a head file. It returns the head written.
func AdoptHead(path, participant string, key ed25519.PrivateKey) (Head, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Head{}, fmt.Errorf("audit log %s: signing key is %d bytes, want an Ed25519 private key (%d)", path, len(key), ed25519.PrivateKeySize)
	}
	if err := pki.ValidName(participant); err != nil {
		return Head{}, fmt.Errorf("audit log %s: participant: %w", path, err)
	}
	headPath := HeadPath(path)
	if _, err := os.Lstat(headPath); err == nil {
		return Head{}, fmt.Errorf("audit log %s already has a head file %s", path, headPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Head{}, fmt.Errorf("audit head: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Head{}, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return Head{}, fmt.Errorf("audit log %s is in use by another process or Log: %w", path, err)
	}
	h := Head{Participant: participant}
	if _, err := walk(f, key.Public().(ed25519.PublicKey), participant, func(r Record) { h.Seq, h.Hash = r.Seq, r.Hash }); err != nil {
		return Head{}, fmt.Errorf("audit log %s: refusing to adopt its head: %w", path, err)
	}
	w, err := createHead(headPath, h, key)
	if err != nil {
		return Head{}, err
	}
	if err := w.close(); err != nil {
		return Head{}, fmt.Errorf("audit head %s: %w", headPath, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return Head{}, fmt.Errorf("audit head %s: %w", headPath, err)
	}
	return h, nil
}
