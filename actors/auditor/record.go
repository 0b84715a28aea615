package auditor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
)

// Record is an Event as stored in a log.
type Record struct {
	// Seq is the record's position in its log: 1, 2, 3, ...
	Seq uint64
	// ID is the event id, "<participant>:<seq>:<16 hex digits>" (ParseID);
	// for every record but the first, the hex digits are the first 16 of
	// Prev, so the id commits to the log's history before it.
	ID string
	// Time is when the record was appended, in UTC.
	Time time.Time
	// Participant is who wrote the log.
	Participant string
	Event
	// Prev is the previous record's Hash ("" for the first record).
	Prev string
	// Hash is the hex SHA-256 of the record's canonical encoding: every
	// field above, as the line holds them without "hash" and "sig".
	Hash string
	// Sig is the base64 Ed25519 signature by the participant's key of
	// "hearth.audit.v1\x00" followed by the 32 bytes of Hash.
	Sig string
}

// signingContext prefixes what an audit signature covers, so that it can
// never pass for a signature made with the same key for another purpose
// (bus envelopes use "hearth.envelope.v1\x00").
const signingContext = "hearth.audit.v1\x00"

// line is a record's JSON form. Field order and names are the canonical
// encoding: encoding/json writes struct fields in declaration order and map
// keys sorted, escapes the same way every time, and omits empty optional
// fields, so a record has exactly one encoding. Only valid UTF-8 is stored
// (Append replaces invalid bytes), so the encoding round-trips.
type line struct {
	Seq         uint64            `json:"seq"`
	ID          string            `json:"id"`
	Time        string            `json:"time"` // RFC 3339, nanoseconds, UTC
	Participant string            `json:"participant"`
	Action      string            `json:"action"`
	JobID       string            `json:"job,omitempty"`
	Round       int64             `json:"round,omitempty"`
	Peer        string            `json:"peer,omitempty"`
	PeerEvent   string            `json:"peer_event,omitempty"`
	Detail      map[string]string `json:"detail,omitempty"`
	Prev        string            `json:"prev,omitempty"`
	Hash        string            `json:"hash,omitempty"`
	Sig         string            `json:"sig,omitempty"`
}

func toLine(r *Record) line {
	return line{Seq: r.Seq, ID: r.ID, Time: r.Time.UTC().Format(time.RFC3339Nano), Participant: r.Participant,
		Action: r.Action, JobID: r.JobID, Round: r.Round, Peer: r.Peer, PeerEvent: r.PeerEvent,
		Detail: r.Detail, Prev: r.Prev, Hash: r.Hash, Sig: r.Sig}
}

// canonical is the encoding that Hash covers: the line without hash and sig.
func canonical(r *Record) ([]byte, error) {
	l := toLine(r)
	l.Hash, l.Sig = "", ""
	return json.Marshal(l)
}

// encode is the full line as written, without its newline.
func encode(r *Record) ([]byte, error) {
	l := toLine(r)
	return json.Marshal(l)
}

// seal sets r.Hash and r.Sig.
func seal(r *Record, key ed25519.PrivateKey) error {
	c, err := canonical(r)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(c)
	r.Hash = hex.EncodeToString(sum[:])
	r.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signedData(sum[:])))
	return nil
}

func signedData(hash []byte) []byte {
	return append([]byte(signingContext), hash...)
}

// decode parses one line strictly: known fields only, in the canonical
// encoding byte for byte. It returns a reason on failure.
func decode(b []byte) (Record, string) {
	if len(b) == 0 {
		return Record{}, "empty line"
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Record{}, "not a valid record: " + err.Error()
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return Record{}, fmt.Sprintf("not a valid record: time %q: %v", l.Time, err)
	}
	r := Record{Seq: l.Seq, ID: l.ID, Time: t.UTC(), Participant: l.Participant,
		Event: Event{Action: l.Action, JobID: l.JobID, Round: l.Round, Peer: l.Peer,
			PeerEvent: l.PeerEvent, Detail: l.Detail},
		Prev: l.Prev, Hash: l.Hash, Sig: l.Sig}
	again, err := encode(&r)
	if err != nil || !bytes.Equal(again, b) {
		return Record{}, "not in the canonical encoding (the line was edited)"
	}
	return r, ""
}

