package auditor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// newKey makes a real Ed25519 key pair.
func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}

// clock is a fake time source that advances one millisecond per call.
func clock(start time.Time) func() time.Time {
	var mu sync.Mutex
	now := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// mustOpen opens a log that the test closes at cleanup.
func mustOpen(t testing.TB, path, participant string, key ed25519.PrivateKey) *Log {
	t.Helper()
	l, err := Open(path, participant, key, clock(epoch))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, e Event) Record {
	t.Helper()
	r, err := l.Append(e)
	if err != nil {
		t.Fatalf("Append(%s): %v", e.Action, err)
	}
	return r
}

func mustVerify(t testing.TB, path string, pub ed25519.PublicKey) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := Verify(f, pub)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return recs
}

func TestAppendContinuesAcrossReopen(t *testing.T) {
	pub, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var appended []Record
	for round := range 3 {
		l := mustOpen(t, path, "site-1", key)
		for i := range 3 {
			appended = append(appended, mustAppend(t, l, Event{Action: ActionTaskReceived, JobID: "job-1",
				Round: int64(round), Peer: "server", Detail: map[string]string{"i": string(rune('a' + i))}}))
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	recs := mustVerify(t, path, pub)
	if !reflect.DeepEqual(recs, appended) {
		t.Fatalf("Verify read back\n%+v\nwant what Append returned\n%+v", recs, appended)
	}
	ids := map[string]bool{}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Errorf("record %d: Seq %d, want %d", i, r.Seq, i+1)
		}
		if i == 0 && r.Prev != "" || i > 0 && r.Prev != recs[i-1].Hash {
			t.Errorf("record %d: Prev %q does not link to the record before", i, r.Prev)
		}
		if ids[r.ID] {
			t.Errorf("record %d: id %s used twice", i, r.ID)
		}
		ids[r.ID] = true
		if p, s, err := ParseID(r.ID); err != nil || p != "site-1" || s != r.Seq {
			t.Errorf("ParseID(%q) = %q, %d, %v", r.ID, p, s, err)
		}
	}
	l := mustOpen(t, path, "site-1", key)
	if seq, hash := l.Head(); seq != 9 || hash != recs[8].Hash {
		t.Errorf("Head() = %d, %s; want 9, %s", seq, hash, recs[8].Hash)
	}
}

func TestOpenCreatesFileMode0600(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	_, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	mustOpen(t, path, "server", key)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %#o, want 0600", perm)
	}
}

