package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

// errFindings is returned by audit verify and audit trace when a log shows
// tampering, so that the exit status is non-zero.
var errFindings = errors.New("audit logs failed verification")

func runAudit(_ context.Context, c *cli, args []string) error {
	return runSubcommand(c, "audit", args, auditUsage, []subcommand{
		{"verify", auditVerify}, {"trace", auditTrace}, {"adopt", auditAdopt}})
}

func auditUsage(c *cli) {
	fmt.Fprint(c.stderr, `usage:
  hearth audit verify [--json] KIT [PEER_KIT...]   verify KIT's audit log, its head, and the anchors the logs hold of each other
  hearth audit trace  [--json] EVENT_ID KIT...     follow one action across the logs of the kits given
  hearth audit adopt  KIT                          write a head file for a log that has none (after verify with its peers)

verify and trace read KIT/state/audit.jsonl, its head KIT/state/audit.head and the key in KIT/cert.pem;
no private key is needed. Run them on the kits of stopped processes, or on copies taken together.
Exit status: 0 when clean, 1 on any finding, 2 on a usage error.
`)
}

// auditKit is what the audit commands read of a startup kit: whose log it
// is, the key that signs it, and where it lies. It needs no private key,
// so an auditor can verify copies of kits.
type auditKit struct {
	dir         string
	participant string
	pub         ed25519.PublicKey
	root        []byte // DER of rootCA.pem
	log         string // KIT/state/audit.jsonl
}

// loadAuditKit reads cert.pem and rootCA.pem of the kit in dir and checks
// that the root issued the certificate.
func loadAuditKit(dir string) (auditKit, error) {
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("startup kit %s: %w", dir, err)
		}
		return data, nil
	}
	certPEM, err := read(kit.CertFile)
	if err != nil {
		return auditKit{}, err
	}
	rootPEM, err := read(kit.RootFile)
	if err != nil {
		return auditKit{}, err
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return auditKit{}, fmt.Errorf("startup kit %s: %s: %w", dir, kit.CertFile, err)
	}
	root, err := pki.ParseCertPEM(rootPEM)
	if err != nil {
		return auditKit{}, fmt.Errorf("startup kit %s: %s: %w", dir, kit.RootFile, err)
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return auditKit{}, fmt.Errorf("startup kit %s: %s is not issued by its %s: %w", dir, kit.CertFile, kit.RootFile, err)
	}
	id, err := pki.IdentityOf(cert)
	if err != nil {
		return auditKit{}, fmt.Errorf("startup kit %s: %s: %w", dir, kit.CertFile, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return auditKit{}, fmt.Errorf("startup kit %s: %s holds no Ed25519 key", dir, kit.CertFile)
	}
	return auditKit{dir: dir, participant: id.Name, pub: pub, root: root.Raw,
		log: filepath.Join(dir, kit.StateDirName, auditFile)}, nil
}

// loadAuditKits loads every kit and checks that they belong to one
// project (one root) and name distinct participants.
func loadAuditKits(dirs []string) ([]auditKit, error) {
	var kits []auditKit
	seen := map[string]string{}
	for _, d := range dirs {
		k, err := loadAuditKit(d)
		if err != nil {
			return nil, err
		}
		if len(kits) > 0 && string(k.root) != string(kits[0].root) {
			return nil, fmt.Errorf("startup kit %s has another project root than %s: its log cannot anchor theirs", d, kits[0].dir)
		}
		if other, ok := seen[k.participant]; ok {
			return nil, fmt.Errorf("startup kits %s and %s are both of %s", other, d, k.participant)
		}
		seen[k.participant] = d
		kits = append(kits, k)
	}
	return kits, nil
}

// checkKits runs auditor.Check on every kit's log.
func checkKits(kits []auditKit) ([]*auditor.Checked, error) {
	var logs []*auditor.Checked
	for _, k := range kits {
		c, err := auditor.Check(k.log, k.participant, k.pub)
		if err != nil {
			return nil, err
		}
		logs = append(logs, c)
	}
	return logs, nil
}

// verifyReport is audit verify's --json output.
type verifyReport struct {
	Logs     []logSummary      `json:"logs"`
	Anchors  int               `json:"anchors_checked"`
	Findings []auditor.Finding `json:"findings"`
	Clean    bool              `json:"clean"`
}

type logSummary struct {
	Participant string `json:"participant"`
	Path        string `json:"path"`
	Records     int    `json:"records"`
	HeadSeq     uint64 `json:"head_seq"`
	HasHead     bool   `json:"has_head"`
}