// check verifies r's own hash and signature. It returns a reason, or ""
// if both are right; badSig says that only the signature failed.
func check(r *Record, pub ed25519.PublicKey) (reason string, badSig bool) {
	c, err := canonical(r)
	if err != nil {
		return "cannot encode: " + err.Error(), false
	}
	sum := sha256.Sum256(c)
	if r.Hash != hex.EncodeToString(sum[:]) {
		return "content does not match its hash (the record was altered)", false
	}
	sig, err := base64.StdEncoding.DecodeString(r.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "signature missing or malformed", false
	}
	if !ed25519.Verify(pub, signedData(sum[:]), sig) {
		return "signature does not verify", true
	}
	return "", false
}

// idHexLen is the number of hex digits after the sequence number in an
// event id.
const idHexLen = 16

// newID makes the event id for record seq of participant, whose previous
// record's hash is prev ("" for the first record). The id's hex part is
// the first 16 hex digits of prev, so that whoever records the id anchors
// the whole chain before it; the first record has nothing to commit to and
// gets 64 random bits, which keep a log started afresh from repeating ids.
func newID(participant string, seq uint64, prev string) (string, error) {
	tail := prev
	if prev == "" {
		var b [idHexLen / 2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("event id: %w", err)
		}
		tail = hex.EncodeToString(b[:])
	}
	if len(tail) < idHexLen {
		return "", fmt.Errorf("event id: previous hash %q is shorter than %d hex digits", tail, idHexLen)
	}
	return participant + ":" + strconv.FormatUint(seq, 10) + ":" + tail[:idHexLen], nil
}

// idCommits reports whether id's hex part is the commitment its record
// must carry: the first 16 hex digits of prev, for every record but the
// first. The caller has checked id with ParseID.
func idCommits(id, prev string) bool {
	if prev == "" {
		return true
	}
	return len(prev) >= idHexLen && strings.HasSuffix(id, ":"+prev[:idHexLen])
}

// ParseID splits an event id, "<participant>:<seq>:<16 hex digits>", into
// the participant whose log holds the record and its sequence number
// there. It checks the shape only: that the hex digits are the first 16 of
// the previous record's hash is checked by Verify, against the log.
func ParseID(id string) (participant string, seq uint64, err error) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 {
		return "", 0, fmt.Errorf("event id %q: want <participant>:<seq>:<16 hex digits>", id)
	}
	if err := pki.ValidName(parts[0]); err != nil {
		return "", 0, fmt.Errorf("event id %q: %w", id, err)
	}
	seq, err = strconv.ParseUint(parts[1], 10, 64)
	if err != nil || seq == 0 || strconv.FormatUint(seq, 10) != parts[1] {
		return "", 0, fmt.Errorf("event id %q: bad sequence number %q", id, parts[1])
	}
	if len(parts[2]) != idHexLen || strings.ToLower(parts[2]) != parts[2] {
		return "", 0, fmt.Errorf("event id %q: want 16 lowercase hex digits after the sequence number", id)
	}
	if _, err := hex.DecodeString(parts[2]); err != nil {
		return "", 0, fmt.Errorf("event id %q: want 16 lowercase hex digits after the sequence number", id)
	}
	return parts[0], seq, nil
}

// clean returns e with invalid UTF-8 replaced (JSON could not store it
// faithfully) and an empty Detail dropped, so that the record Append
// returns is exactly the record Verify reads back.
//
// Much of an event comes from other participants (job ids, reasons, their
// event ids), so clean also bounds it: each text is cut to maxField bytes
// (maxDetail for a Detail value), and a PeerEvent that is not an event id
// of this log's participant (self) or of the event's Peer is not kept as
// one (it would be an anchor of a log it does not belong to) but noted in
// Detail["peer_event_refused"].
func clean(e Event, self string) (Event, error) {
	if e.Action == "" {
		return Event{}, errors.New("event has no action")
	}
	fix := func(s string, limit int) string { return envelope.Clip(strings.ToValidUTF8(s, "\uFFFD"), limit) }
	e.Action, e.JobID, e.Peer = fix(e.Action, maxField), fix(e.JobID, maxField), fix(e.Peer, maxField)
	refused := ""
	if e.PeerEvent != "" {
		if owner, _, err := ParseID(e.PeerEvent); err != nil || owner != self && owner != e.Peer {
			refused, e.PeerEvent = fix(e.PeerEvent, maxField), ""
		}
	}
	if len(e.Detail) == 0 && refused == "" {
		e.Detail = nil
		return e, nil
	}
	d := make(map[string]string, len(e.Detail)+1)
	for k, v := range e.Detail {
		d[fix(k, maxField)] = fix(v, maxDetail)
	}
	if refused != "" {
		d["peer_event_refused"] = refused
	}
	e.Detail = d
	return e, nil
}

// Bounds of an event's texts (clean).
const (
	maxField  = 256
	maxDetail = 2048
)
