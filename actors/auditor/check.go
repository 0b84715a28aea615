package auditor

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Finding is one sign of tampering that Check or CrossCheck found.
type Finding struct {
	// Participant is whose log the finding is about.
	Participant string `json:"participant"`
	// Seq is the record concerned (the first bad one); 0 for the log as a
	// whole.
	Seq uint64 `json:"seq,omitempty"`
	// Problem is what kind of tampering it shows.
	Problem Problem `json:"problem"`
	// Detail says what was found, naming records and files.
	Detail string `json:"detail"`
}

// Checked is one log as Check found it.
type Checked struct {
	// Participant is whose log it is.
	Participant string
	// Path is the log file's path.
	Path string
	// Records are the records that verified, from the first: all of them
	// when the log verified to its end.
	Records []Record
	// Head is the head file's content, if HasHead.
	Head    Head
	HasHead bool
	// Whole is true when every line of the log verified (the head file
	// may still have findings): anchors beyond its end then show a cut.
	Whole bool
	// Findings are the log's own findings, in order.
	Findings []Finding
}

// Check verifies the log at path, written by participant with pub's
// private half, and its head file (HeadPath): every line as Verify checks
// it, then the head against the log. Tampering is returned as findings
// (a missing log is ProblemMissingLog), never as an error; the error is
// for what stops the check itself (an unreadable file, a bad key). Check
// takes no lock: run it on a copy, or on the log of a stopped process, or
// accept that records appended meanwhile may be missed.
func Check(path, participant string, pub ed25519.PublicKey) (*Checked, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit log %s: public key is %d bytes, want an Ed25519 key (%d)", path, len(pub), ed25519.PublicKeySize)
	}
	c := &Checked{Participant: participant, Path: path}
	add := func(seq uint64, p Problem, format string, args ...any) {
		c.Findings = append(c.Findings, Finding{Participant: participant, Seq: seq, Problem: p, Detail: fmt.Sprintf(format, args...)})
	}
	headPath := HeadPath(path)
	head, hasHead, err := ReadHead(headPath, pub)
	switch {
	case err != nil && hasHead:
		add(0, ProblemBadHead, "%v", err)
	case err != nil:
		return nil, err
	case hasHead && head.Participant != participant:
		add(0, ProblemBadHead, "head file %s is of %q, not %q", filepath.Base(headPath), head.Participant, participant)
	default:
		c.Head, c.HasHead = head, hasHead
	}

	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if c.HasHead && head.Seq > 0 {
			add(0, ProblemMissingLog, "no audit log %s, but its head file says %d record(s) were written: the log was deleted", filepath.Base(path), head.Seq)
		} else {
			add(0, ProblemMissingLog, "no audit log %s", filepath.Base(path))
		}
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	_, err = walk(f, pub, participant, func(r Record) { c.Records = append(c.Records, r) })
	var ve *VerifyError
	switch {
	case errors.As(err, &ve):
		add(uint64(ve.Line), ve.Problem, "%s", ve.Reason)
	case err != nil:
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	default:
		c.Whole = true
	}

	n := uint64(len(c.Records))
	switch {
	case !c.HasHead && n > 0 && len(c.Findings) == 0:
		add(0, ProblemMissingHead, "the log holds %d record(s) but there is no head file %s: it was deleted, perhaps to hide records cut from the end",
			n, filepath.Base(headPath))
	case !c.HasHead:
	case head.Seq > n && c.Whole:
		add(n+1, ProblemTruncated, "the head file says %d record(s) were written, the log ends at seq %d: records %d-%d were cut from its end",
			head.Seq, n, n+1, head.Seq)
	case head.Seq > 0 && head.Seq <= n && c.Records[head.Seq-1].Hash != head.Hash:
		add(head.Seq, ProblemChanged, "record %d is not the one the head file recorded (hash %.16s, head %.16s): the log was rewritten",
			head.Seq, c.Records[head.Seq-1].Hash, head.Hash)
	}
	return c, nil
}

