package auditor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFindsTampering(t *testing.T) {
	_, key := newKey(t)
	tests := []struct {
		name    string
		tamper  func(t *testing.T, path string)
		problem Problem
		seq     uint64
		detail  string
	}{
		{name: "clean"},
		{name: "changed record", problem: ProblemChanged, seq: 3, detail: "does not match its hash",
			tamper: func(t *testing.T, path string) {
				ls := logLines(t, path)
				ls[2] = []byte(strings.Replace(string(ls[2]), `"round":2`, `"round":9`, 1))
				writeLines(t, path, ls)
			}},
		{name: "removed record", problem: ProblemRemoved, seq: 2, detail: "1 record(s) missing",
			tamper: func(t *testing.T, path string) {
				ls := logLines(t, path)
				writeLines(t, path, append(ls[:1:1], ls[2:]...))
			}},
		{name: "two records swapped", problem: ProblemReordered, seq: 2, detail: "out of order",
			tamper: func(t *testing.T, path string) {
				ls := logLines(t, path)
				ls[1], ls[2] = ls[2], ls[1]
				writeLines(t, path, ls)
			}},
		{name: "truncated log", problem: ProblemTruncated, seq: 4, detail: "records 4-5 were cut",
			tamper: func(t *testing.T, path string) { writeLines(t, path, logLines(t, path)[:3]) }},
		{name: "deleted log", problem: ProblemMissingLog, detail: "head file says 5 record(s) were written",
			tamper: func(t *testing.T, path string) { os.Remove(path) }},
		{name: "deleted head", problem: ProblemMissingHead, detail: "no head file audit.head",
			tamper: func(t *testing.T, path string) { os.Remove(HeadPath(path)) }},
		{name: "bad head", problem: ProblemBadHead, detail: "no valid slot: slot 1: not in the canonical encoding",
			tamper: func(t *testing.T, path string) {
				data, _ := os.ReadFile(HeadPath(path))
				for _, at := range []int{0, headSlotBytes} { // a space after '{': same size, both slots
					copy(data[at:], append([]byte("{ "), data[at+1:at+headSlotBytes-1]...))
				}
				os.WriteFile(HeadPath(path), data, 0o600)
			}},
		{name: "torn tail", problem: ProblemTorn, seq: 5, detail: "final line is torn",
			tamper: func(t *testing.T, path string) {
				data, _ := os.ReadFile(path)
				os.WriteFile(path, data[:len(data)-9], 0o600)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fiveRecords(t, t.TempDir(), key)
			if tt.tamper != nil {
				tt.tamper(t, path)
			}
			c, err := Check(path, "site-1", pubOf(key))
			if err != nil {
				t.Fatal(err)
			}
			if tt.problem == "" {
				if len(c.Findings) != 0 || !c.Whole || len(c.Records) != 5 || !c.HasHead || c.Head.Seq != 5 {
					t.Errorf("clean log: %+v", c)
				}
				return
			}
			if len(c.Findings) != 1 {
				t.Fatalf("findings %+v, want one %s", c.Findings, tt.problem)
			}
			f := c.Findings[0]
			if f.Problem != tt.problem || f.Seq != tt.seq || f.Participant != "site-1" || !strings.Contains(f.Detail, tt.detail) {
				t.Errorf("finding %+v\nwant %s at seq %d mentioning %q", f, tt.problem, tt.seq, tt.detail)
			}
		})
	}
}

// checked runs Check on a participant log of round.
func checked(t *testing.T, p *participantLog) *Checked {
	t.Helper()
	c, err := Check(p.path, p.name, pubOf(p.log.key))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rewrite replaces p's log, and its head, with a log written afresh by
// p's own key from p's events as edit changes them: what an attacker who
// holds the key does. The result verifies on its own.
func rewrite(t *testing.T, p *participantLog, edit func([]Event) []Event) {
	t.Helper()
	recs := p.records()
	p.log.Close()
	var events []Event
	for _, r := range recs {
		events = append(events, r.Event)
	}
	fresh := filepath.Join(t.TempDir(), "forged.jsonl")
	l := mustOpen(t, fresh, p.name, p.log.key)
	for _, e := range edit(events) {
		mustAppend(t, l, e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{fresh, p.path}, {HeadPath(fresh), HeadPath(p.path)}} {
		if err := os.Rename(pair[0], pair[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrossCheckFindsRewrittenLogs(t *testing.T) {
	tests := []struct {
		name    string
		edit    func([]Event) []Event // applied to site-1's events
		problem Problem
		seq     uint64
		detail  string
	}{
		{name: "clean"},
		{name: "re-signed with one record changed", problem: ProblemAnchor, seq: 3, detail: "were rewritten (and re-signed)",
			edit: func(es []Event) []Event {
				es[1].Detail = map[string]string{"note": "forged"} // task.executed
				return es
			}},
		{name: "re-signed with the tail cut", problem: ProblemTruncated, seq: 3, detail: "site-1's log ends at seq 2",
			edit: func(es []Event) []Event { return es[:2] }},
		{name: "re-signed with a record removed", problem: ProblemAnchor, seq: 3, detail: "server's record 4 anchors site-1:3:",
			edit: func(es []Event) []Event { // task.executed removed; the log went on
				return append(append(es[:1:1], es[2:]...), Event{Action: ActionJobFinished, JobID: "job-1"})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, site1, site2, _ := round(t, 0)
			if tt.edit != nil {
				rewrite(t, site1, tt.edit)
			}
			logs := []*Checked{checked(t, server), checked(t, site1), checked(t, site2)}
			for _, c := range logs {
				if len(c.Findings) != 0 {
					t.Fatalf("%s's log on its own: %+v; a key holder's rewrite verifies alone", c.Participant, c.Findings)
				}
			}
			findings, anchors := CrossCheck(logs)
			if anchors != 4 { // each site anchors its task.sent, the server each site's result.sent
				t.Errorf("%d anchors checked, want 4", anchors)
			}
			if tt.problem == "" {
				if len(findings) != 0 {
					t.Errorf("clean logs: %+v", findings)
				}
				return
			}
			if len(findings) != 1 {
				t.Fatalf("findings %+v, want one %s", findings, tt.problem)
			}
			f := findings[0]
			if f.Problem != tt.problem || f.Participant != "site-1" || f.Seq != tt.seq || !strings.Contains(f.Detail, tt.detail) {
				t.Errorf("finding %+v\nwant %s of site-1 at seq %d mentioning %q", f, tt.problem, tt.seq, tt.detail)
			}
		})
	}
}

func TestCrossCheckNamesAFalsePeerID(t *testing.T) {
	server, site1, _, _ := round(t, 0)
	// The server records whatever id site-1 sends; site-1 sent garbage.
	server.add(ActionResultReceived, "site-1", Record{ID: "site-1:\x1b[2J"})
	server.add(ActionResultReceived, "site-1", Record{ID: "site-1:99:0123456789abcdef"})
	findings, _ := CrossCheck([]*Checked{checked(t, server), checked(t, site1)})
	var problems []string
	for _, f := range findings {
		if f.Participant != "site-1" {
			t.Errorf("finding about %s: %+v", f.Participant, f)
		}
		problems = append(problems, string(f.Problem))
	}
	// The garbage was never kept as an anchor (Append refuses a peer event
	// that is no event id of the peer's); the id beyond site-1's log is.
	if got := strings.Join(problems, ","); got != "truncated" {
		t.Errorf("findings %+v, want a cut (seq 99)", findings)
	}
}
