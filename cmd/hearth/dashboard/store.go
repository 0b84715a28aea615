package dashboard

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DBFile is the dashboard's database inside a workspace.
const DBFile = "dashboard/dashboard.db"

// openDB opens (creating it 0600 in a 0700 folder when missing) the SQLite
// database at path and brings its schema up to date.
func openDB(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("dashboard database: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dashboard database: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("dashboard database: %w", err)
	}
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("dashboard database: %w", err)
	}
	// One connection: SQLite has one writer anyway, and the audit chain
	// needs its rows written one after the other. Every transaction
	// begins IMMEDIATE (_txlock), taking the write lock before it reads.
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrate applies, in order and each once in its own transaction, the
// migrations in migs/migrations named NNN_description.sql whose number is
// above the schema_version recorded.
func migrate(ctx context.Context, db *sql.DB, migs fs.FS) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL DEFAULT (unixepoch())
	)`); err != nil {
		return fmt.Errorf("dashboard database: schema_version: %w", err)
	}
	names, err := fs.Glob(migs, "migrations/*.sql")
	if err != nil {
		return err
	}
	type migration struct {
		version int
		name    string
	}
	var list []migration
	seen := map[int]string{}
	for _, n := range names {
		base := filepath.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return fmt.Errorf("dashboard database: migration %s: name must start with its number, like 001_init.sql", base)
		}
		if other, dup := seen[v]; dup {
			return fmt.Errorf("dashboard database: migrations %s and %s share number %d", other, base, v)
		}
		seen[v] = base
		list = append(list, migration{v, n})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].version < list[j].version })
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("dashboard database: schema_version: %w", err)
	}
	if n := len(list); n > 0 && current > list[n-1].version {
		return fmt.Errorf("dashboard database: schema version %d is newer than this binary knows (%d): use a newer hearth", current, list[n-1].version)
	}
	for _, m := range list {
		if m.version <= current {
			continue
		}
		body, err := fs.ReadFile(migs, m.name)
		if err != nil {
			return err
		}
		if err := inTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name) VALUES (?, ?)`, m.version, filepath.Base(m.name))
			return err
		}); err != nil {
			return fmt.Errorf("dashboard database: migration %s: %w", filepath.Base(m.name), err)
		}
	}
	return nil
}

// inTx runs f in a transaction, committed when f returns nil.
func inTx(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}