// CrossCheck compares the anchors that logs hold of each other: for every
// record in one log whose PeerEvent names another participant whose log
// is given, the other log must hold that very id at that sequence number.
// Since an id commits to the history before it, a log whose records were
// changed, removed, reordered or re-signed before an anchor disagrees with
// it (ProblemAnchor), and a log that ends before an anchored record was
// cut (ProblemTruncated). A PeerEvent from a peer (Record.Peer) that is not
// an event id at all is a ProblemAnchor of that peer: it sent a false id.
// It reports at most one finding of each kind per pair of logs, at the
// first anchor that disagrees, and returns the number of anchors checked.
// Anchors beyond the verified records of a log that failed Check are not
// checked: Check's finding already covers them.
func CrossCheck(logs []*Checked) (findings []Finding, anchors int) {
	byName := make(map[string]*Checked, len(logs))
	for _, l := range logs {
		byName[l.Participant] = l
	}
	type pair struct{ from, of string }
	type result struct {
		first    *Finding // the lowest anchored seq that disagrees
		disagree int
		matched  []uint64 // anchored seqs that matched
		cut      *Finding // the highest anchored seq beyond the log's end
		bogus    *Finding // the first PeerEvent that is not an event id
	}
	results := map[pair]*result{}
	var order []pair
	get := func(p pair) *result {
		if r, ok := results[p]; ok {
			return r
		}
		r := &result{}
		results[p] = r
		order = append(order, p)
		return r
	}
	for _, a := range logs {
		for _, r := range a.Records {
			if r.PeerEvent == "" {
				continue
			}
			owner, seq, err := ParseID(r.PeerEvent)
			if err != nil {
				if b, ok := byName[r.Peer]; ok && b != a {
					anchors++
					if res := get(pair{a.Participant, b.Participant}); res.bogus == nil {
						res.bogus = &Finding{Participant: b.Participant, Problem: ProblemAnchor, Detail: fmt.Sprintf(
							"%s's record %d holds, as %s's event id, %q, which is not one: %v", a.Participant, r.Seq, b.Participant, r.PeerEvent, err)}
					}
				}
				continue
			}
			b, ok := byName[owner]
			if !ok || b == a {
				continue
			}
			held := uint64(len(b.Records))
			if seq > held && !b.Whole {
				continue
			}
			anchors++
			res := get(pair{a.Participant, b.Participant})
			switch {
			case seq > held:
				if res.cut == nil || seq > res.cut.Seq {
					res.cut = &Finding{Participant: b.Participant, Seq: seq, Problem: ProblemTruncated, Detail: fmt.Sprintf(
						"%s's record %d anchors %s, but %s's log ends at seq %d: records %d-%d at least were cut from its end",
						a.Participant, r.Seq, r.PeerEvent, b.Participant, held, held+1, seq)}
				}
			case b.Records[seq-1].ID != r.PeerEvent:
				res.disagree++
				if res.first == nil || seq < res.first.Seq {
					res.first = &Finding{Participant: b.Participant, Seq: seq, Problem: ProblemAnchor, Detail: fmt.Sprintf(
						"%s's record %d anchors %s, but %s's log holds %s at seq %d: its records up to seq %d were rewritten (and re-signed), or %s sent a false id",
						a.Participant, r.Seq, r.PeerEvent, b.Participant, b.Records[seq-1].ID, seq, seq, b.Participant)}
				}
			default:
				res.matched = append(res.matched, seq)
			}
		}
	}
	for _, p := range order {
		res := results[p]
		if f := res.first; f != nil {
			var below uint64 // the highest matching anchor below the first mismatch
			for _, s := range res.matched {
				if s < f.Seq {
					below = max(below, s)
				}
			}
			if below > 0 {
				f.Detail += fmt.Sprintf("; the anchor of seq %d matches, so the change lies in records %d-%d", below, below, f.Seq-1)
			}
			if res.disagree > 1 {
				f.Detail += fmt.Sprintf(" (%d of %s's anchors disagree)", res.disagree, p.from)
			}
			findings = append(findings, *f)
		}
		for _, f := range []*Finding{res.cut, res.bogus} {
			if f != nil {
				findings = append(findings, *f)
			}
		}
	}
	slices.SortStableFunc(findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Participant, y.Participant), cmp.Compare(x.Seq, y.Seq))
	})
	return findings, anchors
}