func auditVerify(c *cli, args []string) error {
	fs := newFlags(c, "audit verify", "[--json] KIT [PEER_KIT...]")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	dirs, err := parseArgsRange(fs, args, 1, -1)
	if err != nil {
		return err
	}
	kits, err := loadAuditKits(dirs)
	if err != nil {
		return err
	}
	logs, err := checkKits(kits)
	if err != nil {
		return err
	}
	rep := verifyReport{Findings: []auditor.Finding{}}
	for _, l := range logs {
		rep.Logs = append(rep.Logs, logSummary{Participant: l.Participant, Path: l.Path, Records: len(l.Records),
			HeadSeq: l.Head.Seq, HasHead: l.HasHead})
		rep.Findings = append(rep.Findings, l.Findings...)
	}
	cross, anchors := auditor.CrossCheck(logs)
	rep.Findings = append(rep.Findings, cross...)
	rep.Anchors = anchors
	rep.Clean = len(rep.Findings) == 0

	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printVerify(c, rep, len(kits))
	}
	if !rep.Clean {
		return fmt.Errorf("%w: %d finding(s)", errFindings, len(rep.Findings))
	}
	return nil
}

func printVerify(c *cli, rep verifyReport, kits int) {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, l := range rep.Logs {
		head := "no head"
		if l.HasHead {
			head = "head at seq " + strconv.FormatUint(l.HeadSeq, 10)
		}
		fmt.Fprintf(w, "%s\t%d record(s)\t%s\t%s\n", field(l.Participant), l.Records, head, termText(l.Path))
	}
	w.Flush()
	if kits < 2 {
		fmt.Fprintln(c.stdout, "anchors: none checked (no peer kits given; a log rewritten with its own key verifies alone)")
	} else {
		fmt.Fprintf(c.stdout, "anchors: %d checked between %d logs\n", rep.Anchors, kits)
	}
	for _, f := range rep.Findings {
		where := field(f.Participant)
		if f.Seq > 0 {
			where += " seq " + strconv.FormatUint(f.Seq, 10)
		}
		fmt.Fprintf(c.stdout, "FINDING %s: %s: %s\n", where, f.Problem, termText(f.Detail))
	}
	if rep.Clean {
		fmt.Fprintln(c.stdout, "clean: no sign of tampering")
	}
}

// traceRow is one record of audit trace's --json output.
type traceRow struct {
	Participant string `json:"participant"`
	Seq         uint64 `json:"seq"`
	ID          string `json:"id"`
	Time        string `json:"time"`
	Action      string `json:"action"`
	Job         string `json:"job,omitempty"`
	Round       int64  `json:"round,omitempty"`
	Peer        string `json:"peer,omitempty"`
	PeerEvent   string `json:"peer_event,omitempty"`
}

func auditTrace(c *cli, args []string) error {
	fs := newFlags(c, "audit trace", "[--json] EVENT_ID KIT...")
	asJSON := fs.Bool("json", false, "print the chain as JSON")
	rest, err := parseArgsRange(fs, args, 2, -1)
	if err != nil {
		return err
	}
	eventID := rest[0]
	if _, _, err := auditor.ParseID(eventID); err != nil {
		return fmt.Errorf("%w: %s", errUsage, termText(err.Error()))
	}
	kits, err := loadAuditKits(rest[1:])
	if err != nil {
		return err
	}
	logs, err := checkKits(kits)
	if err != nil {
		return err
	}
	var recs [][]auditor.Record
	findings := 0
	for _, l := range logs {
		recs = append(recs, l.Records)
		for _, f := range l.Findings {
			findings++
			fmt.Fprintf(c.stderr, "warning: %s: %s: %s (the trace uses only the records before it)\n", field(f.Participant), f.Problem, termText(f.Detail))
		}
	}
	trail, _ := auditor.Link(recs...) // a dangling reference shows as a record without its cause
	chain := trail.Chain(eventID)
	if chain == nil {
		return fmt.Errorf("event %s is in none of the %d log(s) given", eventID, len(logs))
	}
	rows := make([]traceRow, len(chain))
	for i, r := range chain {
		rows[i] = traceRow{Participant: r.Participant, Seq: r.Seq, ID: r.ID, Time: r.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			Action: r.Action, Job: r.JobID, Round: r.Round, Peer: r.Peer, PeerEvent: r.PeerEvent}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PARTICIPANT\tSEQ\tTIME\tACTION\tJOB\tROUND\tPEER EVENT")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", field(r.Participant), r.Seq, r.Time, field(r.Action), field(r.Job), r.Round, field(r.PeerEvent))
		}
		w.Flush()
	}
	if findings > 0 {
		return fmt.Errorf("%w: %d finding(s); run hearth audit verify", errFindings, findings)
	}
	return nil
}

func auditAdopt(c *cli, args []string) error {
	fs := newFlags(c, "audit adopt", "KIT")
	rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	k, err := kit.Load(rest[0])
	if err != nil {
		return err
	}
	path := filepath.Join(k.Dir, kit.StateDirName, auditFile)
	h, err := auditor.AdoptHead(path, k.Config.Name, k.Key)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: %d record(s), newest %.16s\n", auditor.HeadPath(path), h.Seq, h.Hash)
	return nil
}

// field is termText(s) for a table column: "-" when empty, quoted when it
// holds a space or a quote, so that one value cannot pass for several
// columns.
func field(s string) string {
	switch {
	case s == "":
		return "-"
	case strings.ContainsAny(s, " \t\"") || termText(s) != s:
		return strconv.QuoteToGraphic(s)
	}
	return s
}
