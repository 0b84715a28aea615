package participant

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/job"
)

func TestLedgerRefusesAJobRunTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "jobs-run.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := l.Record("n1", "job-aaaaaaaaaaaa", "fl_lead", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.Record("n1", "job-aaaaaaaaaaaa", "fl_lead", now, now.Add(time.Minute)); err != nil {
		t.Fatalf("the same job resumed: %v", err)
	}
	l.Close()
	// After a restart of the site, the record is still there.
	l, err = OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Known("n1", "job-aaaaaaaaaaaa") || l.Known("n1", "job-bbbbbbbbbbbb") {
		t.Fatal("ledger lost or confused its record")
	}
	if r := l.RoleOf("n1"); r != "fl_lead" {
		t.Fatalf("the role the submitter was admitted with, after a restart: %q, want fl_lead", r)
	}
	if err := l.Unused("n1"); !errors.Is(err, ErrReplayedJob) || l.Unused("n2") != nil {
		t.Fatalf("Unused: %v, %v", err, l.Unused("n2"))
	}
	err = l.Record("n1", "job-bbbbbbbbbbbb", "lead", now, now.Add(time.Minute))
	if !errors.Is(err, ErrReplayedJob) || !strings.Contains(err.Error(), "job-aaaaaaaaaaaa") {
		t.Fatalf("replayed under a new id: %v", err)
	}
	if err := l.End("n1", "job-aaaaaaaaaaaa"); err != nil || !l.Ended("n1") || l.Ended("n2") {
		t.Fatalf("End: %v, ended %v %v", err, l.Ended("n1"), l.Ended("n2"))
	}
	l.Close()
	if l, err = OpenLedger(path); err != nil || !l.Ended("n1") || !l.Known("n1", "job-aaaaaaaaaaaa") {
		t.Fatalf("after a restart the ended job is not remembered: %v", err)
	}
	if err := l.Record("n3", strings.Repeat("x", maxLedgerLine), "", now, now); err == nil {
		t.Fatal("an entry the ledger could not read back was written")
	}
	l.Close()
	if err := os.WriteFile(path, []byte("not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a corrupt ledger opened: %v", err)
	}
}

func TestSiteTrainsEachRoundOnce(t *testing.T) {
	j := &joined{manifest: &job.Manifest{Rounds: 3}}
	if err := j.beginRound(1); err != nil {
		t.Fatal(err)
	}
	if err := j.beginRound(2); err == nil || !strings.Contains(err.Error(), "while round 1 is training") {
		t.Fatalf("a second round while one trains: %v", err)
	}
	j.endRound()
	for _, tc := range []struct {
		round int64
		want  string
	}{{1, "already trained"}, {0, "not in the job's 1..3"}, {4, "not in the job's 1..3"}} {
		if err := j.beginRound(tc.round); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("round %d: %v, want %q", tc.round, err, tc.want)
		}
	}
	if err := j.beginRound(3); err != nil {
		t.Fatalf("a later round: %v", err)
	}
	if err := j.beginEvaluation(); err != nil {
		t.Fatal(err)
	}
	if err := j.beginEvaluation(); err == nil {
		t.Fatal("evaluated twice")
	}
}

// TestLedgerKeepsWhatAJobSpent: each release's privacy cost survives a
// restart of the site, so that a re-joined job starts from what it spent.
func TestLedgerKeepsWhatAJobSpent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs-run.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := l.Record("n1", "job-aaaaaaaaaaaa", "lead", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	spends := []Spend{{SamplingRate: 0.06, NoiseMultiplier: 1.3, Steps: 30}, {Pure: 0.5}}
	for _, s := range spends {
		if err := l.RecordSpend("n1", "job-aaaaaaaaaaaa", s); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l, err = OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Spent("n1"); !slices.Equal(got, spends) || !l.Known("n1", "job-aaaaaaaaaaaa") {
		t.Fatalf("after a restart the ledger holds %v (known %v), want %v", got, l.Known("n1", "job-aaaaaaaaaaaa"), spends)
	}
	if got := l.Spent("n2"); len(got) != 0 {
		t.Fatalf("another job's spend: %v", got)
	}
}
