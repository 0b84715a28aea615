package participant

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// optdigitsDir is a site's data folder holding optdigits' train, val and
// test splits (val and test both the UCI test file).
func optdigitsDir(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "optdigits"), 0o700); err != nil {
		t.Fatal(err)
	}
	train, test, err := dataset.Load("optdigits")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*dataset.Set{"train": train, "val": test, "test": test} {
		f, err := os.Create(filepath.Join(data, "optdigits", name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return data
}

// testSite is site-1's participant actor on a test project, spoken to as
// the server would, with the project's admin to sign its jobs.
type testSite struct {
	system *actor.ActorSystem
	pid    *actor.PID
	admin  *pkitest.Participant
	audit  *records
}

// startTestSite runs site-1's participant with cfg, whose identity,
// trust, ledger and signer it sets, and policy (allow all), audit, data
// folder (optdigits), bridge (one that sends nothing) and logger it fills
// in where unset.
func startTestSite(t *testing.T, cfg Config) *testSite {
	t.Helper()
	proj := pkitest.New(t)
	s := &testSite{admin: proj.Issue(t, "admin@x", "org", pki.KindAdmin), audit: &records{}}
	site := proj.Issue(t, "site-1", "org", pki.KindSite)
	signer, err := envelope.NewSigner(site.Cert, site.Key)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Self, cfg.Trust, cfg.Signer, cfg.Ledger = site.Identity, proj.Trust, signer, ledger
	if cfg.Policy == nil {
		cfg.Policy = allowAll{}
	}
	if cfg.Audit == nil {
		cfg.Audit = s.audit
	}
	if cfg.DataDir == "" {
		cfg.DataDir = optdigitsDir(t)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(s.system.Shutdown)
	if cfg.Bridge == nil { // a bridge that sends nothing: no message here leaves the site
		cfg.Bridge = s.system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.pid = s.system.Root.Spawn(p.Props())
	t.Cleanup(func() { s.system.Root.Stop(s.pid) })
	return s
}

// fromServer is the server's origin for a message of jobID.
func fromServer(jobID string) bridge.Origin {
	return bridge.Origin{Sender: pki.Identity{Name: "server", Kind: pki.KindServer}, JobID: jobID}
}

// ask sends msg to the site as the server's request for jobID and returns
// the answer.
func (s *testSite) ask(t *testing.T, jobID string, msg any) any {
	t.Helper()
	f := actor.NewFuture(s.system, 30*time.Second)
	s.system.Root.Send(s.pid, bridge.Delivered(fromServer(jobID), msg, f.PID()))
	res, err := f.Result()
	if err != nil {
		t.Fatal(err)
	}
	return res
}
