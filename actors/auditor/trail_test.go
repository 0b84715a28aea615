package auditor

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// participantLog is one process's real log in a test.
type participantLog struct {
	t    *testing.T
	name string
	path string
	log  *Log
}

func newParticipantLog(t *testing.T, dir, name string, now func() time.Time) *participantLog {
	t.Helper()
	_, key := newKey(t)
	path := filepath.Join(dir, name+".jsonl")
	l, err := Open(path, name, key, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &participantLog{t: t, name: name, path: path, log: l}
}

func (p *participantLog) add(action, peer string, answers Record) Record {
	p.t.Helper()
	return mustAppend(p.t, p.log, Event{Action: action, JobID: "job-1", Round: 1, Peer: peer, PeerEvent: answers.ID})
}

func (p *participantLog) records() []Record {
	p.t.Helper()
	return mustVerify(p.t, p.path, pubOf(p.log.key))
}

func actions(recs []Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Participant+" "+r.Action)
	}
	return strings.Join(out, " -> ")
}

// round plays one round: the server sends a task to each site, each site
// answers. All share one clock, except that siteSkew shifts site-1's.
func round(t *testing.T, siteSkew time.Duration) (server, site1, site2 *participantLog, sent1 Record) {
	dir := t.TempDir()
	now := clock(epoch)
	server = newParticipantLog(t, dir, "server", now)
	site1 = newParticipantLog(t, dir, "site-1", func() time.Time { return now().Add(siteSkew) })
	site2 = newParticipantLog(t, dir, "site-2", now)

	started := server.add(ActionJobStarted, "", Record{})
	sent1 = server.add(ActionTaskSent, "site-1", Record{})
	sent2 := server.add(ActionTaskSent, "site-2", Record{})
	var results []Record
	for _, s := range []struct {
		site *participantLog
		sent Record
	}{{site1, sent1}, {site2, sent2}} {
		received := s.site.add(ActionTaskReceived, "server", s.sent)
		executed := s.site.add(ActionTaskExecuted, "", received)
		results = append(results, s.site.add(ActionResultSent, "server", executed))
	}
	for i, site := range []string{"site-1", "site-2"} {
		server.add(ActionResultReceived, site, results[i])
	}
	server.add(ActionRoundClosed, "", started)
	return server, site1, site2, sent1
}

func TestChainFollowsATaskAcrossLogs(t *testing.T) {
	want := "server task.sent -> site-1 task.received -> site-1 task.executed -> site-1 result.sent -> server result.received"
	for _, tt := range []struct {
		name string
		skew time.Duration
	}{
		{"clocks in step", 0},
		{"site clock an hour slow", -time.Hour}, // causal order still wins over time
	} {
		t.Run(tt.name, func(t *testing.T) {
			server, site1, site2, sent1 := round(t, tt.skew)
			trail, err := Link(server.records(), site1.records(), site2.records())
			if err != nil {
				t.Fatalf("Link: %v", err)
			}
			chain := trail.Chain(sent1.ID)
			if got := actions(chain); got != want {
				t.Errorf("Chain(task sent to site-1):\n got %s\nwant %s", got, want)
			}
			if tt.skew == 0 && !slices.IsSortedFunc(chain, func(a, b Record) int { return a.Time.Compare(b.Time) }) {
				t.Error("chain not in time order")
			}
			// Any record on the chain yields the same chain.
			executed := chain[2]
			if got := actions(trail.Chain(executed.ID)); got != want {
				t.Errorf("Chain(task executed at site-1):\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestLinkReportsWhatItCannotLink(t *testing.T) {
	server, site1, site2, sent1 := round(t, 0)
	// A site-1 record answering a server record that the server's log
	// does not hold (cut, or never written).
	ghost := site1.add(ActionTaskReceived, "server", Record{ID: "server:99:0123456789abcdef"})
	recs1 := site1.records()

	trail, err := Link(server.records(), recs1, site2.records())
	var le *LinkError
	if !errors.As(err, &le) || !errors.Is(err, ErrDangling) || errors.Is(err, ErrDuplicate) {
		t.Fatalf("Link: %v, want a *LinkError wrapping ErrDangling", err)
	}
	if len(le.Dangling) != 1 || le.Dangling[0] != (Dangling{ID: ghost.ID, PeerEvent: "server:99:0123456789abcdef"}) {
		t.Errorf("Dangling = %+v, want the ghost record", le.Dangling)
	}
	if !strings.Contains(err.Error(), ghost.ID) {
		t.Errorf("error %q does not name the record", err)
	}
	if trail == nil || len(trail.Chain(sent1.ID)) != 5 {
		t.Error("Link must still return a usable trail")
	}
	if got := trail.Chain(ghost.ID); len(got) != 1 || got[0].ID != ghost.ID {
		t.Errorf("Chain(ghost) = %s, want the ghost alone", actions(got))
	}

	_, err = Link(recs1, recs1)
	if !errors.As(err, &le) || !errors.Is(err, ErrDuplicate) || len(le.Duplicate) != len(recs1) {
		t.Errorf("Link of one log twice: %v, want every id reported as duplicate", err)
	}
}

func TestChainOfUnknownIDIsEmpty(t *testing.T) {
	trail, err := Link()
	if err != nil {
		t.Fatal(err)
	}
	if got := trail.Chain("server:1:0123456789abcdef"); got != nil {
		t.Errorf("Chain of an unknown id = %v, want nil", got)
	}
}

func TestChainSurvivesForgedCycles(t *testing.T) {
	// Records that answer each other (only a forged log does this).
	a := Record{Seq: 1, ID: "a:1:0000000000000001", Participant: "a", Time: epoch,
		Event: Event{Action: ActionTaskSent, PeerEvent: "b:1:0000000000000001"}}
	b := Record{Seq: 1, ID: "b:1:0000000000000001", Participant: "b", Time: epoch.Add(time.Second),
		Event: Event{Action: ActionTaskReceived, PeerEvent: "a:1:0000000000000001"}}
	self := Record{Seq: 2, ID: "b:2:0000000000000002", Participant: "b", Time: epoch,
		Event: Event{Action: ActionTaskExecuted, PeerEvent: "b:2:0000000000000002"}}
	trail, err := Link([]Record{a}, []Record{b, self})
	if err != nil {
		t.Fatal(err)
	}
	if got := trail.Chain(a.ID); len(got) != 2 {
		t.Errorf("Chain(a) = %s, want a and b once each", actions(got))
	}
	if got := trail.Chain(self.ID); len(got) != 1 {
		t.Errorf("Chain(self-answering) = %s, want it once", actions(got))
	}
}
