package dashboard

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestMigrationsRunOnce: a new database gets every migration, recorded in
// schema_version; opening it again applies nothing; the file is 0600.
func TestMigrationsRunOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dashboard", "dashboard.db")
	for range 2 {
		db, err := openDB(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		var n, v int
		if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_version`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if want := embeddedMigrations(t); n != want || v != want {
			t.Fatalf("schema_version: %d rows, version %d; want %d, %d", n, v, want, want)
		}
		db.Close()
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestMigrationFailsWhole: a migration that fails half way leaves nothing
// of itself and no version; a database newer than the binary is refused.
func TestMigrationFailsWhole(t *testing.T) {
	ctx := context.Background()
	db, err := openDB(ctx, filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := fstest.MapFS{
		"migrations/001_init.sql": {Data: []byte("SELECT 1;")},
		"migrations/900_half.sql": {Data: []byte("CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);")},
	}
	if err := migrate(ctx, db, bad); err == nil || !strings.Contains(err.Error(), "900_half.sql") {
		t.Fatalf("migrate: %v, want a failure naming 900_half.sql", err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("half of a failed migration stayed (%d, %v)", n, err)
	}
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_version`).Scan(&n); err != nil || n != embeddedMigrations(t) {
		t.Fatalf("version %d after a failed migration (%v), want %d", n, err, embeddedMigrations(t))
	}
	if _, err := db.Exec(`INSERT INTO schema_version (version, name) VALUES (999, '999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, migrations); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("a newer database: %v", err)
	}
}

// TestAuditChainShowsTampering: a changed, removed or inserted row breaks
// the chain.
func TestAuditChainShowsTampering(t *testing.T) {
	ctx := context.Background()
	cases := map[string]string{
		"changed":  `UPDATE audit SET detail = 'nothing happened' WHERE seq = 2`,
		"removed":  `DELETE FROM audit WHERE seq = 2`,
		"reworded": `UPDATE audit SET actor = 'someone@else.org' WHERE seq = 3`,
		"appended": `INSERT INTO audit (seq, at, actor, action, target, detail, prev_hash, hash) VALUES (5, 0, 'x', 'cert.approve', 'site-9', '', 'bad', 'bad')`,
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			db, err := openDB(ctx, filepath.Join(t.TempDir(), "d.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			now := time.Unix(1700000000, 0)
			for i, a := range []string{"invite.create", "site.add", "csr.upload", "cert.approve"} {
				if err := audit(ctx, db, now.Add(time.Duration(i)*time.Minute), "pa@hub.org", a, "site-1", ""); err != nil {
					t.Fatal(err)
				}
			}
			entries, err := readAudit(ctx, db)
			if err != nil || verifyAudit(entries) != nil {
				t.Fatalf("the untouched log: %v %v", err, verifyAudit(entries))
			}
			if _, err := db.Exec(tamper); err != nil {
				t.Fatal(err)
			}
			entries, err = readAudit(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyAudit(entries); err == nil {
				t.Fatal("tampering not detected")
			}
		})
	}
}

// embeddedMigrations is the number of the binary's migrations (numbered
// 1 to n).
func embeddedMigrations(t *testing.T) int {
	t.Helper()
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}
