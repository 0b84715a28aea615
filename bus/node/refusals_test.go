package node

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
)

// clock is a settable clock for Refusals.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sinkLog collects the records a Refusals hands over.
type sinkLog struct {
	mu   sync.Mutex
	recs []RefusalRecord
	fail error
}

func (s *sinkLog) append(r RefusalRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.recs = append(s.recs, r)
	return nil
}

// counts sums the records' counts per peer.
func (s *sinkLog) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for _, r := range s.recs {
		m[r.Peer] += r.Count
	}
	return m
}

func newTestRefusals(keys int) (*Refusals, *clock, *sinkLog) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := NewRefusals(RefusalsConfig{Interval: time.Minute, MaxKeys: keys, Now: c.now})
	s := &sinkLog{}
	r.SetSink(s.append)
	return r, c, s
}

func TestRefusalFloodIsBounded(t *testing.T) {
	tests := []struct {
		name    string
		senders int // the flood's 10,000 refusals come from this many claimed senders
		keys    int
		// maxRecords bounds the records over the whole flood (two intervals).
		maxRecords int
	}{
		{"one sender", 1, 16, 2},
		{"ten senders", 10, 16, 20},
		{"a sender per refusal", 10000, 16, 2 * (16 + 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c, s := newTestRefusals(tt.keys)
			const flood = 10000
			for i := range flood {
				r.Note(ActionEnvelopeRefused, fmt.Sprintf("site-%d", i%tt.senders), "bad_signature", "envelope refused: signature does not verify")
				if i%100 == 0 { // the flusher wakes now and then during the flood
					if err := r.Flush(false); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.add(time.Minute)
			if err := r.Flush(false); err != nil {
				t.Fatal(err)
			}
			if n := len(s.recs); n > tt.maxRecords {
				t.Fatalf("%d refusals made %d records, want at most %d", flood, n, tt.maxRecords)
			}
			total := 0
			for peer, n := range s.counts() {
				total += n
				if tt.senders <= tt.keys && n != flood/tt.senders {
					t.Errorf("%s: counted %d, want %d", peer, n, flood/tt.senders)
				}
			}
			if total != flood {
				t.Fatalf("records count %d refusals in all, want %d", total, flood)
			}
			if tt.senders > tt.keys {
				if got := s.counts()[OtherPeers]; got != flood-tt.keys {
					t.Errorf("%d refusals counted under %q, want the %d beyond the first %d senders", got, OtherPeers, flood-tt.keys, tt.keys)
				}
			}
		})
	}
}

func TestRefusalRecords(t *testing.T) {
	r, c, s := newTestRefusals(8)
	note := func(n int) {
		for range n {
			r.Note(ActionConnectionRefused, "rogue", "revoked", "leaf listener: revoked")
		}
	}
	flush := func(all bool) {
		t.Helper()
		if err := r.Flush(all); err != nil {
			t.Fatal(err)
		}
	}
	note(1)
	flush(false)
	note(5)
	flush(false) // within the interval: no summary yet
	c.add(30 * time.Second)
	flush(false)
	if len(s.recs) != 1 || !s.recs[0].First || s.recs[0].Count != 1 {
		t.Fatalf("after the first refusal and 5 more within the interval: %+v, want one first record of 1", s.recs)
	}
	c.add(30 * time.Second)
	flush(false)
	if len(s.recs) != 2 || s.recs[1].First || s.recs[1].Count != 5 {
		t.Fatalf("after an interval: %+v, want a summary of 5", s.recs)
	}
	want := RefusalRecord{Action: ActionConnectionRefused, Peer: "rogue", Reason: "revoked", Detail: "leaf listener: revoked"}
	if got := s.recs[1]; got.Action != want.Action || got.Peer != want.Peer || got.Reason != want.Reason || got.Detail != want.Detail {
		t.Fatalf("summary %+v, want %+v", got, want)
	}
	c.add(time.Minute)
	flush(false) // quiet for an interval: forgotten
	note(1)
	flush(false)
	if len(s.recs) != 3 || !s.recs[2].First {
		t.Fatalf("a refusal after a quiet interval: %+v, want a first record again", s.recs)
	}
	note(3)
	flush(true)
	if len(s.recs) != 4 || s.recs[3].Count != 3 {
		t.Fatalf("Flush(all): %+v, want the 3 pending handed over", s.recs)
	}
}

func TestRefusalsKeepCountsUntilTheSinkTakesThem(t *testing.T) {
	c := &clock{t: time.Now()}
	r := NewRefusals(RefusalsConfig{Now: c.now})
	for range 7 {
		r.Note(ActionEnvelopeRefused, "site-1", "replay", "")
	}
	if err := r.Flush(true); err != nil { // no sink yet: kept
		t.Fatal(err)
	}
	s := &sinkLog{fail: errors.New("disk full")}
	r.SetSink(s.append)
	if err := r.Flush(true); err == nil {
		t.Fatal("the sink's error was not returned")
	}
	s.fail = nil
	if err := r.Flush(true); err != nil {
		t.Fatal(err)
	}
	if len(s.recs) != 1 || s.recs[0].Count != 7 || !s.recs[0].First {
		t.Fatalf("records %+v, want one first record of 7", s.recs)
	}
}

func TestRefusalsBoundClaimedText(t *testing.T) {
	r, _, s := newTestRefusals(8)
	long := strings.Repeat("é", 500)
	r.Note(ActionEnvelopeRefused, long, long, long)
	if err := r.Flush(false); err != nil {
		t.Fatal(err)
	}
	got := s.recs[0]
	if len(got.Peer) > 90 || len(got.Reason) > 50 || len(got.Detail) > maxDetail+4 {
		t.Fatalf("claimed text not bounded: peer %d, reason %d, detail %d bytes", len(got.Peer), len(got.Reason), len(got.Detail))
	}
	if !strings.HasSuffix(got.Peer, "…") || strings.ContainsRune(got.Peer, '\uFFFD') {
		t.Fatalf("peer cut badly: %q", got.Peer)
	}
}

func TestRefusalsNoteWhatTheBusReports(t *testing.T) {
	r, _, s := newTestRefusals(8)
	r.NoteConnection(bus.Refusal{Listener: "leaf", Peer: "site-9", Err: &pki.CertError{Name: "site-9", Reason: pki.ErrRevoked}})
	r.NoteEnvelope("hearth.msg.server.site-2", &envelope.RefusedError{Reason: envelope.ErrReplay, Sender: "site-2"})
	if err := r.Flush(false); err != nil {
		t.Fatal(err)
	}
	got := map[string]RefusalRecord{}
	for _, rec := range s.recs {
		got[rec.Action] = rec
	}
	if c := got[ActionConnectionRefused]; c.Peer != "site-9" || c.Reason != "revoked" || !strings.Contains(c.Detail, "leaf listener") {
		t.Errorf("connection record %+v", c)
	}
	if e := got[ActionEnvelopeRefused]; e.Peer != "site-2" || e.Reason != "replay" || !strings.Contains(e.Detail, "hearth.msg.server.site-2") {
		t.Errorf("envelope record %+v", e)
	}
}
