package dashboard

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The dashboard's audit log is its own table, hash-chained: each row's hash
// is SHA-256 over the previous row's hash and the row's own fields, so a
// row changed, removed or inserted breaks every hash after it (VerifyAudit).
// It is not actors/auditor's signed log: that one is signed by a
// participant's kit key, and the dashboard holds no participant key. Rows
// are written in the same transaction as the change they record.

// genesisHash is the previous hash of the first row.
var genesisHash = hex.EncodeToString(make([]byte, sha256.Size))

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	Seq      int64
	At       time.Time
	Actor    string // the account's e-mail, or what was typed at a failed sign-in
	Action   string // e.g. signin.fail, invite.create, csr.upload, cert.approve
	Target   string
	Detail   string
	PrevHash string
	Hash     string
}

func (e AuditEntry) computeHash() string {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(e.PrevHash)
	field(fmt.Sprint(e.Seq))
	field(fmt.Sprint(e.At.Unix()))
	field(e.Actor)
	field(e.Action)
	field(e.Target)
	field(e.Detail)
	return hex.EncodeToString(h.Sum(nil))
}

// execer is a *sql.DB or *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// audit appends a row to the log through q: a transaction, so that the row
// and the change it records commit together; given the *sql.DB, it opens
// one of its own, so that reading the last row and appending the next
// are never split by another writer.
func audit(ctx context.Context, q execer, now time.Time, actor, action, target, detail string) error {
	if db, ok := q.(*sql.DB); ok {
		return inTx(ctx, db, func(tx *sql.Tx) error { return audit(ctx, tx, now, actor, action, target, detail) })
	}
	e := AuditEntry{At: now, Actor: bounded(actor), Action: action, Target: bounded(target), Detail: detail}
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&e.Seq, &e.PrevHash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		e.Seq, e.PrevHash = 0, genesisHash
	case err != nil:
		return fmt.Errorf("audit: %w", err)
	}
	e.Seq++
	e.Hash = e.computeHash()
	if _, err := q.ExecContext(ctx, `INSERT INTO audit (seq, at, actor, action, target, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.At.Unix(), e.Actor, e.Action, e.Target, e.Detail, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// readAudit returns the log's rows, oldest first.
func readAudit(ctx context.Context, db *sql.DB) ([]AuditEntry, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, at, actor, action, target, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.At = time.Unix(at, 0).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// verifyAuditRows checks the whole chain as verifyAudit does, one row at a
// time, and returns the number of rows checked.
func verifyAuditRows(ctx context.Context, db *sql.DB) (int, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, at, actor, action, target, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n, prev := 0, genesisHash
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return n, err
		}
		e.At = time.Unix(at, 0).UTC()
		n++
		switch {
		case e.Seq != int64(n):
			return n, fmt.Errorf("audit row %d: numbered %d (a row was removed or inserted)", n, e.Seq)
		case e.PrevHash != prev:
			return n, fmt.Errorf("audit row %d: previous hash does not match row %d's", e.Seq, e.Seq-1)
		case e.computeHash() != e.Hash:
			return n, fmt.Errorf("audit row %d: hash does not match its fields (the row was changed)", e.Seq)
		}
		prev = e.Hash
	}
	return n, rows.Err()
}

// verifyAudit checks the chain: consecutive numbers from 1, each row's
// previous hash the row before's, each hash its fields'.
func verifyAudit(entries []AuditEntry) error {
	prev := genesisHash
	for i, e := range entries {
		switch {
		case e.Seq != int64(i+1):
			return fmt.Errorf("audit row %d: numbered %d (a row was removed or inserted)", i+1, e.Seq)
		case e.PrevHash != prev:
			return fmt.Errorf("audit row %d: previous hash does not match row %d's", e.Seq, e.Seq-1)
		case e.computeHash() != e.Hash:
			return fmt.Errorf("audit row %d: hash does not match its fields (the row was changed)", e.Seq)
		}
		prev = e.Hash
	}
	return nil
}
