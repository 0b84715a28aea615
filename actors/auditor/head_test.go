package auditor

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fiveRecords writes a closed five-record log of site-1 at dir/audit.jsonl,
// with its head file, and returns the log's path.
func fiveRecords(t *testing.T, dir string, key ed25519.PrivateKey) string {
	t.Helper()
	path := filepath.Join(dir, "audit.jsonl")
	l := mustOpen(t, path, "site-1", key)
	for i, a := range []string{ActionJobStarted, ActionTaskReceived, ActionTaskExecuted, ActionResultSent, ActionJobFinished} {
		mustAppend(t, l, Event{Action: a, JobID: "job-1", Round: int64(i), Peer: "server"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// logLines reads a log's lines, without newlines.
func logLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, join(lines), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeHead writes a head file holding h in both slots.
func writeHead(path string, h Head, key ed25519.PrivateKey) error {
	w, err := createHead(path, h, key)
	if err != nil {
		return err
	}
	return w.close()
}

func TestHeadFollowsTheLog(t *testing.T) {
	pub, key := newKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l := mustOpen(t, path, "site-1", key)
	check := func(when string) {
		t.Helper()
		h, ok, err := ReadHead(HeadPath(path), pub)
		seq, hash := l.Head()
		if err != nil || !ok || h != (Head{Participant: "site-1", Seq: seq, Hash: hash}) {
			t.Errorf("%s: head file %+v, %v, %v; want site-1, %d, %s", when, h, ok, err, seq, hash)
		}
	}
	check("new log")
	for range 3 {
		mustAppend(t, l, Event{Action: ActionTaskSent})
		check("after Append")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if HeadPath(path) != filepath.Join(dir, "audit.head") {
		t.Errorf("HeadPath = %s, want audit.head beside the log", HeadPath(path))
	}

	// A crash between the log's fsync and the head's rename leaves the
	// head behind the log: Open accepts that and brings the head up.
	recs := mustVerify(t, path, pub)
	if err := writeHead(HeadPath(path), Head{Participant: "site-1", Seq: 2, Hash: recs[1].Hash}, key); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, path, "site-1", key)
	check("reopened with a lagging head")
}

func TestEventIDsCommitToTheChain(t *testing.T) {
	pub, key := newKey(t)
	path := fiveRecords(t, t.TempDir(), key)
	recs := mustVerify(t, path, pub)
	for i, r := range recs[1:] {
		if want := recs[i].Hash[:16]; !strings.HasSuffix(r.ID, ":"+want) {
			t.Errorf("record %d: id %s does not carry the previous hash's prefix %s", r.Seq, r.ID, want)
		}
	}
}

func TestOpenRefusesACutLog(t *testing.T) {
	_, key := newKey(t)
	_, otherKey := newKey(t)
	tests := []struct {
		name   string
		tamper func(t *testing.T, path string)
		is     error
		want   string
	}{
		{name: "last records cut", is: ErrTruncated, want: "holds 3 record(s), but its head file",
			tamper: func(t *testing.T, path string) { writeLines(t, path, logLines(t, path)[:3]) }},
		{name: "all records cut", is: ErrTruncated, want: "records 1-5 were cut from its end",
			tamper: func(t *testing.T, path string) {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "log deleted, head kept", is: ErrTruncated, want: "is missing, but its head file",
			tamper: func(t *testing.T, path string) { os.Remove(path) }},
		{name: "head deleted", is: ErrNoHead, want: "holds 5 record(s) but has no head file",
			tamper: func(t *testing.T, path string) { os.Remove(HeadPath(path)) }},
		{name: "head's record rewritten by the key holder", is: ErrTampered, want: "record 5 is not the one its head file",
			tamper: func(t *testing.T, path string) {
				ls := logLines(t, path)
				ls[4] = reseal(t, ls[4], key, func(r *Record) { r.Action = ActionJobRefused })
				writeLines(t, path, ls)
			}},
		{name: "head signed by another key", is: ErrTampered, want: "signature does not verify with the log's public key",
			tamper: func(t *testing.T, path string) {
				if err := writeHead(HeadPath(path), Head{Participant: "site-1", Seq: 3, Hash: strings.Repeat("a", 64)}, otherKey); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "head edited", is: ErrTampered, want: "signature does not verify",
			tamper: func(t *testing.T, path string) {
				data, _ := os.ReadFile(HeadPath(path))
				if err := os.WriteFile(HeadPath(path), bytes.ReplaceAll(bytes.ReplaceAll(data, []byte(`"seq":5`), []byte(`"seq":3`)), []byte(`"seq":4`), []byte(`"seq":2`)), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "head garbage", is: ErrTampered, want: "6 bytes, want 1024",
			tamper: func(t *testing.T, path string) {
				if err := os.WriteFile(HeadPath(path), []byte("\x1b[2J5\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fiveRecords(t, t.TempDir(), key)
			tt.tamper(t, path)
			before, _ := os.ReadFile(path)
			l, err := Open(path, "site-1", key, nil)
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v\nwant %v, mentioning %q", err, tt.is, tt.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Error("Open changed a log it refused")
			}
			if _, statErr := os.Stat(path); tt.name == "log deleted, head kept" && statErr == nil {
				t.Error("Open created a log in place of the deleted one")
			}
		})
	}
}

func TestHeadSurvivesATornSlot(t *testing.T) {
	pub, key := newKey(t)
	path := fiveRecords(t, t.TempDir(), key)
	recs := mustVerify(t, path, pub)
	h, slot, _, err := readHead(HeadPath(path), pub)
	if err != nil || h.Seq != 5 {
		t.Fatalf("head %+v, %v; want seq 5", h, err)
	}
	// A crash in the middle of the next head write tears the older slot:
	// the newer one still counts.
	data, _ := os.ReadFile(HeadPath(path))
	older := (1 - slot) * headSlotBytes
	copy(data[older:older+headSlotBytes], bytes.Repeat([]byte{'x'}, 100))
	if err := os.WriteFile(HeadPath(path), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if h, _, err := ReadHead(HeadPath(path), pub); err != nil || h.Seq != 5 || h.Hash != recs[4].Hash {
		t.Fatalf("ReadHead with a torn older slot: %+v, %v; want seq 5", h, err)
	}
	l := mustOpen(t, path, "site-1", key)
	mustAppend(t, l, Event{Action: ActionJobFinished}) // rewrites the torn slot
	l.Close()
	for i := range 2 {
		if _, reason := decodeSlot(mustRead(t, HeadPath(path))[i*headSlotBytes:(i+1)*headSlotBytes], pub); reason != "" {
			t.Errorf("slot %d after an append: %s", i+1, reason)
		}
	}
	// The newest slot torn instead: the older one counts, one fsync
	// behind, and a cut below it is still refused.
	_, slot, _, _ = readHead(HeadPath(path), pub)
	data = mustRead(t, HeadPath(path))
	copy(data[slot*headSlotBytes:], bytes.Repeat([]byte{'x'}, 100))
	if err := os.WriteFile(HeadPath(path), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if h, _, err := ReadHead(HeadPath(path), pub); err != nil || h.Seq != 5 {
		t.Fatalf("ReadHead with a torn newest slot: %+v, %v; want the older slot, seq 5", h, err)
	}
	writeLines(t, path, logLines(t, path)[:4])
	if _, err := Open(path, "site-1", key, nil); !errors.Is(err, ErrTruncated) {
		t.Errorf("Open of a log cut below the older slot: %v, want ErrTruncated", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestAdoptHead(t *testing.T) {
	pub, key := newKey(t)
	path := fiveRecords(t, t.TempDir(), key)
	if _, err := AdoptHead(path, "site-1", key); err == nil || !strings.Contains(err.Error(), "already has a head file") {
		t.Errorf("AdoptHead with a head present: %v", err)
	}
	os.Remove(HeadPath(path))
	h, err := AdoptHead(path, "site-1", key)
	recs := mustVerify(t, path, pub)
	if err != nil || h.Seq != 5 || h.Hash != recs[4].Hash {
		t.Fatalf("AdoptHead = %+v, %v; want seq 5, %s", h, err, recs[4].Hash)
	}
	l := mustOpen(t, path, "site-1", key)
	if r := mustAppend(t, l, Event{Action: ActionJobStarted}); r.Seq != 6 {
		t.Errorf("Seq %d after AdoptHead, want 6", r.Seq)
	}
	l.Close()

	os.Remove(HeadPath(path))
	ls := logLines(t, path)
	ls[1] = bytes.Replace(ls[1], []byte(`"round":1`), []byte(`"round":7`), 1)
	writeLines(t, path, ls)
	if _, err := AdoptHead(path, "site-1", key); !errors.Is(err, ErrTampered) {
		t.Errorf("AdoptHead of a tampered log: %v, want ErrTampered", err)
	}
	if _, err := os.Stat(HeadPath(path)); err == nil {
		t.Error("AdoptHead wrote a head for a tampered log")
	}
}
