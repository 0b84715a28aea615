package participant

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLedgerRefusesAJobRunTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "jobs-run.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := l.Record("n1", "job-aaaaaaaaaaaa", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.Record("n1", "job-aaaaaaaaaaaa", now, now.Add(time.Minute)); err != nil {
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
	err = l.Record("n1", "job-bbbbbbbbbbbb", now, now.Add(time.Minute))
	if !errors.Is(err, ErrReplayedJob) || !strings.Contains(err.Error(), "job-aaaaaaaaaaaa") {
		t.Fatalf("replayed under a new id: %v", err)
	}
	if err := os.WriteFile(path, []byte("not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a corrupt ledger opened: %v", err)
	}
}
