// Package auditor keeps a participant's audit log: every job event and
// admin command a Hearth process (the server, each site) sees, written so
// that one action can be followed across processes and so that any change
// to the log afterwards is detected.
//
// # Records and event ids
//
// Callers append an Event; the log stores it as a Record with a sequence
// number (1, 2, 3, ... per log), a time, the writing participant and an
// event id of the form
//
//	<participant>:<seq>:<16 hex digits>
//
// for example "site-1:42:9f2c4e1ab07d3358". Participant names cannot
// contain ':' (pki.ValidName), so the id parses back into its parts
// (ParseID): it says whose log holds the record and where. A record
// answering another participant's record carries that record's id in
// PeerEvent; Link and Trail.Chain follow these references across logs.
//
// # Anchors: an event id commits to its log's history
//
// The 16 hex digits of record N's id (N > 1) are the first 16 hex digits
// of record N-1's hash, which covers, through Prev, the whole chain before
// it; Verify refuses a record whose id does not commit so. Record 1 has no
// history and carries 64 random bits, so that a log started afresh never
// repeats ids. Every answer between the server and a site carries the
// sender's newest event id (JobJoined.audit_event, TrainResult.audit_event,
// TrainTask.audit_event, ...), and the receiver records it as PeerEvent, in
// its own log, signed with its own key. So each peer holds anchors of the
// writer's log: "record N exists, with this id, after a history whose hash
// begins so". A log that is later truncated below an anchor, edited before
// one, or entirely rewritten and re-signed with the writer's own key no
// longer matches the anchors in its peers' logs; CrossCheck finds them.
// What an anchor does not cover: the content of the anchored record N
// itself (the next anchor covers it), and records written after the newest
// anchor a peer holds. Matching a rewritten history to a 64-bit prefix
// takes about 2^64 hash evaluations per anchor.
//
// # The head file
//
// Beside the log ("audit.jsonl" -> "audit.head", HeadPath) a Log keeps its
// head: the newest record's sequence number and hash, signed with the
// participant's key, written after each fsync of the log (and fsynced
// itself: one more fsync per group commit), so that the head never runs
// ahead of the records on disk. The file has two slots written in turn in
// place; a crash that tears one leaves the other, one fsync older, and the
// newest valid slot counts. So a cut of the records of the newest fsync
// alone, with the newest slot destroyed, passes for a crash; anything
// deeper is refused. Open refuses a log shorter than its
// head (ErrTruncated: records cut from the end), a log deleted while its
// head remains (ErrTruncated), a head whose record differs in the log
// (ErrTampered), and a non-empty log without a head (ErrNoHead: the head
// was deleted to hide a cut). This defends against an editor of the state
// folder without the key, and against mistakes (a log restored from an old
// backup). It does not defend against whoever holds the participant's
// key, nor against one who deletes or rolls back both files together:
// such a writer can rewrite log and head consistently, and only the
// anchors in peers' logs show it.
//
// # File format and tamper evidence
//
// A log is a JSON Lines file (mode 0600), one record per line, each line
// ending in '\n'. Each record's Hash is the hex SHA-256 of its canonical
// encoding (the line as written, without "hash" and "sig"; see canonical in
// record.go); Prev is the previous record's Hash, so the records form a
// chain. Every record is signed: Sig is the base64 Ed25519 signature, by
// the participant's key, of "hearth.audit.v1\x00" followed by the 32 hash
// bytes; the prefix keeps an audit signature from ever passing for an
// envelope signature made with the same key. Signing a record costs
// about 15 µs, far below the fsync that follows it, and makes every prefix
// of a log verifiable on its own (no unsigned window after the last
// checkpoint). Lines must be byte-for-byte in the canonical encoding, so
// even a change that leaves the meaning intact is refused.
//
// Verify checks a log from its first line: the encoding, the participant,
// the sequence, the chain, the id's commitment, the hash and the signature
// of every record. A hash chain cannot show that records were cut from the
// end of a log: the head file and the peers' anchors do (Check,
// CrossCheck; `hearth audit verify` runs both).
//
// # Durability
//
// Append returns once the record is on disk: it writes the line with one
// write(2) (O_APPEND) and then fsyncs. Concurrent Appends share fsyncs
// (group commit): whoever syncs covers every line written so far, so no
// Append waits for more than two fsyncs and no acknowledged record is ever
// lost. A failed write or fsync leaves the log refusing further appends,
// since the state of the file is then unknown.
//
// # Torn final line
//
// A crash in the middle of a write leaves a final line without its '\n'.
// Verify reports it distinctly (ErrTornTail, not ErrTampered) and Open
// refuses to continue such a log: truncating it silently would let an
// editor of the file remove evidence under cover of a "crash". Repair
// verifies the complete lines, moves the torn bytes to "<path>.torn" for
// inspection and truncates the log; run it deliberately, then Open.
//
// # The actor
//
// Actor serializes appends from other actors (messages Append and
// Appended) so that they never block on disk. The log is durable state kept
// outside the actor, which a supervised restart would otherwise lose.
package auditor

