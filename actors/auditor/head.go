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

// maxHeadBytes bounds a head file; a real one is about 250 bytes.
const maxHeadBytes = 1 << 10

// headLine is the head file's JSON form, one line. As for records, the
// field order is the canonical encoding and the signature covers the line
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

// ReadHead reads and checks the head file at path: one line in the
// canonical encoding, at most 1 KiB, naming a valid participant and a
// well-formed hash, signed with pub. exists is false, with a nil error,
// when there is no head file. Any other failure is an error naming what is
// wrong.
func ReadHead(path string, pub ed25519.PublicKey) (h Head, exists bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Head{}, false, nil
	}
	if err != nil {
		return Head{}, false, fmt.Errorf("audit head: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHeadBytes+1))
	if err != nil {
		return Head{}, true, fmt.Errorf("audit head %s: %w", path, err)
	}
	h, reason := decodeHead(data, pub)
	if reason != "" {
		return Head{}, true, fmt.Errorf("audit head %s: %s", path, reason)
	}
	return h, true, nil
}

// decodeHead parses and checks a head file's bytes, returning a reason on
// failure.
func decodeHead(data []byte, pub ed25519.PublicKey) (Head, string) {
	if len(data) > maxHeadBytes {
		return Head{}, fmt.Sprintf("longer than %d bytes", maxHeadBytes)
	}
	body, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok {
		return Head{}, "does not end in a newline (torn or edited)"
	}
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

// writeHead replaces the head file at path atomically: it writes
// "<path>.tmp", fsyncs it and renames it over path. A crash leaves either
// the old head or the new one, both of which are at most the log's
// durable length, since the log is fsynced first.
func writeHead(path string, h Head, key ed25519.PrivateKey) error {
	l := headLine{Participant: h.Participant, Seq: h.Seq, Hash: h.Hash}
	signed, err := headSigned(l)
	if err != nil {
		return fmt.Errorf("audit head %s: %w", path, err)
	}
	l.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signed))
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("audit head %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit head %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit head %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit head %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	return nil
}

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
	if err := writeHead(headPath, h, key); err != nil {
		return Head{}, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return Head{}, fmt.Errorf("audit head %s: %w", headPath, err)
	}
	return h, nil
}
