package auditor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture writes a five-record log for participant with key and returns
// its lines (without newlines).
func fixture(t testing.TB, participant string, key ed25519.PrivateKey) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), participant+".jsonl")
	l := mustOpen(t, path, participant, key)
	for i, a := range []string{ActionJobStarted, ActionTaskReceived, ActionTaskExecuted, ActionResultSent, ActionJobFinished} {
		mustAppend(t, l, Event{Action: a, JobID: "job-1", Round: int64(i), Peer: "server"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func join(lines [][]byte) []byte {
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

// reseal decodes a line, lets edit change the record, and re-encodes it
// with a fresh hash and a signature by key.
func reseal(t testing.TB, b []byte, key ed25519.PrivateKey, edit func(*Record)) []byte {
	t.Helper()
	r, reason := decode(b)
	if reason != "" {
		t.Fatal(reason)
	}
	edit(&r)
	if err := seal(&r, key); err != nil {
		t.Fatal(err)
	}
	out, err := encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyRefuses(t *testing.T) {
	pub, key := newKey(t)
	_, otherKey := newKey(t)
	good := fixture(t, "site-1", key)
	site2 := fixture(t, "site-2", otherKey)

	tests := []struct {
		name   string
		tamper func(lines [][]byte) []byte
		pub    ed25519.PublicKey // default pub
		line   int
		reason string
		torn   bool
	}{
		{name: "changed field in a middle record", line: 3, reason: "content does not match its hash",
			tamper: func(ls [][]byte) []byte {
				ls[2] = bytes.Replace(ls[2], []byte(`"job":"job-1"`), []byte(`"job":"job-9"`), 1)
				return join(ls)
			}},
		{name: "changed field with hash recomputed", line: 3, reason: "verified lines 1-2: a forged record",
			tamper: func(ls [][]byte) []byte {
				r, _ := decode(ls[2])
				r.JobID = "job-9"
				c, _ := canonical(&r)
				sum := sha256.Sum256(c)
				r.Hash = hex.EncodeToString(sum[:]) // the right hash, the old signature
				ls[2], _ = encode(&r)
				return join(ls)
			}},
		{name: "deleted line", line: 3, reason: "seq 4 where 3 was expected: 1 record(s) missing",
			tamper: func(ls [][]byte) []byte { return join(append(ls[:2:2], ls[3:]...)) }},
		{name: "first line deleted", line: 1, reason: "seq 2 where 1 was expected: 1 record(s) missing",
			tamper: func(ls [][]byte) []byte { return join(ls[1:]) }},
		{name: "two lines swapped", line: 3, reason: "records out of order: seq 4 where 3 was expected, followed by seq 3",
			tamper: func(ls [][]byte) []byte {
				ls[2], ls[3] = ls[3], ls[2]
				return join(ls)
			}},
		{name: "line repeated", line: 4, reason: "seq 3 where 4 was expected: a record repeated or moved back",
			tamper: func(ls [][]byte) []byte { return join(append(ls[:3:3], ls[2:]...)) }},
		{name: "appended forged line", line: 6, reason: "does not verify with the public key that verified lines 1-5: a forged record",
			tamper: func(ls [][]byte) []byte {
				forged := reseal(t, ls[4], otherKey, func(r *Record) {
					prev, _ := decode(ls[4])
					r.Seq, r.Prev, r.Action = 6, prev.Hash, ActionAdminCommand
					r.ID = "site-1:6:" + prev.Hash[:16]
				})
				return join(append(ls, forged))
			}},
		{name: "truncated last line", line: 5, reason: "final line is torn (40 bytes without a newline)", torn: true,
			tamper: func(ls [][]byte) []byte {
				full := join(ls)
				return full[:len(full)-len(ls[4])-1+40] // line 5 cut after 40 bytes
			}},
		{name: "log signed by another participant's key", line: 1, pub: pubOf(otherKey),
			reason: "does not verify with the given public key, and no line before it did: the log was signed by another key",
			tamper: func(ls [][]byte) []byte { return join(ls) }},
		{name: "record of another participant spliced in", line: 3, reason: `record written by "site-2" in a log of "site-1"`,
			tamper: func(ls [][]byte) []byte {
				ls[2] = site2[2]
				return join(ls)
			}},
		{name: "prev rewritten by the key holder", line: 4, reason: "prev does not match the hash of the record before it",
			tamper: func(ls [][]byte) []byte {
				ls[3] = reseal(t, ls[3], key, func(r *Record) { r.Prev = strings.Repeat("0", 64) })
				return join(ls)
			}},
		{name: "event id rewritten", line: 2, reason: `event id "site-2:2:0123456789abcdef" does not name participant "site-1" and seq 2`,
			tamper: func(ls [][]byte) []byte {
				ls[1] = reseal(t, ls[1], key, func(r *Record) { r.ID = "site-2:2:0123456789abcdef" })
				return join(ls)
			}},
		{name: "event id not committing to the chain", line: 3, reason: "does not commit to its prev hash",
			tamper: func(ls [][]byte) []byte {
				ls[2] = reseal(t, ls[2], key, func(r *Record) { r.ID = "site-1:3:0123456789abcdef" })
				return join(ls)
			}},
		{name: "line reformatted", line: 2, reason: "not in the canonical encoding",
			tamper: func(ls [][]byte) []byte {
				ls[1] = bytes.Replace(ls[1], []byte(`,"id"`), []byte(`, "id"`), 1)
				return join(ls)
			}},
		{name: "unknown field", line: 2, reason: `unknown field "note"`,
			tamper: func(ls [][]byte) []byte {
				ls[1] = bytes.Replace(ls[1], []byte(`{`), []byte(`{"note":"x",`), 1)
				return join(ls)
			}},
		{name: "signature removed", line: 2, reason: "signature missing or malformed",
			tamper: func(ls [][]byte) []byte {
				ls[1] = ls[1][:bytes.Index(ls[1], []byte(`,"sig"`))]
				ls[1] = append(ls[1], '}')
				return join(ls)
			}},
		{name: "empty line", line: 3, reason: "empty line",
			tamper: func(ls [][]byte) []byte { return join(append(ls[:2:2], append([][]byte{{}}, ls[2:]...)...)) }},
		{name: "garbage line", line: 1, reason: "not a valid record",
			tamper: func(ls [][]byte) []byte { return []byte("\x00\x00\x00\n") }},
		{name: "overlong line", line: 2, reason: "longer than 65536 bytes",
			tamper: func(ls [][]byte) []byte {
				return join([][]byte{ls[0], bytes.Repeat([]byte("x"), MaxRecordBytes+1)})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := make([][]byte, len(good))
			for i := range good {
				lines[i] = bytes.Clone(good[i])
			}
			data := tt.tamper(lines)
			p := tt.pub
			if p == nil {
				p = pub
			}
			recs, err := Verify(bytes.NewReader(data), p)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify error %v, want a *VerifyError", err)
			}
			if ve.Line != tt.line || !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("Verify: %v\nwant line %d, reason containing %q", err, tt.line, tt.reason)
			}
			if errors.Is(err, ErrTornTail) != tt.torn || errors.Is(err, ErrTampered) == tt.torn {
				t.Errorf("Verify: %v; torn=%v, want torn=%v (and tampered=%v)", err, errors.Is(err, ErrTornTail), tt.torn, !tt.torn)
			}
			if len(recs) != tt.line-1 {
				t.Errorf("Verify returned %d records, want the %d before the bad line", len(recs), tt.line-1)
			}
		})
	}
}

func pubOf(key ed25519.PrivateKey) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) }

func TestVerifyAcceptsEmptyAndRejectsBadKey(t *testing.T) {
	pub, _ := newKey(t)
	if recs, err := Verify(bytes.NewReader(nil), pub); err != nil || len(recs) != 0 {
		t.Errorf("empty log: %d records, %v", len(recs), err)
	}
	if _, err := Verify(bytes.NewReader(nil), pub[:5]); err == nil {
		t.Error("Verify accepted a 5-byte public key")
	}
}

func TestTornTailNeedsExplicitRepair(t *testing.T) {
	pub, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	full := join(fixture(t, "site-1", key))
	torn := full[:len(full)-7] // a crash during the fifth write
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	fourth, _ := decode(bytes.Split(full, []byte("\n"))[3])
	if err := writeHead(HeadPath(path), Head{Participant: "site-1", Seq: 4, Hash: fourth.Hash}, key); err != nil {
		t.Fatal(err) // the head as the crash left it: the four durable records
	}

	_, err := Open(path, "site-1", key, nil)
	if !errors.Is(err, ErrTornTail) || errors.Is(err, ErrTampered) {
		t.Fatalf("Open of a torn log: %v, want ErrTornTail", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, torn) {
		t.Fatal("Open changed a log it refused")
	}

	removed, err := Repair(path, pub)
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	kept, _ := os.ReadFile(path + ".torn")
	if int(removed) != len(kept) || !bytes.HasSuffix(torn, kept) || bytes.Contains(kept, []byte("\n")) {
		t.Errorf("Repair removed %d bytes and kept %q; want the torn line", removed, kept)
	}
	if n := len(mustVerify(t, path, pub)); n != 4 {
		t.Errorf("%d records after Repair, want 4", n)
	}
	l := mustOpen(t, path, "site-1", key)
	if r := mustAppend(t, l, Event{Action: ActionJobFinished}); r.Seq != 5 {
		t.Errorf("Seq %d after Repair, want 5", r.Seq)
	}
	l.Close()

	if n, err := Repair(path, pub); n != 0 || err != nil {
		t.Errorf("Repair of a sound log: %d, %v; want 0, nil", n, err)
	}
}

func TestRepairRefuses(t *testing.T) {
	pub, key := newKey(t)
	lines := fixture(t, "site-1", key)
	dir := t.TempDir()

	tampered := filepath.Join(dir, "tampered.jsonl")
	lines[1] = bytes.Replace(lines[1], []byte(`"round":1`), []byte(`"round":7`), 1)
	data := join(lines)
	if err := os.WriteFile(tampered, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Repair(tampered, pub); !errors.Is(err, ErrTampered) {
		t.Errorf("Repair of a tampered, torn log: %v, want ErrTampered", err)
	}

	again := filepath.Join(dir, "again.jsonl")
	lines = fixture(t, "site-1", key)
	data = join(lines)
	if err := os.WriteFile(again, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(again+".torn", []byte("earlier evidence"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Repair(again, pub); err == nil {
		t.Error("Repair overwrote an earlier .torn file")
	}
	if kept, _ := os.ReadFile(again + ".torn"); string(kept) != "earlier evidence" {
		t.Errorf(".torn now holds %q", kept)
	}
}

// FuzzVerify checks that no input makes Verify panic, and that whatever it
// accepts re-encodes to the same bytes.
func FuzzVerify(f *testing.F) {
	pub, key := newKey(f)
	f.Add(join(fixture(f, "site-1", key)))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Verify(bytes.NewReader(data), pub)
		if err != nil {
			return
		}
		var out []byte
		for i := range recs {
			b, _ := encode(&recs[i])
			out = append(append(out, b...), '\n')
		}
		if !bytes.Equal(out, data) {
			t.Errorf("accepted %q, re-encodes as %q", data, out)
		}
	})
}