import (
	"errors"
	"fmt"
)

// Event is one audit record as appended by callers.
type Event struct {
	// Action says what happened, e.g. ActionTaskSent; it must not be empty.
	Action string `json:"action"`
	// JobID is the job concerned, if any.
	JobID string `json:"job,omitempty"`
	// Round is the training round concerned, if any.
	Round int64 `json:"round,omitempty"`
	// Peer is the other participant, if any (e.g. the sender of a task).
	Peer string `json:"peer,omitempty"`
	// PeerEvent is the id of the record this one answers, usually in the
	// peer's log (a task's "sent" record for its "received" record); empty
	// if none.
	PeerEvent string `json:"peer_event,omitempty"`
	// Detail holds a few small key/values, e.g. {"reason": "..."}.
	Detail map[string]string `json:"detail,omitempty"`
}

// The actions Hearth records. Action is free text; these are the names the
// platform uses, so that traces read the same everywhere.
const (
	ActionJobSubmitted   = "job.submitted"
	ActionJobRefused     = "job.refused"
	ActionJobStarted     = "job.started"
	ActionJobFinished    = "job.finished"
	ActionRoundClosed    = "round.closed"
	ActionTaskSent       = "task.sent"
	ActionTaskReceived   = "task.received"
	ActionTaskExecuted   = "task.executed"
	ActionResultSent     = "result.sent"
	ActionResultReceived = "result.received"
	ActionAdminCommand   = "admin.command"
)

// MaxRecordBytes bounds one line of a log, newline included. Append refuses
// larger events; Verify refuses longer lines.
const MaxRecordBytes = 64 << 10

// Errors that callers tell apart with errors.Is.
var (
	// ErrTampered is wrapped by every VerifyError for a log whose content
	// fails verification.
	ErrTampered = errors.New("audit log failed verification")
	// ErrTornTail is wrapped by the VerifyError for a log whose final line
	// lacks its newline: a write interrupted by a crash. See Repair.
	ErrTornTail = errors.New("audit log ends in a torn line")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit log closed")
	// ErrBroken is returned by Append after a failed write or fsync.
	ErrBroken = errors.New("audit log unusable after a failed write")
	// ErrDangling is wrapped by a LinkError that lists references to
	// records no log holds.
	ErrDangling = errors.New("audit records refer to missing records")
	// ErrDuplicate is wrapped by a LinkError that lists ids found in more
	// than one record.
	ErrDuplicate = errors.New("audit event id used twice")
	// ErrTruncated is wrapped by Open's error for a log that holds fewer
	// records than its head file says were written, or none at all.
	ErrTruncated = errors.New("audit log is missing records its head recorded")
	// ErrNoHead is wrapped by Open's error for a non-empty log whose head
	// file is missing.
	ErrNoHead = errors.New("audit log has no head file")
)

// Problem names what kind of tampering a finding shows. The list only
// grows.
type Problem string

// The problems Verify, Check and CrossCheck report.
const (
	// ProblemChanged: a record's content, hash, id, chain link or
	// signature is not as written.
	ProblemChanged Problem = "changed"
	// ProblemRemoved: records are missing before the end of the log.
	ProblemRemoved Problem = "removed"
	// ProblemReordered: records are out of order, repeated or moved back.
	ProblemReordered Problem = "reordered"
	// ProblemTruncated: records are missing at the end of the log (its head
	// file or a peer's anchor names a record the log lacks).
	ProblemTruncated Problem = "truncated"
	// ProblemTorn: the final line is torn, as a crash leaves it (Repair).
	ProblemTorn Problem = "torn"
	// ProblemForeign: the log was written by another participant or
	// signed by another key.
	ProblemForeign Problem = "foreign"
	// ProblemMissingLog: there is no log where one was expected.
	ProblemMissingLog Problem = "missing log"
	// ProblemMissingHead: a non-empty log has no head file.
	ProblemMissingHead Problem = "missing head"
	// ProblemBadHead: the head file is malformed, or its signature fails.
	ProblemBadHead Problem = "bad head"
	// ProblemAnchor: a peer's log holds an anchor (a PeerEvent naming a
	// record of this log) that this log does not match: the log was
	// rewritten and re-signed, or the peer recorded a false id.
	ProblemAnchor Problem = "anchor mismatch"
)

// VerifyError is a log that failed verification: the first bad line
// (1-based) and why. It unwraps to ErrTampered or ErrTornTail.
type VerifyError struct {
	Line    int
	Problem Problem // what kind of tampering the line shows
	Reason  string
	Err     error // ErrTampered or ErrTornTail
}

// Error says "audit log line N: REASON".
func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit log line %d: %s", e.Line, e.Reason)
}

// Unwrap returns Err, so that errors.Is(err, ErrTampered) works.
func (e *VerifyError) Unwrap() error { return e.Err }
