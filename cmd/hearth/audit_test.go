package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
)

const auditProject = `api_version: 1
name: audit-project
server:
  name: server
  org: coordinator
  hosts: [localhost, 127.0.0.1]
  leaf_port: 7422
  client_port: 4222
sites:
  - name: site-1
    org: hospital-a
  - name: site-2
    org: hospital-b
admins:
  - name: admin@coordinator.org
    org: coordinator
    role: project_admin
`

// auditKits provisions a project and returns the kits of the server and
// of site-1 and site-2.
func auditKits(t *testing.T) (server, site1, site2 string) {
	t.Helper()
	p, err := provision.ParseProject([]byte(auditProject))
	if err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(t.TempDir(), "ws")
	if _, err := provision.Provision(p, ws, []byte("a long enough passphrase"), policies.Defaults(), time.Now()); err != nil {
		t.Fatal(err)
	}
	return provision.KitDir(ws, "server"), provision.KitDir(ws, "site-1"), provision.KitDir(ws, "site-2")
}

// auditLogPath is where hearth server and hearth site keep a kit's log.
func auditLogPath(dir string) string { return filepath.Join(dir, kit.StateDirName, auditFile) }

// openKitLog opens a kit's audit log with the kit's own key, as openAudit
// does for hearth server and hearth site.
func openKitLog(t *testing.T, dir string) *auditor.Log {
	t.Helper()
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.StateDir(); err != nil {
		t.Fatal(err)
	}
	l, err := auditor.Open(auditLogPath(dir), k.Config.Name, k.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// playJob writes, with each kit's real log and key, what the coordinator
// and a participant record for a one-round job (the actions and PeerEvent
// links of actors/coordinator and actors/participant), and returns the id
// of the server's task.sent.
func playJob(t *testing.T, serverDir, siteDir, job string) string {
	t.Helper()
	server, site := openKitLog(t, serverDir), openKitLog(t, siteDir)
	siteName := filepath.Base(siteDir)
	add := func(l *auditor.Log, e auditor.Event) string {
		t.Helper()
		e.JobID = job
		r, err := l.Append(e)
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	started := add(server, auditor.Event{Action: auditor.ActionJobStarted})
	received := add(site, auditor.Event{Action: "job.received", Peer: "server", PeerEvent: started})
	joined := add(site, auditor.Event{Action: "job.joined", Peer: "server", PeerEvent: received})
	add(server, auditor.Event{Action: "site.joined", Peer: siteName, PeerEvent: joined})
	sent := add(server, auditor.Event{Action: auditor.ActionTaskSent, Round: 1, Peer: siteName})
	taskReceived := add(site, auditor.Event{Action: auditor.ActionTaskReceived, Round: 1, Peer: "server", PeerEvent: sent})
	executed := add(site, auditor.Event{Action: auditor.ActionTaskExecuted, Round: 1, PeerEvent: taskReceived})
	result := add(site, auditor.Event{Action: auditor.ActionResultSent, Round: 1, Peer: "server", PeerEvent: executed})
	add(server, auditor.Event{Action: auditor.ActionResultReceived, Round: 1, Peer: siteName, PeerEvent: result})
	add(server, auditor.Event{Action: auditor.ActionRoundClosed, Round: 1})
	add(server, auditor.Event{Action: auditor.ActionJobFinished})
	for _, l := range []*auditor.Log{server, site} {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return sent
}

// editLines rewrites a log file's lines (without newlines) as edit says:
// an editor of the file, without the key.
func editLines(t *testing.T, path string, edit func([][]byte) [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := edit(bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")))
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// resign replaces a kit's log and head with a log signed with the kit's
// own key: its first keep lines copied as they are, the rest of its events
// appended afresh as edit changes them. That is what an attacker who holds
// the key does; the result verifies on its own.
func resign(t *testing.T, dir string, keep int, edit func([]auditor.Event) []auditor.Event) {
	t.Helper()
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(auditLogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := auditor.Verify(bytes.NewReader(data), k.Cert.PublicKey.(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var events []auditor.Event
	for _, r := range recs {
		events = append(events, r.Event)
	}
	events = edit(events)
	forged := filepath.Join(dir, kit.StateDirName, "forged.jsonl")
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(forged, bytes.Join(lines[:keep], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if keep > 0 {
		if _, err := auditor.AdoptHead(forged, k.Config.Name, k.Key); err != nil {
			t.Fatal(err)
		}
	}
	l, err := auditor.Open(forged, k.Config.Name, k.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events[keep:] {
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{forged, auditLogPath(dir)}, {auditor.HeadPath(forged), auditor.HeadPath(auditLogPath(dir))}} {
		if err := os.Rename(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	serverKit, siteKit, _ := auditKits(t)
	siteLog := auditLogPath(siteKit)
	tests := []struct {
		name   string
		tamper func(t *testing.T)
		kits   []string
		want   []string // in stdout
		clean  bool
	}{
		{name: "clean pair", kits: []string{siteKit, serverKit}, clean: true,
			want: []string{"anchors: 4 checked between 2 logs", "clean: no sign of tampering"}},
		{name: "changed record", kits: []string{siteKit, serverKit},
			want: []string{"FINDING site-1 seq 2: changed: content does not match its hash"},
			tamper: func(t *testing.T) {
				editLines(t, siteLog, func(ls [][]byte) [][]byte {
					ls[1] = bytes.Replace(ls[1], []byte(`"job.joined"`), []byte(`"job.refused"`), 1)
					return ls
				})
			}},
		{name: "removed record", kits: []string{siteKit, serverKit},
			want: []string{"FINDING site-1 seq 3: removed: seq 4 where 3 was expected"},
			tamper: func(t *testing.T) {
				editLines(t, siteLog, func(ls [][]byte) [][]byte { return append(ls[:2:2], ls[3:]...) })
			}},
		{name: "two records swapped", kits: []string{siteKit, serverKit},
			want: []string{"FINDING site-1 seq 3: reordered: records out of order"},
			tamper: func(t *testing.T) {
				editLines(t, siteLog, func(ls [][]byte) [][]byte {
					ls[2], ls[3] = ls[3], ls[2]
					return ls
				})
			}},
		{name: "truncated log", kits: []string{siteKit, serverKit},
			want: []string{"FINDING site-1 seq 4: truncated: the head file says 5 record(s)",
				"FINDING site-1 seq 5: truncated: server's record 4 anchors site-1:5:"},
			tamper: func(t *testing.T) {
				editLines(t, siteLog, func(ls [][]byte) [][]byte { return ls[:3] })
			}},
		{name: "deleted log", kits: []string{siteKit},
			want: []string{"FINDING site-1: missing log: no audit log audit.jsonl, but its head file says 5 record(s) were written"},
			tamper: func(t *testing.T) {
				if err := os.Remove(siteLog); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "log and head deleted, server kit given", kits: []string{siteKit, serverKit},
			want: []string{"FINDING site-1: missing log: no audit log audit.jsonl"},
			tamper: func(t *testing.T) {
				os.Remove(siteLog)
				os.Remove(auditor.HeadPath(siteLog))
			}},
		{name: "re-signed from scratch with the kit's own key, verified alone", kits: []string{siteKit}, clean: true,
			want:   []string{"anchors: none checked (no peer kits given", "clean"},
			tamper: func(t *testing.T) { resign(t, siteKit, 0, noteOnExecuted) }},
		{name: "re-signed from scratch with the kit's own key, verified with the server's", kits: []string{siteKit, serverKit},
			want:   []string{"FINDING site-1 seq 2: anchor mismatch: server's record 2 anchors site-1:2:", "(2 of server's anchors disagree)"},
			tamper: func(t *testing.T) { resign(t, siteKit, 0, noteOnExecuted) }},
		{name: "re-signed after its first records with the kit's own key", kits: []string{siteKit, serverKit},
			want: []string{"FINDING site-1 seq 5: anchor mismatch: server's record 4 anchors site-1:5:",
				"the anchor of seq 2 matches, so the change lies in records 2-4"},
			tamper: func(t *testing.T) { resign(t, siteKit, 2, noteOnExecuted) }},
		{name: "server's log re-signed, caught by the site's anchors", kits: []string{serverKit, siteKit},
			want: []string{"FINDING server seq 3: anchor mismatch: site-1's record 3 anchors server:3:",
				"the anchor of seq 1 matches, so the change lies in records 1-2"},
			tamper: func(t *testing.T) {
				resign(t, serverKit, 1, func(es []auditor.Event) []auditor.Event {
					es[1].PeerEvent = "" // site.joined no longer answers the site's join
					return es
				})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{serverKit, siteKit} {
				if err := os.RemoveAll(filepath.Join(k, kit.StateDirName)); err != nil {
					t.Fatal(err)
				}
			}
			playJob(t, serverKit, siteKit, "job-1")
			if tt.tamper != nil {
				tt.tamper(t)
			}
			out, _, err := runHearth(t, nil, append([]string{"audit", "verify"}, tt.kits...)...)
			if tt.clean != (err == nil) {
				t.Errorf("audit verify: %v; want clean=%v\n%s", err, tt.clean, out)
			}
			if err != nil && (!errors.Is(err, errFindings) || exitCode(err) != 1) {
				t.Errorf("audit verify: %v (exit %d), want errFindings and exit 1", err, exitCode(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.clean && strings.Contains(out, "FINDING") {
				t.Errorf("clean run prints findings:\n%s", out)
			}

			jsonOut, _, jsonErr := runHearth(t, nil, append([]string{"audit", "verify", "--json"}, tt.kits...)...)
			var rep verifyReport
			if err := json.Unmarshal([]byte(jsonOut), &rep); err != nil {
				t.Fatalf("--json output %q: %v", jsonOut, err)
			}
			if rep.Clean != tt.clean || (jsonErr == nil) != tt.clean || rep.Clean != (len(rep.Findings) == 0) {
				t.Errorf("--json: clean %v, %d finding(s), err %v; want clean=%v", rep.Clean, len(rep.Findings), jsonErr, tt.clean)
			}
		})
	}
}

// noteOnExecuted changes a site's task.executed record (its fourth).
func noteOnExecuted(es []auditor.Event) []auditor.Event {
	es[3].Detail = map[string]string{"note": "rewritten"}
	return es
}

func TestAuditVerifyRefusesBadKits(t *testing.T) {
	serverKit, siteKit, _ := auditKits(t)
	otherServer, _, _ := auditKits(t) // another project, another root
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no kit", []string{"audit", "verify"}, "want at least 1 argument"},
		{"no subcommand", []string{"audit"}, "verify, trace or adopt"},
		{"not a kit", []string{"audit", "verify", t.TempDir()}, "cert.pem"},
		{"kits of two projects", []string{"audit", "verify", siteKit, otherServer}, "has another project root"},
		{"one kit twice", []string{"audit", "verify", siteKit, siteKit}, "are both of site-1"},
		{"trace of a malformed id", []string{"audit", "trace", "server:1:\x1b[2J", serverKit}, `want 16 lowercase hex digits`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runHearth(t, nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%q: %v, want an error saying %q", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), "\x1b") {
				t.Errorf("error carries a raw escape: %q", err)
			}
		})
	}
}

func TestAuditTrace(t *testing.T) {
	serverKit, siteKit, _ := auditKits(t)
	const hostileJob = "job-1\x1b[2J\nserver 1 forged.row"
	sent := playJob(t, serverKit, siteKit, hostileJob)

	out, _, err := runHearth(t, nil, "audit", "trace", sent, serverKit, siteKit)
	if err != nil {
		t.Fatalf("audit trace: %v\n%s", err, out)
	}
	if strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("trace printed a raw control character:\n%q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{"server task.sent", "site-1 task.received", "site-1 task.executed", "site-1 result.sent", "server result.received"}
	if len(lines) != len(want)+1 {
		t.Fatalf("trace has %d lines, want a header and %d rows:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		f := strings.Fields(lines[i+1])
		if got := f[0] + " " + f[3]; got != w {
			t.Errorf("row %d: %s, want %s\n%s", i+1, got, w, out)
		}
		if !strings.Contains(lines[i+1], `"job-1\x1b[2J\nserver 1 forged.row"`) {
			t.Errorf("row %d does not show the job name escaped and quoted: %s", i+1, lines[i+1])
		}
	}

	out, _, err = runHearth(t, nil, "audit", "trace", "--json", sent, siteKit, serverKit)
	if err != nil {
		t.Fatal(err)
	}
	var rows []traceRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if len(rows) != len(want) || rows[0].ID != sent || rows[1].PeerEvent != sent || rows[4].PeerEvent != rows[3].ID || rows[0].Job != hostileJob {
		t.Errorf("--json rows %+v do not follow the task from %s", rows, sent)
	}

	// A tampered log: the trace still prints what verified, and fails.
	editLines(t, auditLogPath(siteKit), func(ls [][]byte) [][]byte { return ls[:4] })
	out, stderr, err := runHearth(t, nil, "audit", "trace", sent, serverKit, siteKit)
	if !errors.Is(err, errFindings) || !strings.Contains(stderr, "warning: site-1: truncated") || !strings.Contains(out, "task.executed") {
		t.Errorf("trace over a cut log: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	if _, _, err := runHearth(t, nil, "audit", "trace", "site-2:1:0123456789abcdef", serverKit); err == nil || !strings.Contains(err.Error(), "in none of the 1 log(s)") {
		t.Errorf("trace of an unknown event: %v", err)
	}
}

func TestPrintableAndField(t *testing.T) {
	tests := []struct{ in, printable, field string }{
		{"site-1", "site-1", "site-1"},
		{"", "", "-"},
		{"a b", "a b", `"a b"`},
		{"red\x1b[31m", `red\x1b[31m`, `"red\x1b[31m"`},
		{"two\nlines", `two\nlines`, `"two\nlines"`},
		{"bidi\u202eevil", `bidi\u202eevil`, `"bidi\u202eevil"`},
		{"bad\xffutf8", `bad\xffutf8`, `"bad\xffutf8"`},
		{`back\slash`, `back\\slash`, `"back\\slash"`},
		{"café", "café", "café"},
	}
	for _, tt := range tests {
		t.Run(tt.printable, func(t *testing.T) {
			if got := termText(tt.in); got != tt.printable {
				t.Errorf("termText(%q) = %s, want %s", tt.in, got, tt.printable)
			}
			if got := field(tt.in); got != tt.field {
				t.Errorf("field(%q) = %s, want %s", tt.in, got, tt.field)
			}
		})
	}
}