func TestOpenRefuses(t *testing.T) {
	_, key := newKey(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, path string) // prepares path
		part  string
		key   ed25519.PrivateKey
		want  string
	}{
		{name: "invalid participant name", part: "site:1", key: key, want: "participant"},
		{name: "short key", part: "site-1", key: key[:10], want: "want an Ed25519 private key"},
		{name: "world-readable file", part: "site-1", key: key, want: "readable by group or others",
			setup: func(t *testing.T, path string) {
				if runtime.GOOS == "windows" {
					t.Skip("no Unix modes")
				}
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "log of another participant", part: "site-1", key: key, want: `"site-2", not "site-1"`,
			setup: func(t *testing.T, path string) {
				l := mustOpen(t, path, "site-2", key)
				mustAppend(t, l, Event{Action: ActionJobStarted})
				l.Close()
			}},
		{name: "log signed by another key", part: "site-1", key: key, want: "signed by another key",
			setup: func(t *testing.T, path string) {
				_, other := newKey(t)
				l := mustOpen(t, path, "site-1", other)
				mustAppend(t, l, Event{Action: ActionJobStarted})
				l.Close()
			}},
		{name: "log open elsewhere", part: "site-1", key: key, want: "in use",
			setup: func(t *testing.T, path string) {
				if runtime.GOOS == "windows" {
					t.Skip("no flock")
				}
				mustOpen(t, path, "site-1", key) // stays open until cleanup
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			l, err := Open(path, tt.part, tt.key, nil)
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestOpenRefusesTamperedLog(t *testing.T) {
	_, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := mustOpen(t, path, "server", key)
	for _, a := range []string{ActionJobSubmitted, ActionJobStarted, ActionJobFinished} {
		mustAppend(t, l, Event{Action: a, JobID: "job-1"})
	}
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(data, []byte(`"action":"job.started"`), []byte(`"action":"job.refused"`), 1)
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err = Open(path, "server", key, nil)
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) || ve.Line != 2 {
		t.Fatalf("Open error %v, want a *VerifyError for line 2 wrapping ErrTampered", err)
	}
	if !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "does not match its hash") {
		t.Errorf("error %q should name line 2 and the reason", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, tampered) {
		t.Error("Open changed a log it refused")
	}
}

func TestAppendRefuses(t *testing.T) {
	_, key := newKey(t)
	l := mustOpen(t, filepath.Join(t.TempDir(), "audit.jsonl"), "server", key)
	if _, err := l.Append(Event{JobID: "job-1"}); err == nil || !strings.Contains(err.Error(), "no action") {
		t.Errorf("Append without action: %v, want refusal", err)
	}
	// Texts from elsewhere are cut, so an event is recorded however long
	// what a peer sent; a peer event that is not an event id of this log's
	// participant or of the peer is not kept as one.
	big := Event{Action: ActionAdminCommand, Peer: "site-1", PeerEvent: "site-2:7:0123456789abcdef",
		Detail: map[string]string{"args": strings.Repeat("x", MaxRecordBytes)}}
	r, err := l.Append(big)
	if err != nil || len(r.Detail["args"]) > 4096 || !strings.HasSuffix(r.Detail["args"], "...") {
		t.Fatalf("Append of an oversized event: %v, detail of %d bytes", err, len(r.Detail["args"]))
	}
	if r.PeerEvent != "" || r.Detail["peer_event_refused"] != "site-2:7:0123456789abcdef" {
		t.Errorf("another participant's id kept as site-1's event: %q, %v", r.PeerEvent, r.Detail)
	}
	if r := mustAppend(t, l, Event{Action: ActionJobStarted, Peer: "site-1", PeerEvent: "site-1:3:0123456789abcdef"}); r.Seq != 2 || r.PeerEvent == "" {
		t.Errorf("Seq %d, peer event %q: want 2 and the peer's own id kept", r.Seq, r.PeerEvent)
	}
	l.Close()
	if _, err := l.Append(Event{Action: ActionJobStarted}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestAppendReplacesInvalidUTF8(t *testing.T) {
	pub, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := mustOpen(t, path, "site-1", key)
	r := mustAppend(t, l, Event{Action: ActionTaskReceived, JobID: "job-\xff", Detail: map[string]string{"k\xfe": "<v>&"}})
	l.Close()
	if r.JobID != "job-\uFFFD" || r.Detail["k\uFFFD"] != "<v>&" {
		t.Errorf("record %+v: invalid UTF-8 not replaced", r.Event)
	}
	if recs := mustVerify(t, path, pub); !reflect.DeepEqual(recs[0], r) {
		t.Errorf("read back %+v, want %+v", recs[0], r)
	}
}

func TestConcurrentAppendsKeepTheChain(t *testing.T) {
	pub, key := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := mustOpen(t, path, "server", key)
	const writers, each = 16, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(Event{Action: ActionTaskSent, Round: int64(w*each + i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	if recs := mustVerify(t, path, pub); len(recs) != writers*each {
		t.Errorf("%d records, want %d", len(recs), writers*each)
	}
}

func TestAppendRefusesUnencodableTime(t *testing.T) {
	_, key := newKey(t)
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), "server", key,
		func() time.Time { return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(Event{Action: ActionJobStarted}); err == nil || !strings.Contains(err.Error(), "clock") {
		t.Errorf("Append with a year-10000 clock: %v, want refusal", err)
	}
}
